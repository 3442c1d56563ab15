/**
 * A run: its result and limits, stdout and stderr as the guest writes them (the SSE stream), and
 * the audit timeline, refused decisions highlighted with what was missing and the manifest line
 * that would grant it (GET /v1/runs/{id}/audit's `why`).
 */
import { api, fromB64, HttpError, streamEvents, type SseEvent } from '../api.js';
import { AnsiWriter } from '../ansi.js';
import { badge, bytes, h, ms, notice, replace, when } from '../dom.js';
import { heading, type ViewContext } from '../shell.js';
import { moduleName } from './runs.js';

interface Why { missing: string[]; grant?: string; line: number; col: number; path: string; note: string }
interface Decision {
  seq: number; t: number; call: string; fd: number; path?: string; decision: 'allowed' | 'denied'; errno: number; message?: string;
  rightsNeeded: string[]; rightsHeld: string[]; pid?: number; attempt?: number; why?: Why;
}

const TERMINAL = new Set(['exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error', 'interrupted']);
const LIMIT_WORDS: Record<string, (n: number) => string> = {
  wallMs: ms, cpuMs: ms, memoryBytes: bytes, outputBytes: bytes, filesBytes: bytes, fds: String,
};

/** One output pane: text decoded as a stream (a UTF-8 character may span chunks), ANSI colours as classes. */
class Pane {
  readonly pre: HTMLPreElement;
  private writer: AnsiWriter;
  private decoder = new TextDecoder();
  constructor(readonly name: string) {
    this.pre = h('pre', { class: 'output', id: `out-${name}`, tabindex: '0', role: 'log', 'aria-label': name });
    this.writer = new AnsiWriter(this.pre);
  }
  reset(): void { this.pre.replaceChildren(); this.writer = new AnsiWriter(this.pre); this.decoder = new TextDecoder(); }
  write(chunk: { data: string; encoding: string }): void {
    const text = chunk.encoding === 'base64' ? this.decoder.decode(fromB64(chunk.data), { stream: true }) : chunk.data;
    const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    this.writer.write(text);
    if (atEnd) this.pre.scrollTop = this.pre.scrollHeight;
  }
}

function decisionItem(d: Decision): HTMLElement {
  const refused = d.decision === 'denied';
  const what = `${d.call}${d.path ? ` ${d.path}` : ''}${d.fd >= 0 ? ` on fd ${d.fd}` : ''}${d.pid !== undefined ? ` (pid ${d.pid})` : ''}`;
  return h('li', { class: refused ? 'decision refused' : 'decision' },
    h('span', { class: 'when' }, `${d.t.toFixed(1)} ms`),
    h('span', { class: 'verdict' }, refused ? '✕ refused' : '✓ allowed'),
    h('code', { class: 'call' }, what),
    d.message ? h('div', { class: 'msg' }, d.message) : null,
    refused && d.why ? h('div', { class: 'why' },
      d.why.missing.length ? h('p', {}, h('strong', {}, 'Missing: '), d.why.missing.join(', ')) : null,
      h('p', {}, d.why.note),
      d.why.grant ? h('p', {}, h('strong', {}, d.why.line ? `Grant it at manifest line ${d.why.line}:${d.why.col}${d.why.path ? ` (${d.why.path})` : ''}: ` : `Grant it${d.why.path ? ` under ${d.why.path}` : ''}: `), h('code', { class: 'grant' }, d.why.grant)) : null) : null);
}

