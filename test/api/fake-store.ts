/**
 * An in-memory Store for tests of the API and the scheduler, following the interface's contract
 * (tenant-scoped reads, keys kept as hashes, requeue at most once). `snapshot()`/`restore()` copy
 * everything, which is what a process killed with kill -9 leaves behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { QuotaError, type ApiKeyRecord, type DeliveryRecord, type EventWatcher, type ModuleRecord, type Page, type RunEventRecord, type RunRecord, type RunState, type StateWrites, type Store, type Tenant } from '../../src/api/store/types.js';
import { asyncStore, type SyncStore } from '../../src/api/store/sync.js';

const TERMINAL = new Set<RunState>(['exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error', 'interrupted']);
const hash = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');
const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;

interface State {
  tenants: Map<string, Tenant>;
  keys: Map<string, ApiKeyRecord & { hash: string }>;
  blobs: Map<string, Uint8Array>;
  modules: Map<string, ModuleRecord>;
  runs: Map<string, RunRecord>;
  events: Map<string, RunEventRecord[]>;
  secrets: Map<string, string>;
  deliveries: Map<string, DeliveryRecord>;
  /** Run id → lease end (ms); tenant id → its place in the rotation; delivery id → its claim. */
  leases: Map<string, number>;
  claims: Map<string, { node: string; until: number }>;
  served: Map<string, number>;
}

const empty = (): State => ({
  tenants: new Map(), keys: new Map(), blobs: new Map(), modules: new Map(), runs: new Map(), events: new Map(), secrets: new Map(), deliveries: new Map(),
  leases: new Map(), served: new Map(), claims: new Map(),
});

/** Pages by position in an array sorted the way the listing wants; the cursor is the last id. */
function paginate<T extends { id: string }>(all: T[], o: { cursor?: string; limit: number }): Page<T> {
  const limit = Math.max(1, Math.min(100, Math.floor(o.limit)));
  let start = 0;
  if (o.cursor !== undefined) {
    const i = all.findIndex((x) => x.id === o.cursor);
    if (i < 0) throw new Error('invalid cursor');
    start = i + 1;
  }
  const items = all.slice(start, start + limit);
  const page: Page<T> = { items };
  if (start + limit < all.length && items.length) page.next = items[items.length - 1]!.id;
  return page;
}

export interface FakeStore extends Store {
  snapshot(): State;
}

