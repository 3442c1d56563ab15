/**
 * The README and docs run as written (issue 15): every ```sh block is run with bash from the
 * repository's root (`npx capsa` is this checkout's CLI), and must exit 0. A block that cannot run
 * here says why in a `<!-- not-run: reason -->` line just above it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { startDnsServer } from './helpers/dns.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const FILES = ['README.md', 'guests/README.md', ...fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/**
 * The sh blocks of a Markdown file, with their line, the not-run reason above them, if any, and the
 * port of the example DNS server they need (`<!-- with-dns-server: PORT -->` above them).
 */
function shellBlocks(file: string): { line: number; code: string; notRun?: string; dnsPort?: number }[] {
  const lines = fs.readFileSync(path.join(REPO, file), 'utf8').split('\n');
  const out: { line: number; code: string; notRun?: string; dnsPort?: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh') continue;
    const end = lines.indexOf('```', i + 1);
    const above = /^<!-- not-run: (.+) -->$/.exec(lines[i - 1] ?? '');
    const dns = /^<!-- with-dns-server: (\d+) -->$/.exec(lines[i - 1] ?? '');
    out.push({ line: i + 1, code: lines.slice(i + 1, end).join('\n'), ...(above ? { notRun: above[1]! } : {}), ...(dns ? { dnsPort: Number(dns[1]) } : {}) });
    i = end;
  }
  return out;
}

const blocks = FILES.flatMap((file) => shellBlocks(file).map((b) => ({ file, ...b })));

describe('shell blocks of the README and docs', () => {
  it('there are blocks to run, and every skipped one says why', () => {
    expect(blocks.filter((b) => b.notRun === undefined).length).toBeGreaterThanOrEqual(2);
    for (const b of blocks) if (b.notRun !== undefined) expect(b.notRun.length).toBeGreaterThan(10);
  });

  it.each(blocks.filter((b) => b.notRun === undefined).map((b) => [`${b.file}:${b.line}`, b.code, b.dnsPort] as const))('%s runs as written', { timeout: 180_000 }, async (_where, code, dnsPort) => {
    // npx capsa without the network: this checkout's bin/capsa.js.
    const shim = `set -e\nnpx() { if [ "$1" = capsa ]; then shift; node ${JSON.stringify(path.join(REPO, 'bin', 'capsa.js'))} "$@"; else command npx "$@"; fi; }\n`;
    // The example's DNS server (examples/dns-server.mjs) on loopback, as the block above it starts it.
    const dns = dnsPort === undefined ? undefined : await startDnsServer({ forward: true, port: dnsPort });
    try {
      const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        // Not spawnSync: the DNS server answers on this thread while the block runs.
        const c = spawn('bash', ['-c', shim + code], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], timeout: 170_000 });
        let stdout = '';
        let stderr = '';
        c.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
        c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
        c.on('error', reject);
        c.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      // A block that ends in "# LINE" comments shows what it prints: those lines, exactly.
      const lines = code.split('\n');
      let first = lines.length;
      while (first > 0 && lines[first - 1]!.startsWith('# ')) first--;
      const shown = lines.slice(first).map((l) => l.slice(2));
      if (shown.length && first > 0) expect(r.stdout.trimEnd().split('\n')).toEqual(shown);
    } finally {
      await dns?.close();
    }
  });
});

describe('drift between the docs and the code', () => {
  it('guests/README.md lists every guest of guests/src', () => {
    const readme = fs.readFileSync(path.join(REPO, 'guests', 'README.md'), 'utf8');
    const missing = fs.readdirSync(path.join(REPO, 'guests', 'src')).filter((f) => f.endsWith('.c')).map((f) => f.slice(0, -2))
      .filter((g) => !readme.includes(`| \`${g}\``));
    expect(missing).toEqual([]);
  });

  it('the docs name limits by their manifest keys (wall, memory), not the engine\'s fields (wallMs)', () => {
    for (const f of FILES) expect(fs.readFileSync(path.join(REPO, f), 'utf8')).not.toMatch(/limits\.(wallMs|cpuMs|memoryBytes|outputBytes)/);
  });
});
