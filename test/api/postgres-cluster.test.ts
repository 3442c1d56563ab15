/**
 * Many nodes on one PostgreSQL database: three real `capsa serve` processes on loopback, sharing
 * the queue. Every run finishes exactly once; no tenant ever runs more than its concurrent-runs
 * quota across the nodes (checked from the runs' recorded start and end times); a tenant's long
 * queue does not hold back another tenant's single run; and the runs of a node killed with kill -9
 * end under the restart rule on the others once its leases expire.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { createPostgresStore } from '../../src/api/store/postgres.js';
import type { Store } from '../../src/api/store/types.js';
import { freshDatabase } from '../helpers/pg.js';
import { api, startServe, type Server } from '../helpers/serve.js';
import { slowGuest } from './helpers.js';

interface Node extends Server { id: string }

let url: string;
let store: Store & { pool: pg.Pool };
let nodes: Node[] = [];

/** `capsa serve` on the database, once it logs "listening". */
async function startNode(id: string, extra: string[]): Promise<Node> {
  const node = { id, ...await startServe(['--store', url, '--node-id', id, '--isolation', 'none', ...extra], { CAPSA_LOG_LEVEL: 'warn' }) };
  nodes.push(node);
  return node;
}

async function tenant(name: string): Promise<{ id: string; key: string }> {
  const t = await store.createTenant(name);
  return { id: t.id, key: (await store.createKey(t.id)).key };
}

interface Row { id: string; tenant_id: string; state: string; created_at: number; started_at: number; finished_at: number; attempts: number; node_id: string; exits: number }
const rows = async (): Promise<Row[]> => (await store.pool.query<Row>(
  `SELECT r.id, r.tenant_id, r.state, r.created_at, r.started_at, r.finished_at, r.attempts, r.node_id,
          (SELECT count(*) FROM run_events e WHERE e.run_id = r.id AND e.type = 'exit')::int AS exits
   FROM runs r`)).rows;

/** The most runs of one tenant whose [start, end) intervals overlap at any instant. */
function peak(spans: [number, number][]): number {
  const edges = spans.flatMap(([s, e]) => [[s, 1], [e, -1]] as [number, number][]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of edges) most = Math.max(most, now += d);
  return most;
}

beforeEach(async () => {
  url = await freshDatabase();
  store = await createPostgresStore({ url, poolSize: 3 });
});

afterEach(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await Promise.all(nodes.map((n) => n.exited));
  nodes = [];
  await store.close();
});

