// Sockets under process isolation: why capsa passes descriptors to executors rather than relaying
// bytes over the executor link. A loopback server sends BENCH_NET_MIB MiB (default 128) to a child
// process under bubblewrap (as executors run), three ways: the connected socket's descriptor passed
// to the child (what capsa does), or its bytes relayed by this process over the IPC channel with a
// 1 MiB credit window, framed by V8's serializer (Node executors) or as JSON with base64 (Deno
// executors). Prints MiB/s and this process's CPU per MiB (the server's own share included in all).
//   node bench/executor-net.js
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const TOTAL = Number(process.env.BENCH_NET_MIB ?? 128) << 20;

if (process.argv[2] === 'child') {
  // The executor's stand-in: counts what arrives, acknowledges relayed chunks.
  process.on('message', (m, h) => {
    if (h) { h.on('data', () => {}); h.on('end', () => process.send('done')); return; }
    if (typeof m === 'string') m = JSON.parse(m);
    if (m.end) return void process.send('done');
    process.send({ ack: m.b instanceof Uint8Array ? m.b.length : Buffer.from(m.b, 'base64').length });
  });
  process.send('ready');
} else {
  const chunk = Buffer.alloc(64 << 10, 7);
  const server = net.createServer((s) => {
    let sent = 0;
    const pump = () => { while (sent < TOTAL) { sent += chunk.length; if (!s.write(chunk)) return void s.once('drain', pump); } s.end(); };
    pump();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  for (const mode of ['descriptor', 'relay (advanced)', 'relay (json)']) {
    const json = mode === 'relay (json)';
    const child = spawn('bwrap', ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--', process.execPath, fileURLToPath(import.meta.url), 'child'],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: json ? 'json' : 'advanced' });
    await new Promise((r) => child.once('message', r));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const done = new Promise((r) => child.on('message', (m) => { if (m === 'done') r(); }));
    const s = net.connect(port, '127.0.0.1', () => {
      if (mode === 'descriptor') { s.pause(); child.send('socket', s); return; }
      let inflight = 0;
      s.on('data', (d) => { inflight += d.length; child.send(json ? JSON.stringify({ b: d.toString('base64') }) : { b: d }); if (inflight >= 1 << 20) s.pause(); });
      child.on('message', (m) => { if (m?.ack) { inflight -= m.ack; if (inflight < 1 << 20) s.resume(); } });
      s.on('end', () => child.send(json ? JSON.stringify({ end: 1 }) : { end: 1 }));
    });
    await done;
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`${mode.padEnd(18)} ${(TOTAL / 2 ** 20 / (ms / 1000)).toFixed(0).padStart(5)} MiB/s, this process ${(cpuMs / (TOTAL >> 20)).toFixed(2)} ms CPU/MiB`);
    child.kill();
  }
  server.close();
}
