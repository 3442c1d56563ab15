/**
 * The README and docs run as written (issue 15): every ```sh block is run with bash from the
 * repository's root (`npx capsa` is this checkout's CLI), and must exit 0. A block that cannot run
 * here says why in a `<!-- not-run: reason -->` line just above it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const FILES = ['README.md', 'guests/README.md', ...fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The sh blocks of a Markdown file, with their line and the not-run reason above them, if any. */
function shellBlocks(file: string): { line: number; code: string; notRun?: string }[] {
  const lines = fs.readFileSync(path.join(REPO, file), 'utf8').split('\n');
  const out: { line: number; code: string; notRun?: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh') continue;
    const end = lines.indexOf('```', i + 1);
    const above = /^<!-- not-run: (.+) -->$/.exec(lines[i - 1] ?? '');
    out.push({ line: i + 1, code: lines.slice(i + 1, end).join('\n'), ...(above ? { notRun: above[1]! } : {}) });
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

  it.each(blocks.filter((b) => b.notRun === undefined).map((b) => [`${b.file}:${b.line}`, b.code] as const))('%s runs as written', { timeout: 180_000 }, (_where, code) => {
    // npx capsa without the network: this checkout's bin/capsa.js.
    const shim = `set -e\nnpx() { if [ "$1" = capsa ]; then shift; node ${JSON.stringify(path.join(REPO, 'bin', 'capsa.js'))} "$@"; else command npx "$@"; fi; }\n`;
    const r = spawnSync('bash', ['-c', shim + code], { cwd: REPO, encoding: 'utf8', input: '', timeout: 170_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
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
