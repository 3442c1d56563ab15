import { describe, expect, it } from 'vitest';
import { ERRNO } from '../../src/wasi/constants.js';
import { harness } from '../helpers/harness.js';

describe('harness smoke', () => {
  it('opens, writes and reads back a file in an in-memory preopen', () => {
    const h = harness({ preopens: [{ guest: '/tmp', memory: true }] });
    const [e1, fd] = h.open(3, 'a.txt', { oflags: 1 });
    expect(e1).toBe(ERRNO.SUCCESS);
    expect(h.write(fd, 'hello')).toBe(ERRNO.SUCCESS);
    const [e2, fd2] = h.open(3, 'a.txt');
    expect(e2).toBe(ERRNO.SUCCESS);
    expect(h.read(fd2)).toEqual([0, 'hello']);
  });
});
