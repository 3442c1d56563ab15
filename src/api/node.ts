/** A node of a capsa cluster: one `capsa serve` process (its API and its executors). */
import { randomBytes } from 'node:crypto';
import os from 'node:os';

/** A node id unique across restarts and machines: `<hostname>-<pid>-<random>`. */
export function defaultNodeId(): string {
  return `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

