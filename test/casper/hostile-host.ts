// A host under a hostile Casper guest, in a process of its own (test/casper/hostile.test.ts starts
// it): it runs one scenario and prints, as JSON, the run's result, the guest's replies, and what the
// host process used during and after the run (main-thread heap, RSS, event-loop delay, CPU of the
// process and of its main thread, which serves every run's Casper requests).
// Run by hand: node --import tsx --expose-gc test/casper/hostile-host.ts clones
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { createHost, type RunRequest } from '../../src/host/host.js';
import { threadCpuNs } from '../../src/host/worker/thread-cpu.js';
import { wat } from '../helpers/wat.js';
import { GUEST, close, cmd, concat, init, limitSetOfNulls, replies, xfer } from './script-guest.js';

const MiB = 1 << 20;
// fds: 0-2 stdio, 3 the core channel, 4 system.fileargs, then its clones.
const openFileargs = [init(), xfer(3, 1, cmd('open', (l) => l.addString('service', 'system.fileargs')))];
const big = () => limitSetOfNulls(16 * MiB);
const small = () => limitSetOfNulls(250 * 1024);
const SCENARIOS: Record<string, () => Partial<RunRequest> & { stdin: Uint8Array }> = {
  // A list far above the message bound, then one below it, then 16 clones of the channel.
  clones: () => ({ casper: { 'system.fileargs': {} }, stdin: concat([...openFileargs, xfer(4, 1, big()), xfer(4, 1, small()), xfer(4, 16, cmd('clone'))]) }),
  // With 8 descriptors, 40 clones: 3 fit, 37 are refused; then a closed clone makes room for one more.
  emfile: () => ({
    casper: { 'system.fileargs': {} }, limits: { fds: 8 },
    stdin: concat([...openFileargs, xfer(4, 1, big()), xfer(4, 1, small()), xfer(4, 40, cmd('clone')), close(5), xfer(4, 1, cmd('clone'))]),
  }),
  // Six huge messages, then messages below the bound forever, on the core channel, under a 1 s CPU limit.
  stall: () => ({
    casper: { 'system.fileargs': {} }, limits: { cpuMs: 1000, wallMs: 20_000 },
    stdin: concat([init(), xfer(3, 6, big()), xfer(3, 0, small())]),
  }),
};

const scenario = process.argv[2] ?? '';
const make = SCENARIOS[scenario];
if (!make) throw new Error(`unknown scenario ${scenario}; one of ${Object.keys(SCENARIOS).join(', ')}`);
const request = make();

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const heap = () => v8.getHeapStatistics().used_heap_size;
const cpuMs = (since: NodeJS.CpuUsage) => { const u = process.cpuUsage(since); return (u.user + u.system) / 1000; };
const MB = (n: number) => Math.round(n / 1e5) / 10;

const host = await createHost({ workers: 1 });
gc();
const baseHeap = heap();
const baseRss = process.memoryUsage.rss();
let peakHeap = baseHeap;
let peakRss = baseRss;
const sampler = setInterval(() => {
  peakHeap = Math.max(peakHeap, heap());
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 10);
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
const cpu0 = process.cpuUsage();
const main0 = threadCpuNs();
const r = await host.run({ module: GUEST, ...request });
const duringCpu = cpuMs(cpu0);
const mainCpu = Number(threadCpuNs() - main0) / 1e6;
eld.disable();
clearInterval(sampler);
peakHeap = Math.max(peakHeap, heap());

// After the run (and once a worker is ready again: a stopped run's worker is replaced), the host
// process should be idle and the run's memory gone.
await host.run({ module: wat('(module (memory (export "memory") 1) (func (export "_start")))') });
const cpu1 = process.cpuUsage();
await new Promise((res) => setTimeout(res, 1000));
const afterCpu = cpuMs(cpu1);
gc();
const afterHeap = heap();
await host.close();

process.stdout.write(JSON.stringify({
  status: r.status, timeout: r.timeout, message: r.message, cpuMs: r.usage.cpuMs,
  replies: replies(r.stdout),
  heapGrowthMB: MB(peakHeap - baseHeap), rssGrowthMB: MB(peakRss - baseRss), heapAfterMB: MB(afterHeap - baseHeap),
  maxDelayMs: eld.max / 1e6, processCpuMs: duringCpu, mainThreadCpuMs: mainCpu, afterCpuMs: afterCpu,
}));
