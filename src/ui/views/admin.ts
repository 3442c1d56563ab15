/**
 * The operator's view (admin token): tenants, their keys (make, revoke), policies and quotas;
 * and the service: queue depth, executors and their isolation layers, runs/s and latency over the
 * last minutes, sampled from /metrics while the page is open.
 */
import { api, HttpError, text } from '../api.js';
import { bytes, field, h, notice, replace, when } from '../dom.js';
import { heading, type ViewContext } from '../shell.js';

interface Key { id: string; createdAt: string; revokedAt: string | null }
interface Tenant { id: string; name: string; createdAt: string; policy: string | null; quotas?: Record<string, number>; keys?: Key[] }

const QUOTA_FIELDS = ['concurrentRuns', 'queuedRuns', 'moduleStorageBytes', 'cpuSecondsPerDay', 'retainSeconds'];

function shownOnce(label: string, secret: string): HTMLElement {
  const out = h('output', { class: 'secret' }, secret);
  return h('div', { class: 'notice info', role: 'status' }, `${label} (shown this once; copy it now): `, out,
    h('button', { type: 'button', onclick: () => void navigator.clipboard?.writeText(secret) }, 'Copy'));
}

function problems(e: unknown): HTMLElement {
  const details = e instanceof HttpError && Array.isArray(e.details) ? e.details as { line?: number; col?: number; path?: string; message: string }[] : [];
  return h('div', {}, notice((e as Error).message.split('\n')[0]!),
    details.length ? h('ul', { class: 'problems' }, details.map((d) => h('li', {}, `${d.line ? `line ${d.line}:${d.col} ` : ''}${d.path ? `${d.path}: ` : ''}${d.message}`))) : null);
}

