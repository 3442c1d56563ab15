/**
 * A Casper service, shaped as libcasper's CREATE_SERVICE(name, limit, command): one file per
 * service, two functions. Services run on the host thread, outside the guest's worker, except
 * those that need no host authority (services/in-worker.ts), which the guest's worker answers.
 */
import type { NvList } from './nvlist.js';
import type { Stat } from '../wasi/fs/types.js';

/** Thrown by a service's command to answer with an errno (the reply's "error"). */
export class CasperError extends Error {
  /**
   * `refused`: the call is outside the channel's limits (not a failure). The broker then adds
   * `refused` (this message) to the reply, so that the guest's library can tell a refusal from a
   * failure that shares its error code (cap_dns's NO_RECOVERY) and set errno to ENOTCAPABLE.
   */
  constructor(readonly errno: number, message?: string, readonly refused = false) {
    super(message ?? `errno ${errno}`);
    this.name = 'CasperError';
  }
}

/** What a command may do besides computing its reply. */
export interface ServiceContext {
  /** State kept for this channel between calls (getpwent's cursor…); cloned channels start fresh. */
  channelState: Map<string, unknown>;
  /** State kept for the whole sandbox (sysctl's writable overlay…). */
  sandboxState: Map<string, unknown>;
  /** The operator's configuration of this service (e.g. the virtual passwd database, DNS servers). */
  config: unknown;
  /**
   * Asks the guest's worker to open a file of the guest's own filesystem (fileargs): the reply's
   * descriptor pair gets the fd the worker installs. Returns the index to put in the pair.
   */
  openInGuest?(request: { path: string; flags: number; mode: number; rights: bigint }): number;
  /**
   * lstat(2) of a path of the guest's own filesystem (fileargs_lstat), resolved as the guest's
   * open() would resolve it (against its preopens) but not following a final symlink: the WASI
   * filestat of `path_filestat_get` without SYMLINK_FOLLOW. Rejects with CasperError(errno)
   * (ENOENT, ENOTCAPABLE, …) when the guest's own call would fail.
   */
  lstatInGuest?(path: string): Promise<GuestFilestat>;
  /**
   * realpath(3) of a path of the guest's own filesystem (fileargs_realpath): the absolute guest
   * path with ".", ".." and symlinks resolved, as the guest would see it. Rejects with
   * CasperError(errno) when the guest's own realpath() would fail.
   */
  realpathInGuest?(path: string): Promise<string>;
  /**
   * Connects a TCP socket from the host (system.net's connect) and hands it to the guest: returns
   * the index to put in the reply's descriptor pair. Absent when the run cannot hold sockets
   * (process isolation); rejects with an error carrying the errno (ECONNREFUSED, EMFILE…).
   */
  connectSocket?(to: SocketTarget): Promise<number>;
  /** Binds and listens on a TCP address on the host (system.net's bind), as connectSocket. */
  bindSocket?(at: SocketTarget): Promise<number>;
  /** Records a network decision in the run's audit trail (errno 0: allowed). */
  audit?(entry: NetDecision): void;
}

/** A TCP address as the host's sockets take it. */
export interface SocketTarget { host: string; port: number }

/** One connect, bind or refusal of a service, for the audit trail: the address and why. */
export interface NetDecision { call: string; address: string; errno: number; message: string }

/**
 * The run's sockets on the host (src/host/net), lent to the broker so that a service can hand the
 * guest a socket as libcasper passes descriptors. Slots are the run's net memory slots.
 */
export interface SocketProvider {
  /** Connects; resolves to the slot of the connected socket. */
  connect(to: SocketTarget): Promise<number>;
  /** Listens; resolves to the slot of the listening socket. */
  listen(at: SocketTarget): Promise<number>;
  /** Closes a socket no guest descriptor came to hold (the reply failed or came too late). */
  release(slot: number): void;
}

/** Something only the guest's worker can do (its filesystem lives there). */
export type GuestOp = { kind: 'lstat'; path: string } | { kind: 'realpath'; path: string };

/** What the worker found: a stat or a path, or the errno the guest's own call would get. */
export type GuestOpResult =
  | { kind: 'lstat'; path: string; ok: true; stat: GuestFilestat }
  | { kind: 'realpath'; path: string; ok: true; resolved: string }
  | { kind: GuestOp['kind']; path: string; ok: false; errno: number };

/**
 * Thrown (through the service) by lstatInGuest/realpathInGuest when the worker has not done the
 * operation yet: the broker asks the worker to do it and runs the request again with the answer.
 * Services must let it pass.
 */
export class GuestOpNeeded extends Error {
  constructor(readonly op: GuestOp) {
    super(`needs ${op.kind} ${op.path} in the guest`);
  }
}

/** A WASI preview1 filestat, as lstatInGuest returns it (times in ns since the epoch). */
export type GuestFilestat = Stat;

/** A service: libcasper's limit and command functions, plus how a manifest grant maps to limits. */
export interface CasperService {
  readonly name: string;
  /**
   * Checks `newLimits` against `oldLimits` (null: none set yet, i.e. unlimited for most
   * services) and returns 0 to accept or an errno (ENOTCAPABLE when widening, EINVAL when
   * malformed). Absent means limits are not supported: limit_set answers EOPNOTSUPP.
   */
  limit?(oldLimits: NvList | null, newLimits: NvList): number;
  /** Runs one command under the channel's limits; the reply's pairs (without "error"). */
  command(cmd: string, limits: NvList | null, request: NvList, ctx: ServiceContext): Promise<NvList> | NvList;
  /** The limits that a manifest's grant (YAML-friendly, e.g. { types: [ADDR2NAME] }) stands for. */
  fromManifest?(grant: Record<string, unknown>): NvList | null;
}

/** The limits a manifest's grant stands for, by the service's reader; null for {} or a service without one. */
export function readGrant(s: CasperService, grant: Record<string, unknown>): NvList | null {
  return Object.keys(grant).length && s.fromManifest ? s.fromManifest(grant) : null;
}
