/**
 * How an executor process is started: the command line that puts it under bubblewrap (the OS
 * layer) and under its runtime's permission model (the runtime layer), with only the files it
 * needs, and an environment with nothing in it. Which layers are really in force is reported, so
 * that /healthz never claims a wall that is not there.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

/** The runtime an executor runs on. */
export type ExecutorRuntime = 'node' | 'deno';

/** The runtime this process runs on: executors run on it unless told otherwise. */
export const ENGINE_RUNTIME: ExecutorRuntime = (process.versions as Record<string, string | undefined>)['deno'] ? 'deno' : 'node';

/** A layer of isolation, as /healthz names it. */
export type Layer = 'bubblewrap' | 'node-permission' | 'deno-permission' | 'cgroup-memory' | 'capsicum-rights';

/** A host directory the executor's runs may mount; fixed when the executor starts. */
export interface ExecutorMount { path: string; write: boolean }

/** Options of the executors' sandbox (operator settings). */
export interface SandboxOptions {
  runtime: ExecutorRuntime;
  /** Start executors under bubblewrap (default true; without bwrap they start anyway unless strict). */
  bubblewrap: boolean;
  /** Start executors under their runtime's permission model (default true). */
  permissions: boolean;
  /** Refuse to start an executor unless every layer asked for is in force. */
  strict: boolean;
  mounts: ExecutorMount[];
  /** Extra runtime flags put before the entry (operator tuning, e.g. --max-semi-space-size). */
  runtimeFlags: string[];
  /** V8 old-generation cap of the executor's own thread, MiB. */
  heapMb: number;
  /** The executor's memory (all its threads, guests' linear memories included) in a cgroup, MiB; 0: no cgroup. */
  memoryMb: number;
  /** The Deno binary (default: the `deno` npm package's, else `deno` on the PATH). */
  denoPath?: string | undefined;
}

/** A command that starts one executor, and the layers it will be under. */
export interface LaunchPlan {
  command: string;
  args: string[];
  env: Record<string, string>;
  layers: Layer[];
  /** Why a layer asked for is not in force (logged as a warning). */
  warnings: string[];
  /** The executor's memory cgroup, made for it: remove it with releaseCgroup once the executor exited. */
  cgroup?: string;
}

let cgroupRoot: { version: 1 | 2; dir: string } | string | undefined;
/**
 * Where executors' memory cgroups can go (checked once): below this process's own cgroup in a
 * cgroup v2 hierarchy whose memory controller is enabled for children, or in the v1 memory
 * hierarchy; else why not.
 */
export function memoryCgroupRoot(): { version: 1 | 2; dir: string } | string {
  if (cgroupRoot !== undefined) return cgroupRoot;
  let lines: string[] = [];
  try { lines = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n'); } catch { return (cgroupRoot = 'no /proc/self/cgroup (not Linux)'); }
  const writable = (d: string) => { try { fs.accessSync(d, fs.constants.W_OK); return true; } catch { return false; } };
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3);
  if (v2 !== undefined && fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const dir = path.join('/sys/fs/cgroup', v2);
    let sub = '';
    try { sub = fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8'); } catch { /* none */ }
    if (/\bmemory\b/.test(sub) && writable(dir)) return (cgroupRoot = { version: 2, dir });
  }
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'))?.[2];
  if (v1 !== undefined && fs.existsSync('/sys/fs/cgroup/memory')) {
    const dir = path.join('/sys/fs/cgroup/memory', v1);
    if (writable(dir)) return (cgroupRoot = { version: 1, dir });
  }
  return (cgroupRoot = 'no writable memory cgroup (cgroup v2 with the memory controller delegated, or the v1 memory hierarchy)');
}

/**
 * Removes what engines that were killed (kill -9: no exit handler ran) left in `dir`: entries named
 * capsa-executor-<pid>-… whose process is gone. A cgroup goes only once empty (rmdir).
 */
function sweepStale(dir: string, remove: (p: string) => void): void {
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const name of names) {
    const m = /^capsa-executor-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try { process.kill(Number(m[1]), 0); continue; } catch (e) { if ((e as NodeJS.ErrnoException).code === 'EPERM') continue; }
    try { remove(path.join(dir, name)); } catch { /* in use, or not ours to remove */ }
  }
}

let cgroupSeq = 0;
/** Makes a memory cgroup of `mb` MiB for one executor; returns its directory, or why not. */
function makeCgroup(mb: number): string | { error: string } {
  const root = memoryCgroupRoot();
  if (typeof root === 'string') return { error: root };
  if (cgroupSeq === 0) sweepStale(root.dir, (p) => fs.rmdirSync(p));
  const dir = path.join(root.dir, `capsa-executor-${process.pid}-${++cgroupSeq}`);
  try {
    fs.mkdirSync(dir);
    const bytes = String(mb * 1024 * 1024);
    if (root.version === 2) {
      fs.writeFileSync(path.join(dir, 'memory.max'), bytes);
      try { fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0'); } catch { /* no swap accounting */ }
    } else {
      fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), bytes);
    }
    return dir;
  } catch (e) {
    try { fs.rmdirSync(dir); } catch { /* not made */ }
    return { error: `cannot make a memory cgroup in ${root.dir}: ${(e as Error).message}` };
  }
}

