// A load generator in its own process (so it never shares an event loop with a server under
// test): CLIENTS keep-alive connections to 127.0.0.1 ask for URL back to back for SECONDS.
// Prints { requests, errors, seconds } as JSON. Usage: node bench/http-load.js URL CLIENTS SECONDS BYTES
import http from 'node:http';

const [url, clients = '64', seconds = '3', bytes = '-1'] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(clients) });
const want = Number(bytes);
let requests = 0, errors = 0, running = true;
const one = () => new Promise((resolve) => {
  http.get(url, { agent }, (res) => {
    let n = 0;
    res.on('data', (c) => { n += c.length; });
    res.on('end', () => { if (res.statusCode === 200 && (want < 0 || n === want)) requests++; else errors++; resolve(); });
  }).on('error', () => { errors++; resolve(); });
});
const loop = async () => { while (running) await one(); };
const t0 = performance.now();
setTimeout(() => { running = false; }, Number(seconds) * 1000);
await Promise.all(Array.from({ length: Number(clients) }, loop));
agent.destroy();
process.stdout.write(JSON.stringify({ requests, errors, seconds: (performance.now() - t0) / 1000 }) + '\n');
