// npm run bench [-- SCENARIO...]: capsa against node:wasi and browser_wasi_shim, in one run.
// Scenarios: write files hash startup stdin engine casper service procdesc httpd (default: all); service:nodes measures
// 1, 2 and 3 `capsa serve` on one PostgreSQL database (CAPSA_DATABASE_URL, or a throw-away cluster). Prints a Markdown report and writes it
// to bench/results.md. Exits 1 if any contestant produced wrong output.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fmt, ROOT } from './lib.js';

const SCENARIOS = ['write', 'files', 'hash', 'startup', 'stdin', 'engine', 'casper', 'service', 'procdesc', 'httpd'];

// node:wasi warns once that it is experimental; that is known, so keep the report clean.
process.removeAllListeners('warning');
process.on('warning', (w) => { if (w.name !== 'ExperimentalWarning') console.warn(w); });

ensureBuilt();
const wanted = process.argv.slice(2);
// SCENARIO:MODE picks a mode of a scenario (service:nodes: 1, 2 and 3 nodes on one PostgreSQL database).
for (const w of wanted) if (!SCENARIOS.includes(w.split(':')[0])) fail(`unknown scenario ${w}; choose from ${SCENARIOS.join(', ')}`);
if (typeof globalThis.gc !== 'function') console.error('note: run with --expose-gc (npm run bench does) to start each scenario from a clean heap');

const loadStart = os.loadavg();
const t0 = performance.now();
const reports = [];
for (const name of wanted.length ? wanted : SCENARIOS) {
  const started = performance.now();
  process.stderr.write(`bench: ${name} … `);
  const [file, mode] = name.split(':');
  const scenario = await import(`./${file}.js`);
  try {
    reports.push(await scenario.run(mode));
  } catch (e) {
    process.stderr.write('FAILED\n');
    fail(e.stack ?? String(e));
  }
  process.stderr.write(`${fmt((performance.now() - started) / 1000, 1)} s\n`);
}

const markdown = render(reports, { seconds: (performance.now() - t0) / 1000, loadStart, loadEnd: os.loadavg() });
process.stdout.write(markdown);
if (reports.length === SCENARIOS.length) {
  fs.writeFileSync(new URL('./results.md', import.meta.url), markdown);
  process.stderr.write('bench: wrote bench/results.md\n');
} else {
  process.stderr.write('bench: a subset of the scenarios ran; bench/results.md is left as it was\n');
}

function render(reports, { seconds, loadStart, loadEnd }) {
  const cpu = os.cpus();
  const lines = [
    '## Benchmarks',
    '',
    `node ${process.version}, ${cpu[0]?.model ?? 'unknown CPU'} × ${cpu.length}, ${os.platform()} ${os.release()}; ` +
      `load average ${loadStart[0].toFixed(2)} → ${loadEnd[0].toFixed(2)}; ${new Date().toISOString().slice(0, 16)}Z; ` +
      `whole run ${fmt(seconds, 0)} s. Reproduce with \`npm run bench\`.`,
    '',
    'Ratio = capsa throughput / peer throughput (above 1× means capsa is faster). Each contestant runs once to',
    'warm up, then all of them take turns for N rounds; the figure is the median of the timed part, `start()`,',
    'which excludes creating the WASI object and instantiating the (shared, precompiled) module. (c) uses the',
    'best of N instead, and (d) times whole processes. Every run verifies the guest\'s output. No full GC is',
    `forced between runs${process.env.BENCH_GC_EACH_RUN === '1' ? ' — except in this run (BENCH_GC_EACH_RUN=1)' : ' (BENCH_GC_EACH_RUN=1 forces one: JS hosts then re-warm their JIT every run)'}.`,
    '',
    '| Scenario | capsa | peer | capsa result | peer result | ratio | target |',
    '|---|---|---|--:|--:|--:|---|',
  ];
  let missed = 0;
  for (const r of reports) {
    for (const c of r.comparisons) {
      const goal = c.goal ?? (c.min !== undefined ? `≥ ${c.min.toFixed(1)}×` : '');
      const met = c.met ?? (c.min !== undefined ? c.ratio >= c.min : undefined);
      if (met === false) missed++;
      const mark = met === undefined ? '' : met ? ' ✅' : ' ❌';
      lines.push(`| ${r.title} | ${c.capsa} | ${c.peer} | ${value(r, c.capsa)} | ${value(r, c.peer)} | ${c.ratio.toFixed(2)}× | ${goal}${mark} |`);
    }
  }
  for (const r of reports) if (r.notes) lines.push('', `### ${r.title}`, '', ...r.notes);
  lines.push('', '<details><summary>Every contestant (ms per run)</summary>', '',
    '| Scenario | contestant | median | min | max | runs | figure |', '|---|---|--:|--:|--:|--:|--:|');
  for (const r of reports) {
    for (const [name, s] of r.results) {
      lines.push(`| ${r.title} | ${name} | ${fmt(s.median, 1)} | ${fmt(s.min, 1)} | ${fmt(s.max, 1)} | ${s.n} | ${value(r, name)} |`);
    }
  }
  lines.push('', '</details>', '');
  if (missed) lines.push(`${missed} target(s) missed in this run; see ❌ above (timings on a busy machine are noisy).`, '');
  return lines.join('\n');
}

function value(report, name) {
  const v = report.throughput(name);
  const basis = report.basis === 'min' ? ' (best)' : '';
  return report.unit === 'ms' || report.unit === 'µs' ? `${fmt(v, 1)} ${report.unit}` : `${fmt(v, 0)} ${report.unit}${basis}`;
}

/** Builds dist/ when it is missing or older than src/, so the numbers are those of the sources. */
function ensureBuilt() {
  const index = `${ROOT}dist/index.js`;
  const built = fs.existsSync(index) ? fs.statSync(index).mtimeMs : 0;
  const newest = Math.max(...fs.readdirSync(`${ROOT}src`, { recursive: true })
    .map((f) => fs.statSync(`${ROOT}src/${f}`).mtimeMs));
  if (built >= newest) return;
  process.stderr.write(`bench: dist/ is ${built ? 'older than src/' : 'missing'}; running npm run build\n`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (r.status === 0) return;
  // tsc still emits on type errors; a half-edited tree should not stop a bench of what was built.
  if (!fs.existsSync(index)) fail('npm run build failed and there is no dist/ to measure');
  process.stderr.write('bench: npm run build failed; measuring the dist/ that exists\n');
}

function fail(message) {
  console.error(`bench: ${message}`);
  process.exit(1);
}