export function createFakeStore(initial?: State, now: () => number = Date.now): FakeStore {
  const st: State = initial ? structuredClone(initial) : empty();
  const watchers = new Set<EventWatcher>();
  let seq = 0;
  const tick = () => {
    // createdAt strictly increasing keeps listings deterministic.
    const t = now();
    seq = Math.max(seq + 1, t);
    return seq;
  };
  const mkey = (tenantId: string, mid: string) => `${tenantId}/${mid}`;
  const queueWatchers = new Set<() => void>();
  const queueChanged = () => { for (const w of queueWatchers) w(); };
  const runsOf = (tenantId: string, state: RunState) => [...st.runs.values()].filter((r) => r.tenantId === tenantId && r.state === state);
  /** The restart rule, guarded by the attempt when given. */
  const requeue = (rid: string, attempt?: number): RunRecord | undefined => {
    const r = st.runs.get(rid);
    if (!r || r.state !== 'running' || (attempt !== undefined && r.attempts !== attempt)) return undefined;
    st.leases.delete(rid);
    if (r.attempts < 2) Object.assign(r, { state: 'queued', startedAt: null });
    else Object.assign(r, { state: 'interrupted', finishedAt: now(), result: JSON.stringify({ status: 'interrupted', blame: 'host', message: 'the server stopped while the run was running; it was retried once' }) });
    return { ...r };
  };

  /** The event appends and the delivery a change of state writes with it (one step: nothing interleaves here). */
  const apply = (runId: string, w: StateWrites | undefined): void => {
    for (const e of w?.events ?? []) store.appendEvent(runId, e.type, e.data);
    if (w?.delivery) store.putDelivery(w.delivery);
  };

  const store: SyncStore & { snapshot(): State } = {
    snapshot: () => structuredClone(st),

    createTenant(name) {
      if ([...st.tenants.values()].some((t) => t.name === name)) throw new Error(`a tenant named ${name} exists`);
      const t: Tenant = { id: id('ten'), name, createdAt: tick(), policy: null, quotas: {} };
      st.tenants.set(t.id, t);
      return { ...t };
    },
    getTenant: (tid) => { const t = st.tenants.get(tid); return t && { ...t }; },
    findTenantByName: (name) => { const t = [...st.tenants.values()].find((x) => x.name === name); return t && { ...t }; },
    listTenants: () => [...st.tenants.values()].map((t) => ({ ...t })),
    setPolicy(tenantId, policy) {
      const t = st.tenants.get(tenantId);
      if (!t) throw new Error('unknown tenant');
      t.policy = policy;
    },
    setQuotas(tenantId, quotas) {
      const t = st.tenants.get(tenantId);
      if (!t) throw new Error('unknown tenant');
      t.quotas = { ...quotas };
    },
    webhookSecret(tenantId, rotate = false) {
      if (!st.tenants.has(tenantId)) throw new Error('unknown tenant');
      if (rotate || !st.secrets.has(tenantId)) st.secrets.set(tenantId, `whsec_${randomBytes(32).toString('base64url')}`);
      return st.secrets.get(tenantId)!;
    },

    createKey(tenantId) {
      if (!st.tenants.has(tenantId)) throw new Error('unknown tenant');
      const key = `capsa_${randomBytes(32).toString('base64url')}`;
      const record: ApiKeyRecord = { id: id('key'), tenantId, createdAt: tick(), revokedAt: null };
      st.keys.set(record.id, { ...record, hash: hash(key) });
      return { key, record };
    },
    authenticate(key) {
      if (key.length > 256) return undefined;
      const h = hash(key);
      const k = [...st.keys.values()].find((x) => x.hash === h && x.revokedAt === null);
      return k ? store.getTenant(k.tenantId) : undefined;
    },
    listKeys: (tenantId) => [...st.keys.values()].filter((k) => k.tenantId === tenantId).map(({ hash: _h, ...k }) => k),
    revokeKey(tenantId, keyId) {
      const k = st.keys.get(keyId);
      if (!k || k.tenantId !== tenantId) return false;
      k.revokedAt ??= tick();
      return true;
    },

    putModule(tenantId, bytes, imports) {
      const mid = `sha256:${hash(bytes)}`;
      const existing = st.modules.get(mkey(tenantId, mid));
      if (existing) return { record: { ...existing }, created: false };
      if (!st.tenants.has(tenantId)) throw new Error('unknown tenant');
      st.blobs.set(mid, new Uint8Array(bytes));
      const record: ModuleRecord = { id: mid, tenantId, size: bytes.length, imports: [...imports], createdAt: tick() };
      st.modules.set(mkey(tenantId, mid), record);
      return { record: { ...record }, created: true };
    },
    getModule: (tenantId, mid) => { const m = st.modules.get(mkey(tenantId, mid)); return m && { ...m }; },
    listModules: (tenantId, o) => paginate([...st.modules.values()].filter((m) => m.tenantId === tenantId).sort((a, b) => b.createdAt - a.createdAt), o),
    deleteModule: (tenantId, mid) => st.modules.delete(mkey(tenantId, mid)),
    moduleBytes: (tenantId, mid) => (st.modules.has(mkey(tenantId, mid)) ? st.blobs.get(mid) : undefined),
    moduleStorage: (tenantId) => [...st.modules.values()].filter((m) => m.tenantId === tenantId).reduce((n, m) => n + m.size, 0),

    createRun(run, quota) {
      if (!st.modules.has(mkey(run.tenantId, run.moduleId))) throw new Error('unknown module');
      if (st.runs.has(run.id)) throw new Error('run id exists');
      if (quota) {
        const waiting = runsOf(run.tenantId, 'queued').length;
        if (waiting + 1 > quota.queuedRuns) throw new QuotaError('queuedRuns', quota.queuedRuns, waiting);
        const cpu = store.cpuUsedSince(run.tenantId, quota.since);
        if (cpu >= quota.cpuMs) throw new QuotaError('cpuMs', quota.cpuMs, cpu);
      }
      const r: RunRecord = { ...run, state: 'queued', result: null, startedAt: null, finishedAt: null, attempts: 0, cpuMs: 0, nodeId: null };
      st.runs.set(r.id, r);
      queueChanged();
      return { ...r };
    },
    getRun: (tenantId, rid) => { const r = st.runs.get(rid); return r && r.tenantId === tenantId ? { ...r } : undefined; },
    listRuns: (tenantId, o) => paginate([...st.runs.values()]
      .filter((r) => r.tenantId === tenantId && (o.state === undefined || r.state === o.state))
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)), o),
    startRun(rid, at, nodeId) {
      const r = st.runs.get(rid);
      if (!r || r.state !== 'queued') return false;
      Object.assign(r, { state: 'running', startedAt: at, attempts: r.attempts + 1, nodeId: nodeId ?? null });
      return true;
    },
    claimRuns(o) {
      const out: RunRecord[] = [];
      const oldest = (tid: string) => Math.min(...runsOf(tid, 'queued').map((r) => r.createdAt));
      const order = () => [...st.tenants.values()]
        .filter((t) => runsOf(t.id, 'queued').length > 0 && runsOf(t.id, 'running').length < (t.quotas.concurrentRuns ?? o.concurrentRuns))
        .sort((a, b) => (st.served.get(a.id) ?? 0) - (st.served.get(b.id) ?? 0) || oldest(a.id) - oldest(b.id));
      for (let t = order()[0]; t && out.length < o.max; t = order()[0]) {
        const r = runsOf(t.id, 'queued').sort((a, b) => a.createdAt - b.createdAt)[0]!;
        const at = now();
        Object.assign(r, { state: 'running', startedAt: at, attempts: r.attempts + 1, nodeId: o.node });
        st.leases.set(r.id, at + o.leaseMs);
        st.served.set(t.id, Math.max(0, ...st.served.values()) + 1);
        out.push({ ...r });
        apply(r.id, { events: o.events?.({ ...r }) ?? [] });
      }
      return out;
    },
    renewLeases(node, runs, leaseMs, at) {
      return runs.filter((h) => {
        const r = st.runs.get(h.id);
        if (!r || r.state !== 'running' || r.attempts !== h.attempt || r.nodeId !== node) return false;
        st.leases.set(h.id, at + leaseMs);
        return true;
      }).map((h) => h.id);
    },
    expireLeases(at, writes) {
      const out = [...st.runs.values()].filter((r) => r.state === 'running' && (st.leases.get(r.id) ?? 0) < at)
        .map((r) => requeue(r.id)).filter((r): r is RunRecord => r !== undefined);
      for (const r of out) apply(r.id, writes?.(r));
      if (out.some((r) => r.state === 'queued')) queueChanged();
      return out;
    },
    finishRun(rid, state, result, at, cpuMs, attempt, writes) {
      const r = st.runs.get(rid);
      if (!TERMINAL.has(state)) throw new Error(`${state} is not terminal`);
      if (!r || TERMINAL.has(r.state)) return false;
      if (attempt !== undefined && (r.attempts !== attempt || r.state !== 'running')) return false;
      st.leases.delete(rid);
      Object.assign(r, { state, result, finishedAt: at, cpuMs: Math.max(0, Math.round(cpuMs)) });
      apply(rid, writes);
      return true;
    },
    requeueRun(rid, attempt, writes) {
      const r = requeue(rid, attempt);
      if (r) apply(rid, writes?.(r));
      if (r?.state === 'queued') queueChanged();
      return r;
    },
    runCounts: () => ({
      queued: [...st.runs.values()].filter((r) => r.state === 'queued').length,
      running: [...st.runs.values()].filter((r) => r.state === 'running').length,
      tenantsWaiting: new Set([...st.runs.values()].filter((r) => r.state === 'queued').map((r) => r.tenantId)).size,
    }),
    watchQueue(listener) {
      queueWatchers.add(listener);
      return { close: async () => { queueWatchers.delete(listener); } };
    },
    runsInState: (state) => [...st.runs.values()].filter((r) => r.state === state).sort((a, b) => a.createdAt - b.createdAt).map((r) => ({ ...r })),
    countRuns: (tenantId, state) => [...st.runs.values()].filter((r) => r.tenantId === tenantId && r.state === state).length,
    cpuUsedSince: (tenantId, since) => [...st.runs.values()].filter((r) => r.tenantId === tenantId && r.finishedAt !== null && r.finishedAt >= since).reduce((n, r) => n + r.cpuMs, 0),

    appendEvent(runId, type, data) {
      if (!st.runs.has(runId)) throw new Error('unknown run');
      const list = st.events.get(runId) ?? [];
      const ev: RunEventRecord = { runId, seq: list.length + 1, type, data, at: now(), attempt: st.runs.get(runId)!.attempts };
      list.push(ev);
      st.events.set(runId, list);
      for (const w of watchers) w({ runId, seq: ev.seq, type });
      return { ...ev };
    },
    watchEvents(w) {
      watchers.add(w);
      return { close: async () => { watchers.delete(w); } };
    },
    ping() {},
    events: (runId, afterSeq) => (st.events.get(runId) ?? []).filter((e) => e.seq > afterSeq).map((e) => ({ ...e })),

    pruneTenant(tenantId, before, limit) {
      const runs = [...st.runs.values()].filter((r) => r.tenantId === tenantId && TERMINAL.has(r.state) && r.finishedAt !== null && r.finishedAt < before)
        .sort((a, b) => a.finishedAt! - b.finishedAt!).slice(0, limit);
      for (const r of runs) {
        st.runs.delete(r.id);
        st.events.delete(r.id);
        for (const d of [...st.deliveries.values()]) if (d.runId === r.id) st.deliveries.delete(d.id);
      }
      const used = new Set([...st.runs.values()].filter((r) => r.tenantId === tenantId).map((r) => r.moduleId));
      const mods = [...st.modules.values()].filter((m) => m.tenantId === tenantId && m.createdAt < before && !used.has(m.id))
        .sort((a, b) => a.createdAt - b.createdAt).slice(0, limit);
      for (const m of mods) st.modules.delete(mkey(tenantId, m.id));
      return { runs: runs.length, modules: mods.length };
    },
    putDelivery(d) {
      if (!st.runs.has(d.runId)) throw new Error('unknown run');
      st.deliveries.set(d.id, { ...d });
    },
    listDeliveries: (runId) => [...st.deliveries.values()].filter((d) => d.runId === runId).sort((a, b) => a.createdAt - b.createdAt).map((d) => ({ ...d })),
    claimDeliveries(node, max, leaseMs, at) {
      const due = [...st.deliveries.values()].filter((d) => d.state === 'pending' && (d.nextAt ?? Infinity) <= at && (st.claims.get(d.id)?.until ?? 0) < at)
        .sort((a, b) => (a.nextAt ?? 0) - (b.nextAt ?? 0)).slice(0, Math.max(0, max));
      return due.map((d) => {
        d.attempts++;
        st.claims.set(d.id, { node, until: at + leaseMs });
        return { ...d };
      });
    },
    settleDelivery(node, d) {
      const cur = st.deliveries.get(d.id);
      if (!cur || cur.state !== 'pending' || cur.attempts !== d.attempts || st.claims.get(d.id)?.node !== node) return false;
      st.claims.delete(d.id);
      Object.assign(cur, { state: d.state, lastStatus: d.lastStatus, lastError: d.lastError, nextAt: d.nextAt, updatedAt: d.updatedAt });
      return true;
    },

    close() {},
  };
  return asyncStore(store);
}
