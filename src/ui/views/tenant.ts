/** The tenant's modules, and its usage against its quotas (GET /v1/limits). */
import { api } from '../api.js';
import { bytes, h, ms, notice, replace, when } from '../dom.js';
import { heading, type ViewContext } from '../shell.js';

export async function modulesView(ctx: ViewContext): Promise<void> {
  heading(ctx, 'Modules');
  const list = h('div', { class: 'table-wrap', 'aria-live': 'polite' });
  ctx.root.append(h('p', {}, 'Upload modules from ', h('a', { href: '#/new' }, 'New run'), '.'), list);
  const load = async (): Promise<void> => {
    let page: { items: { id: string; size: number; imports: string[]; createdAt: string }[] };
    try { page = await api('GET', '/v1/modules?limit=100'); } catch (e) { replace(list, notice((e as Error).message)); return; }
    replace(list, page.items.length === 0 ? h('p', {}, 'No modules yet.') : h('table', {},
      h('thead', {}, h('tr', {}, ['Module', 'Size', 'Imports', 'Uploaded', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.items.map((m) => h('tr', {},
        h('td', {}, h('code', { class: 'wrap' }, m.id)), h('td', { class: 'num' }, bytes(m.size)),
        h('td', {}, h('details', {}, h('summary', {}, `${m.imports.length} imports`), h('ul', { class: 'plain' }, m.imports.map((i) => h('li', {}, h('code', {}, i)))))),
        h('td', {}, when(m.createdAt)),
        h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Delete module ${m.id}`, onclick: async () => {
          if (!confirm(`Delete ${m.id}? Queued runs of it will fail.`)) return;
          try { await api('DELETE', `/v1/modules/${encodeURIComponent(m.id)}`); await load(); } catch (e) { list.prepend(notice((e as Error).message)); }
        } }, 'Delete')))))));
  };
  await load();
}

const QUOTA_NAMES: Record<string, [string, (n: number) => string]> = {
  concurrentRuns: ['Runs at once', String], queuedRuns: ['Queued runs', String],
  moduleStorageBytes: ['Module storage', bytes], cpuSecondsPerDay: ['CPU today', (n) => ms(n * 1000)],
};

export async function usageView(ctx: ViewContext): Promise<void> {
  heading(ctx, 'Usage and limits');
  let l: any;
  try { l = await api('GET', '/v1/limits'); } catch (e) { ctx.root.append(notice((e as Error).message)); return; }
  const quotas = Object.entries(l.quotas as Record<string, { limit: number; used: number }>);
  ctx.root.append(
    h('section', { class: 'card', 'aria-labelledby': 'h-q' }, h('h2', { id: 'h-q' }, 'Quotas'),
      h('dl', { class: 'quotas' }, quotas.map(([k, q]) => {
        const [label, fmt] = QUOTA_NAMES[k] ?? [k, String];
        const id = `q-${k}`;
        return [h('dt', { id }, label), h('dd', {},
          h('meter', { min: '0', max: String(q.limit || 1), value: String(Math.min(q.used, q.limit)), high: String(q.limit * 0.8), 'aria-labelledby': id }),
          ` ${fmt(Number(q.used.toFixed(2)))} of ${fmt(q.limit)}`)];
      }))),
    h('section', { class: 'card', 'aria-labelledby': 'h-l' }, h('h2', { id: 'h-l' }, 'Run limits'),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Limit'), h('th', { scope: 'col' }, 'Default'), h('th', { scope: 'col' }, 'Most a manifest may ask'))),
        h('tbody', {}, Object.keys(l.run.defaults).map((k) => {
          const fmt = /Ms$/.test(k) ? ms : /Bytes$/.test(k) ? bytes : String;
          return h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, fmt(l.run.defaults[k])), h('td', { class: 'num' }, fmt(l.run.maxima[k])));
        })))),
    h('section', { class: 'card', 'aria-labelledby': 'h-p' }, h('h2', { id: 'h-p' }, 'Policy'),
      h('p', {}, l.policy.own ? 'You have your own policy.' : 'You run under the service\'s policy.'),
      h('p', {}, 'Directories: ', l.policy.dirs.length ? (l.policy.dirs as { source: string; guest?: string; rights: string }[]).map((d) => `${d.guest ?? '(any)'} from ${d.source}: ${d.rights}`).join('; ') : 'none'),
      h('p', {}, 'Casper services: ', Object.keys(l.policy.casper).join(', ') || 'none')));
}