/** Removes an executor's cgroup once its processes are gone (the kernel refuses it until then). */
export function releaseCgroup(dir: string, tries = 20): void {
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EBUSY' && tries > 0) setTimeout(() => releaseCgroup(dir, tries - 1), 100).unref();
  }
}

/** An executable's absolute path from this process's PATH (the executor's own environment is empty). */
function onPath(name: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return name;
}

const HERE = fileURLToPath(import.meta.url);
const FROM_SOURCE = HERE.endsWith('.ts');

/** capsa's package root: the nearest directory above this file with a package.json. */
export function packageRoot(): string {
  let dir = path.dirname(HERE);
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`capsa's package.json is not above ${HERE}`);
    dir = up;
  }
  return dir;
}

const real = (p: string) => { try { return fs.realpathSync(p); } catch { return p; } };

let sourceBundle: string | undefined;

/**
 * The executor's entry script and the directory it reads its code from. Built capsa runs its
 * dist/; from the TypeScript sources the executor and the guest worker are bundled once per
 * process with esbuild (a devDependency, there in any checkout): a transpiler loaded in the
 * executor would need to spawn its service, which the sandbox forbids.
 */
function entry(): { script: string; code: string } {
  if (!FROM_SOURCE) {
    const script = fileURLToPath(new URL('./executor-main.js', import.meta.url));
    return { script, code: path.join(packageRoot(), 'dist') };
  }
  if (!sourceBundle) {
    sweepStale(os.tmpdir(), (p) => fs.rmSync(p, { recursive: true, force: true }));
    // The pid in the name lets a later engine remove it if this one is killed before its exit handler runs.
    const out = fs.mkdtempSync(path.join(os.tmpdir(), `capsa-executor-${process.pid}-`));
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
    esbuild.buildSync({
      entryPoints: { 'executor-main': path.join(path.dirname(HERE), 'executor-main.ts'), 'worker/guest-worker': path.join(path.dirname(HERE), '../worker/guest-worker.ts') },
      outdir: out, bundle: true, platform: 'node', format: 'esm', logLevel: 'warning',
      banner: { js: "import { createRequire as __capsaRequire } from 'node:module'; const require = __capsaRequire(import.meta.url);" },
    });
    sourceBundle = out;
    process.once('exit', () => fs.rmSync(out, { recursive: true, force: true }));
  }
  return { script: path.join(sourceBundle, 'executor-main.js'), code: sourceBundle };
}

/** The runtime binary and the shared libraries it loads (from ldd), bound read-only into the sandbox. */
function binaryFiles(bin: string): string[] {
  const files = new Set([bin, real(bin)]);
  const r = spawnSync('ldd', [bin], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) { files.add(m[1]!); files.add(real(m[1]!)); }
  }
  return [...files];
}

