/**
 * `capsa serve` in a child process for tests: on a loopback port (--port 0, the port read from its
 * "listening" log line), run as bin/capsa.js runs it: from dist/ when dist/ is built and newer than
 * src/, else from the sources through tsx (so that a stale dist/ never hides the code under test).
 * killServers() (afterAll) kills every child still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect } from 'vitest';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');

/** The command that runs the CLI: node bin/capsa.js when dist/ is current, else src/cli.ts under tsx. */
export const CLI: string[] = (() => {
  const bundle = path.join(REPO, 'dist', 'bundle', 'cli.js');
  const built = fs.existsSync(bundle) ? fs.statSync(bundle).mtimeMs : 0;
  const newest = Math.max(...fs.readdirSync(path.join(REPO, 'src'), { recursive: true, encoding: 'utf8' })
    .map((f) => fs.statSync(path.join(REPO, 'src', f)).mtimeMs));
  if (built >= newest) return [BIN];
  const tsx = path.join(path.dirname(createRequire(path.join(REPO, 'package.json')).resolve('tsx/package.json')), 'dist', 'loader.mjs');
  return ['--import', pathToFileURL(tsx).href, path.join(REPO, 'src', 'cli.ts')];
})();

const children = new Set<ChildProcess>();

/** Kills (SIGKILL) every server a test left running. */
export function killServers(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export interface Server {
  proc: ChildProcess;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `capsa serve --host 127.0.0.1 --port 0 ARGS…` and waits for its "listening" line; `command`
 * runs the CLI (a runtime and its arguments: Node by default, or Deno).
 */
export async function startServe(args: string[], env: Record<string, string> = {}, command: string[] = [process.execPath, ...CLI]): Promise<Server> {
  const proc = spawn(command[0]!, [...command.slice(1), 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
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


/** Kills the server (SIGKILL) and waits for its exit. */
export async function kill9(s: Server): Promise<void> {
  s.proc.kill('SIGKILL');
  await exitOf(s);
}

export interface Reply { status: number; body: Record<string, unknown>; headers: Headers }

/** One request to the server at `base` (always on 127.0.0.1), with a timeout: the Response itself, for streams and bodies that are not JSON. */
export async function send(base: string, method: string, p: string, key: string, body?: unknown, timeoutMs = 10_000): Promise<Response> {
  expect(new URL(base).hostname).toBe('127.0.0.1');
  // A connection per request: a test's spawnSync blocks this thread for seconds on a loaded
  // machine, past the server's 5 s keep-alive, and a request sent on the idle socket the server
  // closed meanwhile fails ("other side closed").
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, connection: 'close' };
  let payload: BodyInit | undefined;
  if (body instanceof Uint8Array) { headers['content-type'] = 'application/wasm'; payload = new Uint8Array(body); } else if (body !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  return fetch(new URL(p, base), { method, headers, ...(payload !== undefined ? { body: payload } : {}), signal: AbortSignal.timeout(timeoutMs) });
}

/** One request to the server (always on 127.0.0.1), with a timeout; the body parsed as JSON when it is. */
export async function api(s: Server, method: string, p: string, key: string, body?: unknown, timeoutMs = 10_000): Promise<Reply> {
  const res = await send(s.url, method, p, key, body, timeoutMs);
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try { parsed = text ? JSON.parse(text) as Record<string, unknown> : {}; } catch { parsed = { text }; }
  return { status: res.status, body: parsed, headers: res.headers };
}