export async function runView(ctx: ViewContext, id: string): Promise<void> {
  heading(ctx, `Run ${id}`);
  const summary = h('section', { class: 'card', 'aria-label': 'Result' });
  const stdout = new Pane('stdout');
  const stderr = new Pane('stderr');
  const timeline = h('ol', { class: 'timeline', id: 'timeline', 'aria-label': 'Capability decisions' });
  const refusedOnly = h('input', { type: 'checkbox', id: 'refused-only' });
  const auditNote = h('p', { class: 'hint', 'aria-live': 'polite' });
  refusedOnly.addEventListener('change', () => timeline.classList.toggle('refused-only', refusedOnly.checked));

  let run: any;
  try {
    run = await api('GET', `/v1/runs/${encodeURIComponent(id)}`);
  } catch (e) {
    ctx.root.append(notice(e instanceof HttpError && e.status === 404 ? `Run ${id} not found. It is not one of your runs, or it was removed.` : `Cannot load run ${id}: ${(e as Error).message}`));
    return;
  }
  const cancel = h('button', { type: 'button', class: 'danger', onclick: async () => {
    try { run = await api('DELETE', `/v1/runs/${encodeURIComponent(id)}`); drawSummary(); } catch (e) { summary.append(notice((e as Error).message)); }
  } }, 'Cancel run');

  const drawSummary = (): void => {
    const rows: [string, unknown][] = [
      ['Status', badge(run.status)], ['Module', moduleName(run.module)], ['Created', when(run.createdAt)], ['Started', when(run.startedAt)],
      ['Finished', when(run.finishedAt)], ['Exit code', run.exitCode ?? '—'], ['Blame', run.blame ?? '—'],
    ];
    if (run.attempts > 1) rows.push(['Attempts', run.attempts]);
    if (run.message) rows.push(['Message', run.message]);
    if (run.trap) rows.push(['Trap', `${run.trap.kind}: ${run.trap.message}`]);
    if (run.timeout) rows.push(['Timeout', `${run.timeout} time limit`]);
    if (run.usage) rows.push(['Usage', `wall ${ms(run.usage.wallMs)}, cpu ${ms(run.usage.cpuMs)}, peak memory ${bytes(run.usage.peakMemoryBytes)}`]);
    if (run.audit) rows.push(['Audit', `${run.audit.events} decisions recorded${run.audit.dropped ? `, ${run.audit.dropped} dropped` : ''}`]);
    const limits = run.limits ? Object.entries(run.limits as Record<string, number>).map(([k, v]) => `${k.replace(/(Ms|Bytes)$/, '')} ${(LIMIT_WORDS[k] ?? String)(v)}`).join(', ') : '—';
    rows.push(['Limits', limits]);
    replace(summary,
      h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v as Node | string)])),
      run.warnings?.length ? h('ul', { class: 'warnings' }, (run.warnings as string[]).map((w) => h('li', {}, w))) : null,
      TERMINAL.has(run.status) ? null : cancel,
      run.learnedManifest ? h('details', {}, h('summary', {}, 'Learned manifest'), h('pre', { class: 'output' }, run.learnedManifest)) : null);
  };
  drawSummary();

  ctx.root.append(summary,
    h('section', { 'aria-labelledby': 'h-out' }, h('h2', { id: 'h-out' }, 'Output'),
      h('div', { class: 'panes' }, h('div', {}, h('h3', {}, 'stdout'), stdout.pre), h('div', {}, h('h3', {}, 'stderr'), stderr.pre))),
    h('section', { 'aria-labelledby': 'h-audit' }, h('h2', { id: 'h-audit' }, 'Audit timeline'),
      h('div', { class: 'toolbar' }, h('label', { class: 'check' }, refusedOnly, ' Refused decisions only')), auditNote, timeline));

  const auditLive = (d: Decision): void => { timeline.append(decisionItem(d)); };
  /** The audit with each refusal explained (after the run ends, or for a finished run). */
  const loadAudit = async (): Promise<void> => {
    const text: string = await api('GET', `/v1/runs/${encodeURIComponent(id)}/audit`);
    const all = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Decision);
    // A retried run: the last attempt's decisions.
    const last = all.reduce((m, d) => Math.max(m, d.attempt ?? 0), 0);
    const items = all.filter((d) => (d.attempt ?? 0) === last);
    replace(timeline, items.map(decisionItem));
    const refused = items.filter((d) => d.decision === 'denied').length;
    auditNote.textContent = items.length === 0 ? 'No decisions recorded (the run records refused ones unless it asked for audit: all or off).'
      : `${items.length} decision${items.length === 1 ? '' : 's'}, ${refused} refused.`;
  };

  const onEvent = (e: SseEvent): void => {
    let data: any;
    try { data = JSON.parse(e.data); } catch { return; }
    if (e.event === 'stdout') stdout.write(data);
    else if (e.event === 'stderr') stderr.write(data);
    else if (e.event === 'attempt') { stdout.reset(); stderr.reset(); timeline.replaceChildren(); }
    else if (e.event === 'audit') auditLive(data as Decision);
    else if (e.event === 'status' && typeof data.state === 'string') { run = { ...run, status: data.state }; drawSummary(); }
  };
  try {
    await streamEvents(id, onEvent, ctx.signal);
  } catch (e) {
    if (ctx.signal.aborted) return;
    stderr.pre.after(notice(`The live stream stopped: ${(e as Error).message}`));
  }
  if (ctx.signal.aborted) return;
  try {
    run = await api('GET', `/v1/runs/${encodeURIComponent(id)}`);
    drawSummary();
    await loadAudit();
  } catch (e) {
    if (!ctx.signal.aborted) summary.append(notice((e as Error).message));
  }
}
