/**
 * What `capsa run` loads before its guest runs: a run from flags alone never loads the YAML
 * library (a third of the CLI's JavaScript); a run with a manifest loads it and reads the manifest.
 * Each case is a fresh process running the CLI's main() from the sources.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HELLO = path.join(REPO, 'guests', 'build', 'hello.wasm');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-startup-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs main(argv) in a fresh process; returns its exit status, its stdout, and whether YAML was loaded. */
function cli(argv: string[]): { status: number | null; stdout: string; yaml: string } {
  const src = (f: string) => JSON.stringify(pathToFileURL(path.join(REPO, 'src', f)).href);
  const script = `const { main } = await import(${src('cli/main.ts')});
    const { yamlLoaded } = await import(${src('manifest/yaml.ts')});
    const status = await main(${JSON.stringify(argv)});
    process.stderr.write('YAML_LOADED=' + yamlLoaded() + '\\n');
    process.exitCode = status;`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, yaml: /YAML_LOADED=(\w+)/.exec(r.stderr)?.[1] ?? `none (stderr: ${r.stderr})` };
}

describe('capsa run start-up', () => {
  it('runs a guest from flags without loading the YAML library', () => {
    const r = cli(['run', HELLO, '--', 'flags']);
    expect(r).toEqual({ status: 0, stdout: 'hello flags\n', yaml: 'false' });
  });

  it('loads it for a manifest, and runs what the manifest says', () => {
    const manifest = path.join(tmp, 'hello.yaml');
    fs.writeFileSync(manifest, `module: ${HELLO}\nargs: [manifest]\n`);
    const r = cli(['run', '--manifest', manifest]);
    expect(r).toEqual({ status: 0, stdout: 'hello manifest\n', yaml: 'true' });
  });

  it('still reports a broken manifest at its line and column', () => {
    const manifest = path.join(tmp, 'broken.yaml');
    fs.writeFileSync(manifest, `module: ${HELLO}\nargs: [unclosed\n`);
    const r = cli(['run', '--manifest', manifest]);
    expect(r.status).toBe(1);
    expect(r.yaml).toBe('true');
  });
});
