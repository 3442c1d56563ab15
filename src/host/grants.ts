import type { ArgdataValue } from '../wasi/argdata.js';
import type { Preopen } from '../wasi/wasi.js';

/**
 * The engine's grant types. They live here, below the manifest layer (src/manifest), so that the
 * engine imports nothing from above; the manifest builds these and hands them down.
 */

/** A rights grant: what the descriptor may do, and what descriptors opened through it may. */
export interface RightsGrant {
  base: bigint;
  inheriting: bigint;
  /** The names the manifest used (Capsicum names and pledge promises), for messages. */
  names: string[];
}

/**
 * One node of the argdata tree: the values argdata encodes (src/wasi/argdata.ts), whose seq and
 * map hold ArgNodes, plus `file`, which becomes an fd when the run starts.
 */
export type ArgNode =
  | Exclude<ArgdataValue, { type: 'seq' | 'map' }>
  | { type: 'seq'; items: ArgNode[] }
  | { type: 'map'; entries: [ArgNode, ArgNode][] }
  /**
   * A file opened for the guest with exactly these rights: by guest path inside a granted
   * directory, or (cloudabi-run documents, `host: true`) a host file or directory by host path.
   */
  | { type: 'file'; path: string; rights: RightsGrant; host?: boolean }
  /** A socket opened for the guest (cloudabi-run's `!socket`); an fd when the run starts. */
  | { type: 'socket'; socket: SocketGrant }
  /** A socket the host has opened: slot `slot` of the run's net memory (set by the host, never by callers). */
  | { type: 'netslot'; slot: number; rights?: RightsGrant | undefined };

/**
 * A socket the guest is handed (cloudabi-run's `!socket`, `--listen`): bound and listening, or
 * connected, by the host before the guest starts. `bind`/`connect` is "host:port", "[v6]:port"
 * or an absolute UNIX path. Rights only narrow what a socket of its kind may hold.
 */
export interface SocketGrant {
  bind?: string;
  connect?: string;
  /** 'stream' (TCP or a UNIX socket, the default) or 'dgram' (UDP: bound, receive-only; or connected). */
  type?: 'stream' | 'dgram';
  rights?: RightsGrant;
}

/**
 * A directory the guest starts with: the one shape from the manifest (src/manifest) through the
 * worker's spec to the fd table, where it is a Preopen (a host directory, or in-memory without
 * `host`). `readonly` turns on the mount's EROFS backstop beneath the rights check.
 */
export type DirGrant = Omit<Preopen, 'memory'>;
