// Where does capsa spend its time? Samples one contestant of a scenario with V8's CPU profiler
// and prints the hottest functions by self time and, for capsa's own code, by total time.
//   node bench/profile.js SCENARIO [CONTESTANT] [RUNS]
//   e.g. node bench/profile.js files 'capsa (host mount)' 20
// CONTESTANT is matched as a prefix (default "capsa"). Writes /tmp/capsa-SCENARIO.cpuprofile,
// which Chrome DevTools or speedscope can open.
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';

const [scenario = 'files', prefix = 'capsa', runs = '20'] = process.argv.slice(2);
process.removeAllListeners('warning'); // node:wasi's ExperimentalWarning
const { setup } = await import(`./${scenario}.js`);
if (typeof setup !== 'function') throw new Error(`${scenario} has no in-process contestants to profile (try write or files)`);
const { contestants, done } = setup();
const contestant = contestants.find((c) => c.name.startsWith(prefix));
if (!contestant) throw new Error(`no contestant of ${scenario} starts with ${prefix}: ${contestants.map((c) => c.name).join(', ')}`);

contestant.run(); // warm up, untraced
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 50 });
await session.post('Profiler.start');
let ms = 0;
for (let i = 0; i < Number(runs); i++) ms += contestant.run();
const { profile } = await session.post('Profiler.stop');
session.disconnect();
done();
const file = `/tmp/capsa-${scenario}.cpuprofile`;
fs.writeFileSync(file, JSON.stringify(profile));

// Self time per sample, from the sample timeline.
const self = new Map();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const key = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/(dist|bench|node_modules)\//, '$1/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

// Total (inclusive) time per function, counting a function once per stack.
const selfBy = new Map(), totalBy = new Map();
const walk = (n, onStack) => {
  const k = key(n);
  let t = self.get(n.id) ?? 0;
  selfBy.set(k, (selfBy.get(k) ?? 0) + t);
  const first = !onStack.has(k);
  if (first) onStack.add(k);
  for (const c of n.children ?? []) t += walk(byId.get(c), onStack);
  if (first) { onStack.delete(k); totalBy.set(k, (totalBy.get(k) ?? 0) + t); }
  return t;
};
const total = walk(profile.nodes[0], new Set());

const top = (m, filter, n) => [...m].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, n)
  .map(([k, t]) => `${t.toFixed(1).padStart(8)} ms ${(100 * t / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');

console.log(`${contestant.name}: ${runs} runs of ${scenario}, ${ms.toFixed(0)} ms timed, ${total.toFixed(0)} ms sampled -> ${file}\n`);
console.log(`Self time, top 25:\n${top(selfBy, () => true, 25)}\n`);
console.log(`Total time of capsa functions (dist/), top 25:\n${top(totalBy, (k) => k.includes('dist/'), 25)}`);
