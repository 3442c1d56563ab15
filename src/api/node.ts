/** A node of a capsa cluster: one `capsa serve` process (its API and its executors). */
import { randomBytes } from 'node:crypto';
import os from 'node:os';

/** A node id unique across restarts and machines: `<hostname>-<pid>-<random>`. */
export function defaultNodeId(): string {
  return `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** `--node-id`: what an operator may call a node (it shows in logs, /healthz, /metrics labels and runs). */
export function checkNodeId(id: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(id)) {
    return `--node-id ${JSON.stringify(id)}: expected 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit`;
  }
  return undefined;
}
