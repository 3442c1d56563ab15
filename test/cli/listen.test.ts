/**
 * `capsa run --listen`: the first example, end to end through the real CLI. All traffic
 * stays on 127.0.0.1.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';

const REPO = path.join(import.meta.dirname, '../..');
const BIN = path.join(REPO, 'bin', 'capsa.js');
const HTTPD = path.join(REPO, 'guests/build/httpd.wasm');
const curl = promisify(execFile);
const cleanup: (() => void)[] = [];
afterEach(() => { for (const c of cleanup.splice(0)) c(); });

describe('capsa run --listen', () => {
  it('serves curl from a read-only mount, naming the port it picked', async () => {
    const site = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-listen-'));
    fs.writeFileSync(path.join(site, 'index.html'), 'one file from /site\n');
    const child = spawn(process.execPath, [BIN, 'run', '--listen', '127.0.0.1:0', '--dir', `${site}::/site:ro`, '--timeout', '60s', HTTPD], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(() => { child.kill('SIGKILL'); fs.rmSync(site, { recursive: true, force: true }); });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const addr = await vi.waitFor(() => {
      const m = /capsa: listening on (127\.0\.0\.1:\d+)/.exec(err);
      if (!m) throw new Error(`not listening yet: ${err}`);
      return m[1]!;
    }, { timeout: 25_000, interval: 50 });
    const { stdout } = await curl('curl', ['-s', `http://${addr}/index.html`]);
    expect(stdout).toBe('one file from /site\n');
  });

  it('a malformed address is a usage error that shows the forms', () => {
    const r = spawnSync(process.execPath, [BIN, 'run', '--listen', 'localhost', HTTPD], { encoding: 'utf8', timeout: 25_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--listen localhost: socket address "localhost": expected HOST:PORT, [IPV6]:PORT or an absolute UNIX path');
  });
});
