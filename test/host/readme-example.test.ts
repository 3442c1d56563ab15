// The embedding example of issue 3 / the README, as written, through the package's own name.
import fs from 'node:fs/promises';
import { expect, it } from 'vitest';
import { createHost } from 'capsa';

it('the README example runs as written', async () => {
  const host = await createHost({ workers: 2 });
  try {
    const result = await host.run({
      module: await fs.readFile(new URL('../../guests/build/cat.wasm', import.meta.url)),
      args: ['/data/in.txt', '-'], env: { A: '1' }, stdin: 'input',
      files: { '/data/in.txt': 'hello' },
      limits: { wallMs: 2000, cpuMs: 1000, memoryBytes: 64 << 20, outputBytes: 1 << 20, fds: 64 },
      signal: AbortSignal.timeout(5000),
    });
    expect(result).toMatchObject({ status: 'exited', exitCode: 0, blame: 'guest' });
    expect(Buffer.from(result.stdout).toString()).toBe('helloinput');
    expect(Object.keys(result.files)).toEqual(['/data/in.txt']);
    expect(result.usage.peakMemoryBytes).toBeGreaterThan(0);
    expect(result.audit).toEqual({ events: [], dropped: 0 });
  } finally {
    await host.close();
  }
});
