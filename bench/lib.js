// Shared helpers of the benchmark scenarios: loading guests, timing, statistics, checks.
import fs from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const GUESTS = `${ROOT}guests/build/`;
export const MiB = 1024 * 1024;

const modules = new Map();

/** The compiled guest, shared by every contestant so all run the same machine code. */
export function guest(name) {
  let m = modules.get(name);
  if (!m) {
    m = new WebAssembly.Module(fs.readFileSync(`${GUESTS}${name}.wasm`));
    modules.set(name, m);
  }
  return m;
}

/** Throws (and so fails the whole run) unless `ok`. */
export function check(ok, message) {
  if (!ok) throw new Error(`WRONG OUTPUT: ${message}`);
}

/** Collects chunks written by a guest; `text()` decodes them. */
export function collector() {
  const chunks = [];
  let bytes = 0;
  return {
    sink(chunk) { chunks.push(chunk.slice()); bytes += chunk.length; },
    get bytes() { return bytes; },
    text() { return Buffer.concat(chunks).toString('utf8'); },
  };
}

/** Milliseconds taken by `fn()`, which returns nothing useful (its checks throw). */
export function time(fn) {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/**
 * Forcing a full GC before every run is off by default: V8 then throws away optimized code that
 * embeds objects of the previous (dead) guest, so every JS host re-warms its JIT in every run and
 * the figure measures that instead of the host. BENCH_GC_EACH_RUN=1 measures it on purpose.
 */
const GC_EACH_RUN = process.env.BENCH_GC_EACH_RUN === '1';

/**
 * Runs each contestant `warmup` times, then `iterations` rounds in which every contestant runs
 * once, in rotating order, so that drift in machine load is shared rather than pinned on one of
 * them. A contestant's `run()` sets up its own instance, returns the milliseconds of the part
 * being measured, and throws when the guest produced the wrong output.
 */
export function race(contestants, { warmup = 1, iterations = 5 } = {}) {
  const times = new Map(contestants.map((c) => [c.name, []]));
  const once = (c) => { if (GC_EACH_RUN) globalThis.gc?.(); return c.run(); };
  globalThis.gc?.(); // start every scenario from a clean heap
  for (const c of contestants) for (let i = 0; i < warmup; i++) once(c);
  for (let i = 0; i < iterations; i++) {
    for (let j = 0; j < contestants.length; j++) {
      const c = contestants[(i + j) % contestants.length];
      times.get(c.name).push(once(c));
    }
  }
  return new Map([...times].map(([name, ms]) => [name, stats(ms)]));
}

export function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { n: s.length, median, min: s[0], max: s[s.length - 1], all: ms };
}

/** Formats a number with thousands separators and `digits` decimals. */
export function fmt(x, digits = 0) {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * The service benchmarks' load generator: one request on a keep-alive node:http Agent (one socket
 * per client); resolves with the status and the body text, rejects when no answer came in 10 s.
 */
export function request(agent, url, method, p, headers, body, retried = false) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(p, url), { method, agent, headers: { ...headers, 'content-length': body ? body.length : 0 }, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer within 10 s`)));
    req.on('error', (e) => {
      // A kept-alive socket the server closed as idle (its 5 s keep-alive timeout, while the bench
      // drove the other server) just as this request went out: the server never read the request,
      // so it is sent again once on a fresh socket, as Node's documentation advises.
      if (!retried && req.reusedSocket && e.code === 'ECONNRESET') resolve(request(agent, url, method, p, headers, body, true));
      else reject(e);
    });
    req.end(body);
  });
}

/** `clients` closed loops: each calls `once()` and waits for it, again while `more()` says so. */
export async function closedLoop(clients, more, once) {
  await Promise.all(Array.from({ length: clients }, async () => {
    while (more()) await once();
  }));
}