let bwrapWorks: string | true | undefined;
/** Whether bwrap is installed and can make the namespaces here (checked once); else why not. */
export function bubblewrapStatus(): string | true {
  if (bwrapWorks !== undefined) return bwrapWorks;
  const r = spawnSync('bwrap', ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) bwrapWorks = (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'bwrap is not installed (Debian package bubblewrap)' : `bwrap failed: ${r.error.message}`;
  else bwrapWorks = r.status === 0 ? true : `bwrap cannot make namespaces here: ${(r.stderr || `exit status ${r.status}`).trim()}`;
  return bwrapWorks;
}

/** The Deno binary: this process's own under Deno, else the `deno` npm package's (its postinstall copy, else its platform package's), else `deno` on the PATH. */
export function denoBinary(explicit?: string): string {
  if (explicit) return explicit;
  if (ENGINE_RUNTIME === 'deno') return process.execPath;
  try {
    const req = createRequire(import.meta.url);
    const dir = path.dirname(req.resolve('deno/package.json'));
    const copy = path.join(dir, 'deno');
    if (fs.existsSync(copy)) return real(copy);
    const platform = `@deno/${process.platform}-${process.arch}${process.platform === 'linux' ? '-glibc' : ''}`;
    const bin = path.join(path.dirname(createRequire(path.join(dir, 'package.json')).resolve(`${platform}/package.json`)), 'deno');
    if (fs.existsSync(bin)) return real(bin);
  } catch { /* not installed: try the PATH */ }
  // Resolved here: the executor starts with an empty environment, so no PATH of its own.
  const found = onPath('deno');
  return found === 'deno' ? found : real(found);
}

/** The Node binary: this process's own under Node; under Deno, `node` on the PATH. */
function nodeBinary(): string {
  return ENGINE_RUNTIME === 'node' ? process.execPath : onPath('node');
}

function runtimeArgs(o: SandboxOptions, reads: string[], writes: string[], e: { script: string }, config: string): { command: string; args: string[]; layer?: Layer } {
  if (o.runtime === 'deno') {
    const args = ['run', '--quiet', '--no-prompt', `--v8-flags=--max-old-space-size=${o.heapMb}`];
    if (o.permissions) {
      args.push(`--allow-read=${reads.join(',')}`);
      if (writes.length) args.push(`--allow-write=${writes.join(',')}`);
    } else {
      args.push('--allow-all');
    }
    return { command: denoBinary(o.denoPath), args: [...args, ...o.runtimeFlags, e.script, config], ...(o.permissions ? { layer: 'deno-permission' as const } : {}) };
  }
  const args = [`--max-old-space-size=${o.heapMb}`];
  if (o.permissions) {
    // Node 20: no flag grants child processes, addons or WASI, so they stay refused.
    // One flag per path: Node 20.20 reads a comma in the value as part of the path.
    args.push('--experimental-permission', '--no-warnings=ExperimentalWarning', ...reads.map((r) => `--allow-fs-read=${r}`), '--allow-worker');
    args.push(...writes.map((w) => `--allow-fs-write=${w}`));
  }
  return { command: nodeBinary(), args: [...args, ...o.runtimeFlags, e.script, config], ...(o.permissions ? { layer: 'node-permission' as const } : {}) };
}

/**
 * Under Deno, node:child_process rewrites any argument equal to Deno's own path (process.execPath)
 * that it takes for a node command line: "--ro-bind DENO DENO" gains "run -A" after the first DENO,
 * which breaks bubblewrap's command line and could put -A (all permissions) in front of the
 * executor. The same file spelled "DIR/./deno" is left alone.
 */
function respellExecPath(arg: string): string {
  if (ENGINE_RUNTIME !== 'deno' || arg !== process.execPath) return arg;
  return `${path.dirname(arg)}/./${path.basename(arg)}`;
}

/** Builds the command line of one executor; throws in strict mode when a layer cannot be had. */
export function planExecutor(o: SandboxOptions, config: object): LaunchPlan {
  const warnings: string[] = [];
  const layers: Layer[] = [];
  const e = entry();
  const mountPaths = o.mounts.map((m) => path.resolve(m.path));
  // hostfs reaches entries below a mount through /proc/self/fd/N (race-free lookups), and the pool
  // reads its threads' CPU clocks under /proc/self/task and /proc/thread-self: its own process only.
  const reads = [e.code, ...mountPaths, '/proc/self', '/proc/thread-self'];
  const writes = o.mounts.filter((m) => m.write).map((m) => path.resolve(m.path));
  if (writes.length) writes.push('/proc/self/fd');
  const rt = runtimeArgs(o, reads, writes, e, JSON.stringify(config));
  // Nothing of the engine's environment: no API keys, no admin token, no proxies, no PATH.
  const env: Record<string, string> = o.runtime === 'deno' ? { DENO_DIR: '/tmp/deno', NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' } : {};
  if (rt.layer) layers.push(rt.layer);
  let { command, args } = rt;
  if (o.bubblewrap) {
    const status = bubblewrapStatus();
    if (status === true) {
      const binds: string[] = [];
      for (const f of [...binaryFiles(command), e.code]) {
        if (fs.existsSync(f)) binds.push('--ro-bind', f, f);
      }
      for (const m of o.mounts) binds.push(m.write ? '--bind' : '--ro-bind', path.resolve(m.path), path.resolve(m.path));
      args = [
        '--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL',
        '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', ...binds,
        '--chdir', '/tmp', '--', command, ...args,
      ];
      command = onPath('bwrap');
      layers.push('bubblewrap');
    } else {
      warnings.push(`executors run without bubblewrap: ${status}`);
    }
  }
  if (o.strict) {
    const missing = [o.bubblewrap && !layers.includes('bubblewrap') ? 'bubblewrap' : undefined].filter(Boolean);
    if (missing.length || !o.permissions || !o.bubblewrap) {
      throw new Error(`Cannot start executors in strict isolation: ${warnings.join('; ') || 'a layer is turned off'} (install bubblewrap, or use best-effort isolation)`);
    }
  }
  // The cgroup is entered before anything else runs: sh writes its own pid, then becomes the
  // sandbox, so that bwrap, the runtime and every thread they start are counted.
  let cgroup: string | undefined;
  if (o.memoryMb > 0) {
    const cg = makeCgroup(o.memoryMb);
    if (typeof cg === 'string') {
      cgroup = cg;
      args = ['-c', 'echo $$ > "$0" && exec "$@"', path.join(cg, 'cgroup.procs'), command, ...args];
      command = '/bin/sh';
      layers.push('cgroup-memory');
    } else {
      warnings.push(`executors run without a memory cgroup: ${cg.error}; their memory is bounded by V8's heap flags and the runs' memory limits only`);
    }
  }
  layers.push('capsicum-rights');
  return { command: respellExecPath(command), args: args.map(respellExecPath), env, layers, warnings, ...(cgroup ? { cgroup } : {}) };
}
