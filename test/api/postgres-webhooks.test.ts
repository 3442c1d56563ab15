/**
 * Webhooks on a cluster: two `capsa serve` processes on one PostgreSQL database and a real receiver
 * on loopback. A delivery is a row from the moment its run ends and each attempt is made by the one
 * node that claimed it: every attempt reaches the receiver once (counted by delivery id and attempt
 * number), whichever nodes run, retry or start meanwhile; a node killed with kill -9 in the middle of
 * an attempt has the delivery made by the other one once its claim's lease ran out.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { createPostgresStore } from '../../src/api/store/postgres.js';
import type { DeliveryRecord, Store } from '../../src/api/store/types.js';
import { freshDatabase } from '../helpers/pg.js';
import { api, startServe, type Server } from '../helpers/serve.js';
import { HELLO } from './helpers.js';

interface Post { delivery: string; attempt: number; run: string; answered?: number }

/** A receiver on 127.0.0.1; `answer` says the status of each POST, or undefined to hold it unanswered. */
async function receiver(answer: (p: Post, earlier: Post[]) => number | undefined) {
  const got: Post[] = [];
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString('utf8'); });
    req.on('end', () => {
      const j = JSON.parse(body) as { delivery: string; attempt: number; run: { id: string } };
      const p: Post = { delivery: String(req.headers['capsa-delivery']), attempt: j.attempt, run: j.run.id };
      expect(p.delivery).toBe(j.delivery);
      const status = answer(p, got.filter((g) => g.delivery === p.delivery));
      got.push(p);
      if (status === undefined) { held.push(res); return; }
      p.answered = status;
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`, got,
    close: () => new Promise<void>((r) => { for (const h of held) h.destroy(); server.closeAllConnections(); server.close(() => r()); }),
  };
}

let url: string;
let store: Store & { pool: pg.Pool };
let nodes: Server[] = [];
const cleanup: (() => Promise<void>)[] = [];

async function startNode(id: string, extra: string[] = []): Promise<Server> {
  const node = await startServe(['--store', url, '--node-id', id, '--isolation', 'none', '--workers', '2',
    '--webhook-allow', '127.0.0.1', '--webhook-allow-private', ...extra], { CAPSA_LOG_LEVEL: 'warn' });
  nodes.push(node);
  return node;
}

const deliveries = async (): Promise<(DeliveryRecord & { node_id: string | null })[]> => (await store.pool.query(
  `SELECT id, run_id AS "runId", state, attempts, last_status AS "lastStatus", last_error AS "lastError", node_id FROM webhook_deliveries ORDER BY id`)).rows;

beforeEach(async () => {
  url = await freshDatabase();
  store = await createPostgresStore({ url, poolSize: 3 });
});

afterEach(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await Promise.all(nodes.map((n) => n.exited));
  nodes = [];
  for (const f of cleanup.splice(0).reverse()) await f();
  await store.close();
});

describe('webhooks on two nodes sharing one database', () => {
  it('each attempt of each delivery reaches the receiver once, while both nodes end runs and retry, and one starts meanwhile', async () => {
    // Refused (500) until the second node is up, so that deliveries are pending, and retried, when it starts.
    let second = false;
    const rx = await receiver(() => (second ? 204 : 500));
    cleanup.push(() => rx.close());
    const n1 = await startNode('w1');
    const t = await store.createTenant('hooks');
    const key = (await store.createKey(t.id)).key;
    const mod = (await api(n1, 'POST', '/v1/modules', key, HELLO, 30_000)).body['id'];
    const submit = async (node: Server, n: number) => {
      for (let i = 0; i < n; i++) expect((await api(node, 'POST', '/v1/runs', key, { module: mod, callback_url: rx.url }, 30_000)).status).toBe(201);
    };
    await submit(n1, 8);
    await vi.waitFor(async () => {
      const ds = await deliveries();
      expect(ds).toHaveLength(8);
      expect(ds.every((d) => d.state === 'pending' && d.attempts >= 1)).toBe(true);
    }, { timeout: 60_000, interval: 100 });
    const n2 = await startNode('w2');
    second = true;
    await Promise.all([submit(n1, 6), submit(n2, 6)]);
    await vi.waitFor(async () => {
      const ds = await deliveries();
      expect(ds).toHaveLength(20);
      expect(ds.filter((d) => d.state !== 'delivered')).toEqual([]);
    }, { timeout: 120_000, interval: 200 });
    const ds = await deliveries();
    expect(new Set(ds.map((d) => d.runId)).size).toBe(20);
    for (const d of ds) {
      const posts = rx.got.filter((p) => p.delivery === d.id);
      // Attempt numbers 1..n, each once; only the last answered 2xx; the store counted them all.
      expect(posts.map((p) => p.attempt)).toEqual(posts.map((_, i) => i + 1));
      expect(posts.filter((p) => p.answered === 204)).toHaveLength(1);
      expect(posts[posts.length - 1]!.answered).toBe(204);
      expect(d.attempts).toBe(posts.length);
      expect(posts.every((p) => p.run === d.runId)).toBe(true);
    }
    expect(rx.got.filter((p) => p.answered === 204)).toHaveLength(20);
  }, 240_000);

  it('kill -9 of the node making an attempt: the other node makes the delivery once its claim ran out', async () => {
    // The first attempt is held unanswered (the node dies while it waits); the next one is answered.
    const rx = await receiver((_p, earlier) => (earlier.length === 0 ? undefined : 204));
    cleanup.push(() => rx.close());
    const flags = ['--webhook-timeout', '5s'];
    const [n1, n2] = [await startNode('k1', flags), await startNode('k2', flags)];
    const t = await store.createTenant('hooks');
    const key = (await store.createKey(t.id)).key;
    const mod = (await api(n1, 'POST', '/v1/modules', key, HELLO, 30_000)).body['id'];
    const run = await api(n1, 'POST', '/v1/runs', key, { module: mod, callback_url: rx.url }, 30_000);
    expect(run.status).toBe(201);
    // The attempt is in flight: find the node holding it, and kill it.
    let holder = '';
    await vi.waitFor(async () => {
      expect(rx.got).toHaveLength(1);
      const [d] = await deliveries();
      expect(d).toMatchObject({ state: 'pending', attempts: 1 });
      holder = d!.node_id!;
      expect(['k1', 'k2']).toContain(holder);
    }, { timeout: 60_000, interval: 50 });
    const victim = holder === 'k1' ? n1 : n2;
    victim.proc.kill('SIGKILL');
    await victim.exited;
    await vi.waitFor(async () => {
      expect((await deliveries())[0]).toMatchObject({ state: 'delivered', attempts: 2, lastStatus: 204, node_id: null });
    }, { timeout: 60_000, interval: 100 });
    expect(rx.got.map((p) => [p.attempt, p.answered])).toEqual([[1, undefined], [2, 204]]);
    expect(new Set(rx.got.map((p) => p.delivery)).size).toBe(1);
  }, 180_000);
});