describe('three capsa serve nodes on one database', () => {
  it('2,000 runs of three tenants: each finishes once, no tenant above its quota on any instant, a single run is not held back by a 500-run queue', async () => {
    const QUOTA = 2;
    // Three workers a node, nine in all, against a bound of two per tenant: the bound, not the workers, is what holds.
    const flags = ['--workers', '3', '--concurrent-runs', String(QUOTA), '--lease', '5s'];
    const cluster = await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id, flags)));
    const [a, b, c] = [await tenant('a'), await tenant('b'), await tenant('c')];
    // 30 ms of wall time a run: a tenant's queue drains at most 2 runs per 30 ms, so A's 1,000 outlast their submission.
    const guest = slowGuest(30);
    const mods = new Map<string, string>();
    for (const [i, t] of [a, b, c].entries()) {
      const up = await api(cluster[i]!, 'POST', '/v1/modules', t.key, guest, 30_000);
      expect([200, 201]).toContain(up.status);
      mods.set(t.id, up.body['id'] as string);
    }
    /** `n` runs of the tenant in batches of 20, the batches spread over the nodes. */
    const submit = async (t: { id: string; key: string }, n: number) => {
      const batches = Array.from({ length: Math.ceil(n / 20) }, (_, i) => Math.min(20, n - i * 20));
      await Promise.all(cluster.map(async (node, k) => {
        for (let i = k; i < batches.length; i += cluster.length) {
          const r = await api(node, 'POST', '/v1/runs:batch', t.key, Array.from({ length: batches[i]! }, () => ({ module: mods.get(t.id) })), 30_000);
          expect(r.status).toBe(200);
          expect((r.body['items'] as { status: number }[]).every((x) => x.status === 201)).toBe(true);
        }
      }));
    };
    await Promise.all([submit(a, 1000), submit(b, 999)]);
    expect(await store.countRuns(a.id, 'queued')).toBeGreaterThanOrEqual(500);
    const single = await api(cluster[2]!, 'POST', '/v1/runs', c.key, { module: mods.get(c.id) }, 30_000);
    expect(single.status).toBe(201);

    // Every run ends (wait for the state, polling the database).
    await vi.waitFor(async () => {
      expect((await store.runCounts())).toMatchObject({ queued: 0, running: 0 });
    }, { timeout: 400_000, interval: 250 });
    // A run's end and its exit event are one transaction: every ended run has its exit already.
    const all = await rows();
    expect(all).toHaveLength(2000);
    // Exactly once: one attempt, one exit event, every one exited.
    expect(all.filter((r) => r.state !== 'exited' || r.attempts !== 1 || r.exits !== 1)).toEqual([]);
    // Spread over the nodes.
    for (const n of cluster) expect(all.filter((r) => r.node_id === n.id).length).toBeGreaterThan(0);
    // No tenant ever had more than its quota running, across the nodes.
    for (const t of [a, b, c]) expect(peak(all.filter((r) => r.tenant_id === t.id).map((r) => [r.started_at, r.finished_at]))).toBeLessThanOrEqual(QUOTA);
    expect(peak(all.filter((r) => r.tenant_id === a.id).map((r) => [r.started_at, r.finished_at]))).toBe(QUOTA);
    // C's single run started after at most a few of the others did (one claim per node in flight, at most).
    const cRun = all.find((r) => r.tenant_id === c.id)!;
    const before = all.filter((r) => r.tenant_id !== c.id && r.started_at > cRun.created_at && r.started_at < cRun.started_at);
    expect(before.length).toBeLessThanOrEqual(2 * QUOTA);
  }, 480_000);

  it('kill -9 of a node mid-run: its runs are recovered by the others once its leases expire, and retried there', async () => {
    const flags = ['--workers', '2', '--lease', '2s'];
    const cluster = await Promise.all(['k1', 'k2', 'k3'].map((id) => startNode(id, flags)));
    const t = await tenant('k');
    // Long enough to be running when the node dies, short enough to end on its retry.
    const up = await api(cluster[0]!, 'POST', '/v1/modules', t.key, slowGuest(3000), 30_000);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await api(cluster[i % 3]!, 'POST', '/v1/runs', t.key, { module: up.body['id'], manifest: 'limits: { wall: 60s, cpu: 60s }' }, 30_000);
      expect(r.status).toBe(201);
      ids.push(r.body['id'] as string);
    }
    // Wait until the victim runs something, then kill it.
    const victim = cluster[0]!;
    let lost: string[] = [];
    await vi.waitFor(async () => {
      lost = (await rows()).filter((r) => r.node_id === victim.id && r.state === 'running').map((r) => r.id);
      expect(lost.length).toBeGreaterThan(0);
    }, { timeout: 60_000, interval: 50 });
    victim.proc.kill('SIGKILL');
    await victim.exited;
    // Its runs come back on another node as attempt 2 and end there, once. Wait for every run (the
    // others too: the two nodes left may still be busy) to be exited with its exit event stored.
    await vi.waitFor(async () => {
      const mine = (await rows()).filter((r) => ids.includes(r.id));
      expect(mine.every((r) => r.state === 'exited' && r.exits > 0)).toBe(true);
    }, { timeout: 120_000, interval: 100 });
    const after = (await rows()).filter((r) => ids.includes(r.id));
    for (const r of after) {
      expect(r.state).toBe('exited');
      expect(r.exits).toBe(1);
      if (lost.includes(r.id)) {
        expect(r.attempts).toBe(2);
        expect(r.node_id).not.toBe(victim.id);
      }
    }
    // The status event of the recovery says why.
    const events = await store.events(lost[0]!, 0);
    expect(events.map((e) => [e.type, e.attempt])).toContainEqual(['attempt', 2]);
    expect(events.some((e) => e.type === 'status' && /k1\) stopped renewing its lease/.test(e.data))).toBe(true);
  }, 240_000);
});
