// (h) httpd: requests per second of guests/src/httpd.c served by capsa (the guest on a worker
// thread, its sockets on the host thread), the same C compiled natively (cc -O2), and node:http
// serving the same file, each under the same load: 64 keep-alive clients in a separate process
// (bench/http-load.js), on 127.0.0.1 only.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createHost } from '../dist/index.js';
import { check, fmt, ROOT } from './lib.js';

const CLIENTS = 64;
const SECONDS = Number(process.env.BENCH_HTTPD_SECONDS ?? 3);
const exec = promisify(execFile);

const CAPSA = 'capsa httpd.wasm (--listen)';
const NATIVE = 'httpd compiled natively (cc -O2)';
const NODE = 'node:http serving the same file';

async function load(addr, bytes) {
  const { stdout } = await exec(process.execPath, [`${ROOT}bench/http-load.js`, `http://${addr}/index.html`, String(CLIENTS), String(SECONDS), String(bytes)]);
  const r = JSON.parse(stdout);
  check(r.errors === 0 && r.requests > 0, `load on ${addr}: ${r.errors} errors, ${r.requests} requests`);
  return r.requests / r.seconds;
}

/** Waits for a child server to accept connections. */
async function listening(port) {
  for (let i = 0; i < 200; i++) {
    try { await exec('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/index.html`]); return; } catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

const freePort = () => new Promise((resolve) => {
  import('node:net').then(({ default: net }) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
});

export async function run() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-httpd-'));
  const site = path.join(tmp, 'site');
  fs.mkdirSync(site);
  const body = Buffer.from('<!doctype html><title>capsa</title>\n' + 'x'.repeat(1000) + '\n');
  fs.writeFileSync(path.join(site, 'index.html'), body);
  const results = new Map();
  const children = [];
  try {
    // capsa
    const host = await createHost({ workers: 1 });
    const ac = new AbortController();
    let addr;
    const run = host.run({
      module: fs.readFileSync(`${ROOT}guests/build/httpd.wasm`), dirs: [{ guest: '/site', host: site, readonly: true }],
      sockets: [{ bind: '127.0.0.1:0' }], onListening: (a) => { addr = a[0]; }, signal: ac.signal,
      limits: { wallMs: 60_000, cpuMs: 60_000, fds: 256 }, net: { bytes: 2 ** 40 },
    });
    while (!addr) await new Promise((r) => setTimeout(r, 10));
    await load(addr, body.length);
    results.set(CAPSA, await load(addr, body.length));
    ac.abort();
    const end = await run;
    check(end.status === 'cancelled', `capsa httpd ended ${end.status}: ${end.message} ${Buffer.from(end.stderr).toString()}`);
    await host.close();

    // native
    const exe = path.join(tmp, 'httpd');
    await exec('cc', ['-O2', '-DNATIVE', '-o', exe, `${ROOT}guests/src/httpd.c`]);
    const nport = await freePort();
    children.push(spawn(exe, [site], { env: { HTTPD_PORT: String(nport) }, stdio: 'ignore' }));
    await listening(nport);
    await load(`127.0.0.1:${nport}`, body.length);
    results.set(NATIVE, await load(`127.0.0.1:${nport}`, body.length));

    // node:http, reading the file per request as httpd does
    const hport = await freePort();
    const script = `const http=require('http'),fs=require('fs');http.createServer((q,s)=>fs.readFile(${JSON.stringify(site)}+'/index.html',(e,b)=>{if(e){s.statusCode=404;s.end();}else s.end(b);})).listen(${hport},'127.0.0.1');`;
    children.push(spawn(process.execPath, ['-e', script], { stdio: 'ignore' }));
    await listening(hport);
    await load(`127.0.0.1:${hport}`, body.length);
    results.set(NODE, await load(`127.0.0.1:${hport}`, body.length));
  } finally {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const stat = (v) => ({ median: v, min: v, max: v, n: 1 });
  const table = new Map([...results].map(([k, v]) => [k, stat(v)]));
  return {
    title: '(h) httpd requests/s',
    unit: 'req/s',
    results: table,
    throughput: (name) => results.get(name),
    comparisons: [
      { capsa: CAPSA, peer: NATIVE, ratio: results.get(CAPSA) / results.get(NATIVE) },
      { capsa: CAPSA, peer: NODE, ratio: results.get(CAPSA) / results.get(NODE) },
    ],
    notes: [
      `${CLIENTS} keep-alive clients in another process, ${SECONDS} s per server after a ${SECONDS} s warm-up, a ${body.length}-byte file`,
      'read from disk per request; one worker thread for capsa. All traffic on 127.0.0.1.',
      '',
      '| server | requests/s |',
      '|---|--:|',
      ...[...results].map(([k, v]) => `| ${k} | ${fmt(v, 0)} |`),
    ],
  };
}