function tenantCard(t: Tenant, reload: () => Promise<void>): HTMLElement {
  const status = h('div', { 'aria-live': 'polite' });
  const policy = h('textarea', { rows: '6', class: 'code', spellcheck: 'false' });
  policy.value = t.policy ?? '';
  const quotaInputs = QUOTA_FIELDS.map((f) => h('input', { type: 'number', min: '0', name: f, value: t.quotas?.[f] ?? '', placeholder: 'service default' }));
  const keys = t.keys ?? [];
  return h('section', { class: 'card', 'aria-labelledby': `t-${t.id}` },
    h('h2', { id: `t-${t.id}` }, t.name, ' ', h('small', {}, h('code', {}, t.id))),
    h('p', {}, `Created ${when(t.createdAt)}`),
    h('h3', {}, 'API keys'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Key', 'Created', 'Revoked', ''].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, keys.map((k) => h('tr', {}, h('td', {}, h('code', {}, k.id)), h('td', {}, when(k.createdAt)), h('td', {}, k.revokedAt ? when(k.revokedAt) : '—'),
        h('td', {}, k.revokedAt ? null : h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke key ${k.id} of ${t.name}`, onclick: async () => {
          if (!confirm(`Revoke key ${k.id} of ${t.name}? Clients using it get 401 at once.`)) return;
          try { await api('DELETE', `/v1/admin/tenants/${encodeURIComponent(t.id)}/keys/${encodeURIComponent(k.id)}`); await reload(); } catch (e) { replace(status, problems(e)); }
        } }, 'Revoke')))))),
    h('button', { type: 'button', onclick: async () => {
      try {
        const k: { key: string } = await api('POST', `/v1/admin/tenants/${encodeURIComponent(t.id)}/keys`);
        await reload();
        document.getElementById(`t-${t.id}`)?.parentElement?.querySelector('[aria-live]')?.replaceChildren(shownOnce('New key', k.key));
      } catch (e) { replace(status, problems(e)); }
    } }, 'Make a key'),
    status,
    h('details', {}, h('summary', {}, 'Policy'),
      field('Policy (YAML; empty for the service\'s)', policy),
      h('button', { type: 'button', onclick: async () => {
        try { await api('PUT', `/v1/admin/tenants/${encodeURIComponent(t.id)}/policy`, { policy: policy.value.trim() === '' ? null : policy.value }); replace(status, notice('Policy saved', 'info')); } catch (e) { replace(status, problems(e)); }
      } }, 'Save policy')),
    h('details', {}, h('summary', {}, 'Quotas and retention'),
      h('div', { class: 'grid' }, QUOTA_FIELDS.map((f, i) => field(f, quotaInputs[i]!))),
      h('button', { type: 'button', onclick: async () => {
        const body: Record<string, number> = {};
        quotaInputs.forEach((inp, i) => { if (inp.value !== '') body[QUOTA_FIELDS[i]!] = Number(inp.value); });
        try { await api('PUT', `/v1/admin/tenants/${encodeURIComponent(t.id)}/quotas`, body); replace(status, notice('Quotas saved', 'info')); } catch (e) { replace(status, problems(e)); }
      } }, 'Save quotas')));
}

export async function adminView(ctx: ViewContext): Promise<void> {
  heading(ctx, 'Tenants');
  const list = h('div', { 'aria-live': 'polite' });
  const created = h('div', { 'aria-live': 'polite' });
  const name = h('input', { type: 'text', name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,62}', autocomplete: 'off' });
  const reload = async (): Promise<void> => {
    try {
      const r: { items: Tenant[] } = await api('GET', '/v1/admin/tenants');
      replace(list, r.items.length ? r.items.map((t) => tenantCard(t, reload)) : h('p', {}, 'No tenants yet.'));
    } catch (e) { replace(list, problems(e)); }
  };
  ctx.root.append(h('form', { class: 'card toolbar', onsubmit: async (ev: Event) => {
    ev.preventDefault();
    try {
      const r: { tenant: Tenant; key: { key: string } } = await api('POST', '/v1/admin/tenants', { name: name.value.trim() });
      name.value = '';
      await reload();
      replace(created, shownOnce(`API key of ${r.tenant.name}`, r.key.key));
    } catch (e) { replace(created, problems(e)); }
  } }, field('New tenant', name, '1-63 letters, digits, ".", "_" or "-"'), h('button', { type: 'submit' }, 'Create')), created, list);
  await reload();
}

/** Prometheus text: the value of each series, by its name and labels as written. */
export function parseMetrics(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const sum = (m: Map<string, number>, prefix: string) => [...m].filter(([k]) => k === prefix || k.startsWith(`${prefix}{`)).reduce((n, [, v]) => n + v, 0);

interface Sample { at: number; finished: number; durSum: number; durCount: number; queue: number; running: number }

export async function systemView(ctx: ViewContext): Promise<void> {
  heading(ctx, 'System');
  const health = h('section', { class: 'card', 'aria-labelledby': 'h-ex' });
  const rates = h('section', { class: 'card', 'aria-labelledby': 'h-rates' });
  ctx.root.append(health, rates);
  const samples: Sample[] = [];
  const tick = async (): Promise<void> => {
    try {
      const [hz, m] = await Promise.all([
        fetch('/healthz', { cache: 'no-store' }).then((r) => r.json()),
        text('/metrics').then(parseMetrics),
      ]);
      if (ctx.signal.aborted) return;
      samples.push({ at: Date.now(), finished: sum(m, 'capsa_runs_finished_total'), durSum: sum(m, 'capsa_run_duration_seconds_sum'), durCount: sum(m, 'capsa_run_duration_seconds_count'),
        queue: sum(m, 'capsa_queue_depth'), running: m.get('capsa_runs{status="running"}') ?? 0 });
      // The last ten minutes.
      while (samples.length > 120) samples.shift();
      replace(health, h('h2', { id: 'h-ex' }, 'Service'),
        h('p', {}, `Status ${hz.status}; guests run in ${hz.isolation === 'process' ? 'executor processes' : 'worker threads'}. Queue depth ${samples.at(-1)!.queue}, running ${samples.at(-1)!.running}.`),
        hz.executors.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Executor', 'Runtime', 'Isolation layers', 'Workers', 'Busy', 'Memory', 'Started'].map((x) => h('th', { scope: 'col' }, x)))),
          h('tbody', {}, (hz.executors as any[]).map((e) => h('tr', {}, h('td', {}, e.pid ?? '—'), h('td', {}, e.runtime), h('td', {}, e.layers.join(', ') || 'none'),
            h('td', { class: 'num' }, e.workers), h('td', { class: 'num' }, e.busy), h('td', { class: 'num' }, bytes(e.rssBytes)), h('td', {}, when(e.startedAt))))))
          : h('p', {}, 'No executor processes (thread isolation).'));
      const rows: HTMLElement[] = [];
      for (let i = samples.length - 1; i > 0 && rows.length < 12; i--) {
        const a = samples[i - 1]!, b = samples[i]!;
        const secs = (b.at - a.at) / 1000;
        const n = b.finished - a.finished;
        const lat = b.durCount - a.durCount > 0 ? (b.durSum - a.durSum) / (b.durCount - a.durCount) * 1000 : undefined;
        rows.push(h('tr', {}, h('td', {}, new Date(b.at).toLocaleTimeString()), h('td', { class: 'num' }, (n / secs).toFixed(2)),
          h('td', { class: 'num' }, lat === undefined ? '—' : `${lat.toFixed(1)} ms`), h('td', { class: 'num' }, b.queue)));
      }
      const first = samples[0]!, last = samples.at(-1)!;
      const span = (last.at - first.at) / 1000;
      replace(rates, h('h2', { id: 'h-rates' }, 'Runs per second and latency'),
        h('p', {}, span > 0 ? `Over the last ${Math.round(span)} s: ${((last.finished - first.finished) / span).toFixed(2)} runs/s` : 'Sampling every 5 s while this page is open…'),
        rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['At', 'Runs/s', 'Mean run time', 'Queue'].map((x) => h('th', { scope: 'col' }, x)))), h('tbody', {}, rows)) : null);
    } catch (e) {
      replace(rates, notice(`Cannot read the metrics: ${(e as Error).message}`));
    }
  };
  await tick();
  const timer = setInterval(() => void tick(), 5000);
  ctx.signal.addEventListener('abort', () => clearInterval(timer));
}
