/** The privilege-separated grep over REST: the guest, its module file and the data are the request's in-memory files. */
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call, json, startService, waitRun, type Service } from './helpers.js';

const GREP = fs.readFileSync(new URL('../../guests/build/privsep_grep.wasm', import.meta.url));
let svc: Service;
let key: string;

beforeAll(async () => {
  svc = await startService();
  ({ key } = await svc.tenant());
});
afterAll(async () => { await svc.close(); });

it('POST /v1/runs: privsep_grep starts its child, and the run shows the child\'s status', async () => {
  const module = await svc.upload(key, GREP);
  const r = await call(svc.app, 'POST', '/v1/runs', {
    key,
    json: {
      module, manifest: 'args: [needle, /data/f.txt]\nlimits: { wall: 60s }', wait: 60,
      files: { '/data/f.txt': 'hay\nneedle 1\nstraw\nneedle 2\n' },
      filesBase64: { '/bin/privsep_grep.wasm': GREP.toString('base64') },
    },
  });
  expect(r.status).toBe(201);
  const run = await json(r);
  const done = run.status === 'running' || run.status === 'queued' ? await waitRun(svc.app, key, run.id, 60_000) : run;
  expect(done).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'needle 1\nneedle 2\n', stderr: '' });
  expect(done.children).toEqual([expect.objectContaining({ status: 'exited', exitCode: 0, parentPid: expect.any(Number) })]);
}, 90_000);
