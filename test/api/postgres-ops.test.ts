/**
 * Operating nodes on PostgreSQL: /healthz says 503 while the node cannot reach its database (a
 * TCP proxy in front of the server is cut, then restored); a `capsa serve` process names its node
 * in its logs, /healthz, /metrics and runs; SIGTERM drains it: running runs go back to the queue
 * after the grace time, its event streams are told to reconnect, and it exits 0.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshDatabase } from '../helpers/pg.js';
import { exitOf, killServers, send, startServe } from '../helpers/serve.js';
import { ADMIN, call, json, slowGuest, startService, tickerGuest } from './helpers.js';

let url: string;
beforeAll(async () => { url = await freshDatabase(); });
afterAll(() => { killServers(); });

/** A TCP proxy to the database that the test can cut (refusing and dropping connections) and restore. */
async function proxyTo(target: URL): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(Number(target.port), target.hostname);
    for (const s of [client, up]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
    client.pipe(up).pipe(client);
  });
  const listen = (port: number) => new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  const u = new URL(target);
  u.port = String(port);
  const cut = async () => {
    await new Promise<void>((r) => { server.close(() => r()); for (const s of sockets) s.destroy(); });
  };
  return { url: u.toString(), cut, restore: () => listen(port), close: cut };
}

describe('node operations on PostgreSQL', () => {
  it('/healthz answers 503 database_unreachable while the database cannot be reached, 200 again once it can', async () => {
    const proxy = await proxyTo(new URL(url));
    const svc = await startService({ databaseUrl: proxy.url, nodeId: 'health-1', paused: true });
    try {
      const ok = await call(svc.app, 'GET', '/healthz');
      expect(ok.status).toBe(200);
      expect(await json(ok)).toMatchObject({ status: 'ok', node: 'health-1', database: 'ok' });
      await proxy.cut();
      const down = await call(svc.app, 'GET', '/healthz');
      expect(down.status).toBe(503);
      expect(await json(down)).toMatchObject({ status: 'database_unreachable', node: 'health-1', database: 'unreachable' });
      // /metrics still answers with the node's own figures; the cluster's, which need the database, are left out.
      const m = await (await call(svc.app, 'GET', '/metrics')).text();
      expect(m).toContain('capsa_node_info{node="health-1"} 1');
      expect(m).not.toMatch(/^capsa_cluster_queue_depth /m);
      await proxy.restore();
      await vi.waitFor(async () => expect((await call(svc.app, 'GET', '/healthz')).status).toBe(200), { timeout: 20_000 });
    } finally {
      await proxy.restore().catch(() => {});
      await svc.close();
      await proxy.close();
    }
  });

  it('capsa serve --node-id names the node in logs, /healthz, /metrics and runs; SIGTERM drains it: the run is queued again, streams are told to reconnect, exit 0', { timeout: 120_000 }, async () => {
    const s = await startServe(['--store', url, '--node-id', 'drain-1', '--workers', '1', '--isolation', 'none', '--grace', '1s'], { CAPSA_ADMIN_TOKEN: ADMIN });
    const req = (method: string, p: string, key: string, body?: unknown) => send(s.url, method, p, key, body, 20_000);
    expect(s.logs.find((l) => l['msg'] === 'listening')).toMatchObject({ node: 'drain-1' });
    expect(await (await req('GET', '/healthz', '')).json()).toMatchObject({ status: 'ok', node: 'drain-1', database: 'ok' });
    const t = await (await req('POST', '/v1/admin/tenants', ADMIN, { name: 'drain' })).json() as { key: { key: string } };
    const key = t.key.key;
    const mod = (await (await req('POST', '/v1/modules', key, slowGuest(60_000))).json() as { id: string }).id;
    const run = await (await req('POST', '/v1/runs', key, { module: mod, manifest: 'limits: { wall: 60s, cpu: 60s }' })).json() as { id: string };
    // The stream is open and the run is running on this node.
    const res = await req('GET', `/v1/runs/${run.id}/events`, key);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('"state":"running"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(await (await req('GET', `/v1/runs/${run.id}`, key)).json()).toMatchObject({ status: 'running', node: 'drain-1' });
    expect(await (await req('GET', '/metrics', '')).text()).toContain('capsa_workers_busy{node="drain-1"} 1');
    // Log lines leave in batches (src/api/log.ts): wait for it.
    await vi.waitFor(() => expect(s.logs.find((l) => l['msg'] === 'run started')).toMatchObject({ node: 'drain-1', run: run.id }), { timeout: 10_000 });

    s.proc.kill('SIGTERM');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    // Told to reconnect (with a retry), after the run went back to the queue.
    expect(text).toMatch(/event: reconnect\ndata: [^\n]*\nretry: \d+\n\n$/);
    expect(text).toContain('"state":"queued"');
    expect(text).not.toContain('event: exit');
    expect(await exitOf(s)).toEqual({ code: 0, signal: null });
    // The process's last output may arrive after its exit event.
    await vi.waitFor(() => expect(s.logs.find((l) => l['msg'] === 'stopped')).toMatchObject({ node: 'drain-1' }), { timeout: 10_000 });
    // The run is back in the queue, its first attempt spent, for the next node to take.
    const svc = await startService({ databaseUrl: url, paused: true });
    try {
      expect(await json(await call(svc.app, 'GET', `/v1/runs/${run.id}`, { key }))).toMatchObject({ status: 'queued', attempts: 1, node: 'drain-1' });
      await call(svc.app, 'DELETE', `/v1/runs/${run.id}`, { key });
    } finally {
      await svc.close();
    }
  });
});

describe('kill -9 of the node a client streams from', () => {
  it('the client resumes on another node with Last-Event-ID: the run\'s retry there, no event twice, none missing', { timeout: 180_000 }, async () => {
    const db = await freshDatabase();
    const flags = (id: string) => ['--store', db, '--node-id', id, '--workers', '1', '--isolation', 'none', '--lease', '2s'];
    const [n1, n2] = await Promise.all([startServe(flags('kill-1'), { CAPSA_ADMIN_TOKEN: ADMIN }), startServe(flags('kill-2'), { CAPSA_ADMIN_TOKEN: ADMIN })]);
    const req = (base: string, method: string, p: string, key: string, body?: unknown) => send(base, method, p, key, body, 60_000);
    const key = (await (await req(n1.url, 'POST', '/v1/admin/tenants', ADMIN, { name: 'kill' })).json() as { key: { key: string } }).key.key;
    const mod = (await (await req(n1.url, 'POST', '/v1/modules', key, tickerGuest(40, 100))).json() as { id: string }).id;
    const run = await (await req(n1.url, 'POST', '/v1/runs', key, { module: mod })).json() as { id: string };
    // A is the node that claimed it, B the other.
    let node = '';
    await vi.waitFor(async () => { node = (await (await req(n1.url, 'GET', `/v1/runs/${run.id}`, key)).json() as { node: string | null }).node ?? ''; expect(node).not.toBe(''); }, { timeout: 30_000 });
    const [a, b] = node === 'kill-1' ? [n1, n2] : [n2, n1];
    const bId = node === 'kill-1' ? 'kill-2' : 'kill-1';
    type Ev = { id: number; event: string; data: any };
    /** Pushes a stream's events to `evs` until `until` or its end (a killed node's stream ends or fails). */
    const collect = async (res: Response, evs: Ev[], until: () => boolean): Promise<void> => {
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const f = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
            if (f.id === undefined) continue;
            evs.push({ id: Number(f.id), event: f.event!, data: JSON.parse(f.data!) });
            if (until()) { await reader.cancel().catch(() => {}); return; }
          }
        }
      } catch { /* the node died under the stream */ }
    };
    const ticks = (evs: Ev[], attempt: number) => evs.filter((e) => e.event === 'stdout' && e.data.attempt === attempt).map((e) => e.data.data).join('');
    // The client streams from A, the node running the run; A dies after three ticks.
    const fromA: Ev[] = [];
    const streamA = collect(await req(a.url, 'GET', `/v1/runs/${run.id}/events`, key), fromA, () => false);
    await vi.waitFor(() => expect(ticks(fromA, 1).length).toBeGreaterThanOrEqual(15), { timeout: 30_000 });
    a.proc.kill('SIGKILL');
    await exitOf(a);
    await streamA;
    expect(ticks(fromA, 1)).toMatch(/^(tick\n)+$/);
    // The client resumes on B after the last event A sent: A's lease expires, B retries the run and streams it to its exit.
    const resumed: Ev[] = [];
    await collect(await fetch(new URL(`/v1/runs/${run.id}/events`, b.url), { headers: { authorization: `Bearer ${key}`, 'last-event-id': String(fromA.at(-1)!.id) } }), resumed, () => resumed.at(-1)?.event === 'exit');
    const all = [...fromA, ...resumed];
    expect(all.map((e) => e.id)).toEqual(all.map((_, i) => i + 1));
    expect(all.find((e) => e.event === 'attempt')?.data).toMatchObject({ attempt: 2 });
    expect(ticks(all, 2)).toBe('tick\n'.repeat(40));
    expect(all.at(-1)).toMatchObject({ event: 'exit', data: { state: 'exited', attempt: 2 } });
    expect(await (await req(b.url, 'GET', `/v1/runs/${run.id}`, key)).json()).toMatchObject({ status: 'exited', attempts: 2, node: bId, stdout: 'tick\n'.repeat(40) });
    b.proc.kill('SIGTERM');
    expect(await exitOf(b)).toEqual({ code: 0, signal: null });
  });
});
