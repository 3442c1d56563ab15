/**
 * A `capsa serve` child process on a loopback port (--port 0, the port read from its "listening"
 * log line) and requests to it: shared by the serve tests on Node and on Deno.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';

export interface Server {
  proc: ChildProcess;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `capsa serve --port 0` on `data` (`command` runs the CLI: a runtime and its arguments) and
 * waits for its "listening" line; the child goes into `children`, for the test's afterAll to kill.
 */
export async function startServer(command: string[], cwd: string, children: Set<ChildProcess>, data: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  const proc = spawn(command[0]!, [...command.slice(1), 'serve', '--host', '127.0.0.1', '--port', '0', '--data', data, ...extra], {
    cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  children.add(proc);
  const logs: Record<string, unknown>[] = [];
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`capsa serve did not log "listening" within 20 s; stderr: ${err}`)), 20_000);
    let buf = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          clearTimeout(timer);
          reject(new Error(`capsa serve logged a line that is not JSON: ${line}`));
          return;
        }
        logs.push(entry);
        if (entry['msg'] === 'listening') { clearTimeout(timer); resolve(String(entry['url'])); }
      }
    });
    void exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`capsa serve exited (${code ?? signal}) before listening; stderr: ${err}`)); });
  });
  return { proc, url, logs, stderr: () => err, exited };
}

/** Waits for the server's exit, at most `ms`. */
export async function exitOf(s: Server, ms = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return Promise.race([s.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the server did not exit within ${ms} ms`)), ms))]);
}

export async function kill9(s: Server): Promise<void> {
  s.proc.kill('SIGKILL');
  await exitOf(s);
}

export interface Reply { status: number; body: Record<string, unknown>; headers: Headers }

/** One request to the server (always on 127.0.0.1), with a timeout. */
export async function api(s: Server, method: string, p: string, key: string, body?: unknown, timeoutMs = 10_000): Promise<Reply> {
  expect(new URL(s.url).hostname).toBe('127.0.0.1');
  // A connection per request: capsa() blocks this thread (spawnSync) for seconds on a loaded
  // machine, past the server's 5 s keep-alive, and a request sent on the idle socket the server
  // closed meanwhile fails ("other side closed").
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, connection: 'close' };
  let payload: BodyInit | undefined;
  if (body instanceof Uint8Array) { headers['content-type'] = 'application/wasm'; payload = new Uint8Array(body); } else if (body !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  const res = await fetch(new URL(p, s.url), { method, headers, ...(payload !== undefined ? { body: payload } : {}), signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try { parsed = text ? JSON.parse(text) as Record<string, unknown> : {}; } catch { parsed = { text }; }
  return { status: res.status, body: parsed, headers: res.headers };
}
