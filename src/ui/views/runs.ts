/** The tenant's runs, newest first: status filter and pages (the API's cursors). */
import { api } from '../api.js';
import { badge, field, h, notice, replace, when } from '../dom.js';
import { heading, type ViewContext } from '../shell.js';

const STATES = ['queued', 'running', 'exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error', 'interrupted'];

interface Summary { id: string; module: string; status: string; createdAt: string; startedAt: string | null; finishedAt: string | null; exitCode: number | null; attempts: number; blame?: string }

/** Short form of a module id, with the full id in a title. */
export function moduleName(id: string): HTMLElement {
  return h('code', { title: id }, id.replace(/^sha256:(.{12}).*$/, 'sha256:$1…'));
}

export async function runsView(ctx: ViewContext): Promise<void> {
  heading(ctx, 'Runs');
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'any status'), STATES.map((s) => h('option', { value: s }, s)));
  const table = h('div', { class: 'table-wrap', 'aria-live': 'polite' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  ctx.root.append(h('div', { class: 'toolbar' }, field('Status', status), h('a', { class: 'button', href: '#/new' }, 'New run')), table, pager);
  // Cursors of the pages seen, for Previous.
  const cursors: (string | undefined)[] = [undefined];
  let page = 0;

  const load = async (): Promise<void> => {
    const q = new URLSearchParams({ limit: '20' });
    if (status.value) q.set('status', status.value);
    const cursor = cursors[page];
    if (cursor) q.set('cursor', cursor);
    let res: { items: Summary[]; next?: string };
    try {
      res = await api('GET', `/v1/runs?${q}`);
    } catch (e) {
      replace(table, notice(`Cannot list runs: ${(e as Error).message}`));
      return;
    }
    if (ctx.signal.aborted) return;
    cursors[page + 1] = res.next;
    replace(table, res.items.length === 0 ? h('p', {}, status.value ? `No ${status.value} runs.` : 'No runs yet. ', h('a', { href: '#/new' }, 'Start one')) : h('table', {},
      h('caption', { class: 'sr-only' }, 'Runs, newest first'),
      h('thead', {}, h('tr', {}, ['Run', 'Status', 'Module', 'Created', 'Started', 'Finished', 'Exit', 'Blame'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, res.items.map((r) => h('tr', {},
        h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, h('code', {}, r.id))),
        h('td', {}, badge(r.status)),
        h('td', {}, moduleName(r.module)),
        h('td', {}, when(r.createdAt)), h('td', {}, when(r.startedAt)), h('td', {}, when(r.finishedAt)),
        h('td', { class: 'num' }, r.exitCode ?? '—'),
        h('td', {}, r.blame ?? '—'))))));
    replace(pager,
      h('button', { type: 'button', disabled: page === 0, onclick: () => { page--; void load(); } }, '← Newer'),
      h('span', {}, `Page ${page + 1}`),
      h('button', { type: 'button', disabled: !res.next, onclick: () => { page++; void load(); } }, 'Older →'));
  };
  status.addEventListener('change', () => { cursors.length = 1; page = 0; void load(); });
  await load();
}
