/**
 * Run events across the nodes of one PostgreSQL database: node A executes runs; nodes B and C
 * (services on the same database that run nothing themselves) serve their event streams live,
 * resume a stream another node served (Last-Event-ID), wait for them, and cancel them, which
 * stops the guest on A. A drained node tells its stream clients to reconnect elsewhere.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshDatabase } from '../helpers/pg.js';
import { command } from '../helpers/wat.js';
import { call, json, readSSE, startService, tickerGuest, waitRun, type Service } from './helpers.js';

const LOOPING = command(`
  (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 8))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
  (loop $l (br $l))`,
'(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))',
'(memory (export "memory") 1) (data (i32.const 64) "looping\\n")');

let url: string;
let a: Service;
let b: Service;
let c: Service;
let key: string;
let ticker: string;
let looping: string;
const started: string[] = [];

beforeAll(async () => {
  url = await freshDatabase();
  a = await startService({ databaseUrl: url, nodeId: 'node-a' });
  // B and C run nothing (their schedulers are not started): whatever they show of a run comes from A through the database.
  b = await startService({ databaseUrl: url, nodeId: 'node-b', paused: true, host: a.host });
  c = await startService({ databaseUrl: url, nodeId: 'node-c', paused: true, host: a.host });
  ({ key } = await a.tenant());
  ticker = await a.upload(key, tickerGuest(30, 100));
  looping = await a.upload(key, LOOPING);
});

afterAll(async () => {
  // A run a failed test left running is cancelled on its node, not left to its wall limit.
  for (const id of started) await call(a.app, 'DELETE', `/v1/runs/${id}`, { key });
  await c?.close();
  await b?.close();
  await a?.close();
});

const submit = async (module: string, manifest?: string): Promise<string> => {
  const r = await call(a.app, 'POST', '/v1/runs', { key, json: { module, ...(manifest ? { manifest } : {}) } });
  expect(r.status).toBe(201);
  const id = (await json(r)).id as string;
  started.push(id);
  return id;
};

const stdoutOf = (evs: { event: string; data: string }[]) => evs.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data as string).join('');

describe('events of a run another node executes', () => {
  it('an SSE stream on node B shows the run A executes live, in order, to its exit', async () => {
    const id = await submit(ticker);
    const res = await call(b.app, 'GET', `/v1/runs/${id}/events`, { key });
    expect(res.status).toBe(200);
    const evs = await readSSE(res);
    const run = await json(await call(b.app, 'GET', `/v1/runs/${id}`, { key }));
    expect(run).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'tick\n'.repeat(30), node: 'node-a' });
    expect(evs.map((e) => Number(e.id))).toEqual(evs.map((_, i) => i + 1));
    expect(stdoutOf(evs)).toBe('tick\n'.repeat(30));
    expect(evs.at(-1)?.event).toBe('exit');
  });

  it('B\'s stream gets A\'s first output while the run is still running', async () => {
    // The first tick comes 2 s after the start (after B's stream read what was stored), the last
    // 5 s later: without events across nodes, B would show it only at its keep-alive re-read
    // (15 s), after the run ended.
    const id = await submit(await a.upload(key, tickerGuest(50, 100, 2000)));
    const seen = await readSSE(await call(b.app, 'GET', `/v1/runs/${id}/events`, { key }), (e) => e.event === 'stdout');
    expect(JSON.parse(seen.at(-1)!.data)).toMatchObject({ data: 'tick\n', attempt: 1 });
    expect((await json(await call(b.app, 'GET', `/v1/runs/${id}`, { key }))).status).toBe('running');
    await waitRun(a.app, key, id);
  });

  it('a client resumes on node C with Last-Event-ID where B left off: no event twice, none missing', async () => {
    const id = await submit(ticker);
    // B's stream is cut after the third tick (a client or a node going away).
    let ticks = 0;
    const first = await readSSE(await call(b.app, 'GET', `/v1/runs/${id}/events`, { key }), (e) => e.event === 'stdout' && ++ticks === 3);
    const last = first.at(-1)!.id;
    const rest = await readSSE(await call(c.app, 'GET', `/v1/runs/${id}/events`, { key, headers: { 'last-event-id': last } }));
    const all = [...first, ...rest];
    expect(all.map((e) => Number(e.id))).toEqual(all.map((_, i) => i + 1));
    expect(stdoutOf(all)).toBe('tick\n'.repeat(30));
    expect(rest.at(-1)?.event).toBe('exit');
    expect(stdoutOf(rest)).not.toBe('');
  });

  it('wait on node B ends when A\'s run does, not at its deadline', async () => {
    const id = await submit(ticker);
    await b.scheduler.events.waitFor(id, 600_000, async () => false);
    expect((await json(await call(b.app, 'GET', `/v1/runs/${id}`, { key }))).status).toBe('exited');
  });

  it('DELETE on node B cancels a run A executes: the guest stops on A, the run keeps its output, one exit', async () => {
    const id = await submit(looping, 'limits: { wall: 60s, cpu: 60s }');
    await readSSE(await call(b.app, 'GET', `/v1/runs/${id}/events`, { key }), (e) => e.event === 'stdout');
    expect(a.host.stats().busy).toBe(1);
    const r = await call(b.app, 'DELETE', `/v1/runs/${id}`, { key });
    expect(r.status).toBe(200);
    expect(await json(r)).toMatchObject({ status: 'cancelled', stdout: 'looping\n', message: 'Cancelled while it ran on node node-a' });
    // The guest would spin for 60 s; A hears the exit B stored and aborts it.
    await vi.waitFor(() => expect(a.host.stats().busy).toBe(0), { timeout: 20_000 });
    await vi.waitFor(() => expect(a.scheduler.stats().running).toBe(0), { timeout: 10_000 });
    const evs = await readSSE(await call(c.app, 'GET', `/v1/runs/${id}/events`, { key }));
    expect(evs.filter((e) => e.event === 'exit')).toHaveLength(1);
    expect(JSON.parse(evs.at(-1)!.data)).toMatchObject({ state: 'cancelled' });
    expect((await waitRun(a.app, key, id)).status).toBe('cancelled');
  });

  it('a draining node tells its stream clients to reconnect (retry), and they resume on another node', async () => {
    const d = await startService({ databaseUrl: url, nodeId: 'node-d', paused: true, host: a.host });
    try {
      const id = await submit(ticker);
      const res = await call(d.app, 'GET', `/v1/runs/${id}/events`, { key });
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let text = '';
      // Drained once the first tick is through.
      while (!text.includes('event: stdout')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
      }
      d.scheduler.events.drain();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
      }
      // The stream ends with a reconnect event carrying a retry, and no exit: the run goes on.
      expect(text).toMatch(/event: reconnect\ndata: [^\n]*\nretry: 500\n\n$/);
      expect(text).not.toContain('event: exit');
      const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => m[1]!);
      const rest = await readSSE(await call(c.app, 'GET', `/v1/runs/${id}/events`, { key, headers: { 'last-event-id': ids.at(-1)! } }));
      expect([...ids.map(Number), ...rest.map((e) => Number(e.id))]).toEqual(Array.from({ length: ids.length + rest.length }, (_, i) => i + 1));
      expect(rest.at(-1)?.event).toBe('exit');
      // A stream opened on a drained node gets what is stored after its Last-Event-ID, then is told to go elsewhere.
      const late = await (await call(d.app, 'GET', `/v1/runs/${id}/events`, { key, headers: { 'last-event-id': String(Number(rest.at(-1)!.id) - 1) } })).text();
      expect(late).toMatch(/^event: exit\n/);
      const none = await (await call(d.app, 'GET', `/v1/runs/${id}/events`, { key, headers: { 'last-event-id': rest.at(-1)!.id } })).text();
      expect(none).toMatch(/^event: reconnect\n[^]*retry: 500\n\n$/);
    } finally {
      await d.close();
    }
  });
});
