/**
 * The Casper broker of one sandbox: its channels, each with its own limits, and the services
 * behind them. It speaks libcasper's protocol (open, limit_set, limit_get, clone, then the
 * service's own commands), runs on the host thread, and never lets a failing service take more
 * than the one call down.
 */
import { ERRNO } from '../wasi/constants.js';
import { NvList } from './nvlist.js';
import { packedSize } from './nvlist-codec.js';
import {
  CasperError, GuestOpNeeded, readGrant, type CasperService, type GuestOp, type GuestOpResult, type NetDecision, type ServiceContext, type SocketProvider,
} from './service.js';

/**
 * A descriptor a reply hands the guest: a new channel, a file the worker opens in the guest's fs,
 * or a socket the host opened (a slot of the run's net memory, listening or connected).
 */
export type DescriptorGrant =
  | { kind: 'channel'; id: number }
  | { kind: 'open'; path: string; flags: number; mode: number; rights: bigint }
  | { kind: 'socket'; slot: number; listening: boolean };

/** What the worker must do to finish a reply: install these descriptors where the reply names them. */
export interface BrokerReply {
  reply: NvList;
  /** Descriptor values in `reply` are indexes into this list; the worker replaces them with fds. */
  descriptors: DescriptorGrant[];
  /** Operations the worker must do and send back with the same request before there is a reply. */
  needs?: GuestOp[];
  /** For the audit trail. */
  service: string;
  cmd: string;
  errno: number;
}

/**
 * A channel's limits, shared by every channel that holds them: limits only narrow, so a clone
 * keeps its parent's list (frozen) instead of a copy, and a list's bytes count once, until the
 * last channel holding it lets go.
 */
interface SharedLimits {
  list: NvList;
  /** What the list costs the run's budget (maxLimitsBytes); 0 for the manifest's own grants. */
  bytes: number;
  refs: number;
}

interface Channel {
  service: string;
  limits: SharedLimits | null;
  state: Map<string, unknown>;
}

/** Options of a broker. */
export interface BrokerOptions {
  /** The services this sandbox may open, with their manifest grants (the first, outermost limits). */
  grants: Record<string, Record<string, unknown>>;
  /** Every service capsa knows, by name. */
  services: Record<string, CasperService>;
  /** The operator's configuration, by service name. */
  config?: Record<string, unknown>;
  /** How long one command may take before it fails with ETIMEDOUT (default 5 s). */
  timeoutMs?: number;
  /** Told when a service throws (it is then restarted: its state for the sandbox is dropped). */
  onServiceError?: (service: string, error: unknown) => void;
  /**
   * Channels open at once (default 1024, the most descriptors a run may have); past it `open`
   * and `clone` fail with EMFILE, as a process whose descriptor table is full.
   */
  maxChannels?: number;
  /**
   * Bytes of guest-set limits the channels hold together, each shared list counted once
   * (default 1 MiB); past it `limit_set` fails with ENOMEM and the old limits stay.
   */
  maxLimitsBytes?: number;
  /** The run's sockets, for services that hand the guest sockets (system.net); absent, they answer ENOTSUP. */
  sockets?: SocketProvider;
  /** Where services record their network decisions (connects, refusals) for the run's audit trail. */
  audit?: (entry: NetDecision) => void;
}

/** Default of BrokerOptions.maxLimitsBytes: four of the largest messages (the host's CASPER_MAX_MESSAGE_BYTES). */
export const DEFAULT_MAX_LIMITS_BYTES = 1 << 20;

const CORE = 'core.casper';

function fail(e: Error): never {
  throw e;
}
/** The errno of a reply whose service failed (libcasper's EDOOFUS): the service is restarted. */
export const EDOOFUS_REPLY = ERRNO.IO;

/** Freezes a list and the lists inside it, so a service handed shared limits cannot change them. */
export function freeze(list: NvList): NvList {
  for (const [, v] of list.pairs) {
    if (v.type === 'nvlist') freeze(v.value);
    else if (v.type === 'nvlist_array') v.value.forEach(freeze);
  }
  Object.freeze(list.pairs);
  Object.freeze(list);
  return list;
}

/** `reply` with its "error" pair set to `errno` (the last pair, as libcasper's replies have it). */
export function withError(reply: NvList, errno: number): NvList {
  reply.remove('error');
  reply.addNumber('error', errno);
  return reply;
}

/**
 * What a request is refused with before any service sees it: EINVAL when it has no "cmd" or
 * carries descriptors (a guest cannot hand its descriptors to a service); 0 when it may go on.
 */
export function requestErrno(request: NvList): number {
  if (request.getString('cmd') === undefined) return ERRNO.INVAL;
  if (request.pairs.some(([, v]) => v.type === 'descriptor' || v.type === 'descriptor_array')) return ERRNO.INVAL;
  return 0;
}

/**
 * The commands every channel answers the same way whatever its service, by the broker that
 * holds its limits: the worker sends these to the host even for a channel it answers itself.
 */
export const CHANNEL_COMMANDS: ReadonlySet<string> = new Set(['limit_get', 'limit_set', 'clone']);

/**
 * The answer a command's failure stands for: a CasperError's errno (with "refused" when it is a
 * refusal); undefined for anything else, a fault of the service (the caller restarts it).
 */
export function failureReply(e: unknown): { errno: number; reply: NvList } | undefined {
  if (!(e instanceof CasperError)) return undefined;
  const reply = new NvList();
  if (e.refused) reply.addString('refused', e.message);
  return { errno: e.errno, reply };
}

/** One sandbox's broker. */
export class Broker {
  private readonly channels = new Map<number, Channel>();
  private nextId = 1;
  private readonly sandboxState = new Map<string, Map<string, unknown>>();
  private readonly timeoutMs: number;
  private readonly maxChannels: number;
  private readonly maxLimitsBytes: number;
  /** The manifest's limits by service (CORE: the granted names), made once and shared. */
  private readonly grantLimits = new Map<string, SharedLimits | null>();
  private heldLimitsBytes = 0;

  constructor(private readonly options: BrokerOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxChannels = options.maxChannels ?? 1024;
    this.maxLimitsBytes = options.maxLimitsBytes ?? DEFAULT_MAX_LIMITS_BYTES;
  }

  /**
   * cap_init(): a channel to the core service, limited to the services the manifest grants.
   * Throws CasperError(EMFILE) when maxChannels are open.
   */
  openCore(): number {
    if (this.channels.size >= this.maxChannels) throw new CasperError(ERRNO.MFILE, `${this.maxChannels} Casper channels are open`);
    return this.add(CORE, this.grantOf(CORE));
  }

  /** Forgets a channel the guest closed, and the limits only it held. */
  close(id: number): void {
    const ch = this.channels.get(id);
    if (!ch) return;
    this.release(ch.limits);
    this.channels.delete(id);
  }

  /** Lets go of what a reply would have handed the guest and never will (it failed, or was too large). */
  releaseDescriptors(descriptors: DescriptorGrant[]): void {
    for (const d of descriptors) {
      if (d.kind === 'channel') this.close(d.id);
      else if (d.kind === 'socket') this.options.sockets?.release(d.slot);
    }
  }

  /** Whether a channel is open (for tests and the worker's checks). */
  has(id: number): boolean {
    return this.channels.has(id);
  }

  /** Channels open and limit bytes held (for tests and metrics). */
  usage(): { channels: number; limitsBytes: number } {
    return { channels: this.channels.size, limitsBytes: this.heldLimitsBytes };
  }

  private add(service: string, limits: SharedLimits | null): number {
    const id = this.nextId++;
    if (limits) limits.refs++;
    this.channels.set(id, { service, limits, state: new Map() });
    return id;
  }

  private release(limits: SharedLimits | null): void {
    if (limits && --limits.refs === 0) this.heldLimitsBytes -= limits.bytes;
  }

  /**
   * The first limits of a channel to `service`: the manifest's grant, made once per run and
   * shared (it is the operator's, so it costs the run's budget nothing). Throws what
   * fromManifest throws.
   */
  private grantOf(service: string): SharedLimits | null {
    if (this.grantLimits.has(service)) return this.grantLimits.get(service)!;
    let list: NvList | null;
    if (service === CORE) {
      list = new NvList();
      for (const name of Object.keys(this.options.grants)) list.addNull(name);
    } else {
      list = readGrant(this.options.services[service]!, this.options.grants[service] ?? {});
    }
    // refs starts at 1: the cache's own hold, so the grant is never released.
    const shared = list ? { list: freeze(list), bytes: 0, refs: 1 } : null;
    this.grantLimits.set(service, shared);
    return shared;
  }

  /**
   * Handles one request on channel `id`; always answers, with "error" set, unless the service
   * needs something done in the guest first (`needs`): the worker then sends the request again
   * with `results`. `requestBytes` is the request's packed size, what limits it sets cost the
   * run's budget (the request's own nvlist size when absent).
   *
   * Everything up to a service's first `await` runs before xfer returns its promise, so a caller
   * can time the work a request costs the host thread.
   */
  async xfer(id: number, request: NvList, results: GuestOpResult[] = [], requestBytes?: number): Promise<BrokerReply> {
    const ch = this.channels.get(id);
    const descriptors: DescriptorGrant[] = [];
    const cmd = request.getString('cmd');
    const answer = (errno: number, reply = new NvList()): BrokerReply =>
      ({ reply: withError(reply, errno), descriptors, service: ch?.service ?? '?', cmd: cmd ?? '?', errno });
    if (!ch) return answer(ERRNO.BADF);
    const refused = requestErrno(request);
    if (refused !== 0 || cmd === undefined) return answer(refused || ERRNO.INVAL);

    if (cmd === 'limit_get') {
      const reply = new NvList();
      // The shared list itself: packing only reads it.
      if (ch.limits) reply.addNvlist('limits', ch.limits.list);
      else reply.addNull('limits');
      return answer(0, reply);
    }
    if (cmd === 'limit_set') {
      const limits = request.getNvlist('limits');
      if (!limits) return answer(ERRNO.INVAL);
      const errno = this.limit(ch, limits);
      if (errno !== 0) return answer(errno);
      const bytes = requestBytes ?? packedSize(request);
      const freed = ch.limits?.refs === 1 ? ch.limits.bytes : 0;
      if (this.heldLimitsBytes - freed + bytes > this.maxLimitsBytes) return answer(ERRNO.NOMEM);
      // The request was unpacked for this call alone: its list becomes the channel's, uncopied.
      this.release(ch.limits);
      ch.limits = { list: freeze(limits), bytes, refs: 1 };
      this.heldLimitsBytes += bytes;
      return answer(0);
    }
    if (cmd === 'clone') {
      if (this.channels.size >= this.maxChannels) return answer(ERRNO.MFILE);
      const clone = this.add(ch.service, ch.limits);
      const reply = new NvList();
      reply.addDescriptor('sock', descriptors.push({ kind: 'channel', id: clone }) - 1);
      return answer(0, reply);
    }
    if (ch.service === CORE) {
      if (cmd !== 'open') return answer(ERRNO.INVAL);
      const name = request.getString('service');
      if (name === undefined) return answer(ERRNO.INVAL);
      const service = this.options.services[name];
      if (!service) return answer(ERRNO.NOENT);
      if (!ch.limits?.list.exists(name, 'null') || !(name in this.options.grants)) return answer(ERRNO.NOTCAPABLE);
      if (this.channels.size >= this.maxChannels) return answer(ERRNO.MFILE);
      let limits: SharedLimits | null;
      try {
        limits = this.grantOf(name);
      } catch (e) {
        // Every caller reads grants before a run (effectiveGrants); one that slipped through opens
        // nothing, and is reported rather than swallowed.
        this.options.onServiceError?.(name, e);
        return answer(ERRNO.INVAL);
      }
      const id = this.add(name, limits);
      const reply = new NvList();
      reply.addDescriptor('chanfd', descriptors.push({ kind: 'channel', id }) - 1);
      reply.addNumber('chanflags', 0);
      return answer(0, reply);
    }

    const service = this.options.services[ch.service]!;
    // Once this request is answered, a socket that comes in late has no reply to go in.
    let answered = false;
    const sockets = this.options.sockets;
    const lend = async (open: Promise<number>, listening: boolean): Promise<number> => {
      const slot = await open;
      if (answered) {
        sockets!.release(slot);
        throw new CasperError(ERRNO.TIMEDOUT, 'the socket came after the request timed out');
      }
      return descriptors.push({ kind: 'socket', slot, listening }) - 1;
    };
    let sandbox = this.sandboxState.get(ch.service);
    if (!sandbox) this.sandboxState.set(ch.service, sandbox = new Map());
    const ctx: ServiceContext = {
      channelState: ch.state,
      sandboxState: sandbox,
      config: this.options.config?.[ch.service],
      openInGuest: (req) => descriptors.push({ kind: 'open', ...req }) - 1,
      lstatInGuest: async (path) => {
        const r = results.find((x) => x.kind === 'lstat' && x.path === path) ?? fail(new GuestOpNeeded({ kind: 'lstat', path }));
        if (!r.ok) throw new CasperError(r.errno);
        return (r as Extract<GuestOpResult, { kind: 'lstat'; ok: true }>).stat;
      },
      realpathInGuest: async (path) => {
        const r = results.find((x) => x.kind === 'realpath' && x.path === path) ?? fail(new GuestOpNeeded({ kind: 'realpath', path }));
        if (!r.ok) throw new CasperError(r.errno);
        return (r as Extract<GuestOpResult, { kind: 'realpath'; ok: true }>).resolved;
      },
      ...(sockets ? { connectSocket: (to) => lend(sockets.connect(to), false), bindSocket: (at) => lend(sockets.listen(at), true) } : {}),
      ...(this.options.audit ? { audit: this.options.audit } : {}),
    };
    let timer: NodeJS.Timeout | undefined;
    // Called here, not in a later microtask: its synchronous work belongs to this request's time.
    let work: Promise<NvList> | NvList;
    try {
      work = service.command(cmd, ch.limits?.list ?? null, request, ctx);
    } catch (e) {
      work = Promise.reject(e);
    }
    try {
      const reply = await Promise.race([
        work,
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new CasperError(ERRNO.TIMEDOUT, `${ch.service} ${cmd} took longer than ${this.timeoutMs} ms`)), this.timeoutMs); }),
      ]);
      return answer(0, reply);
    } catch (e) {
      // A failed request hands out nothing it opened.
      this.releaseDescriptors(descriptors.splice(0));
      if (e instanceof GuestOpNeeded) return { ...answer(0), needs: [e.op] };
      const failed = failureReply(e);
      if (failed) return answer(failed.errno, failed.reply);
      // A service that throws fails this call and is restarted: its state is dropped.
      this.options.onServiceError?.(ch.service, e);
      this.sandboxState.delete(ch.service);
      ch.state.clear();
      return answer(EDOOFUS_REPLY);
    } finally {
      answered = true;
      clearTimeout(timer);
    }
  }

  /** The core channel's limits are service names; every other channel asks its service. */
  private limit(ch: Channel, limits: NvList): number {
    if (ch.service === CORE) {
      for (const [name, v] of limits.pairs) {
        if (v.type !== 'null') return ERRNO.INVAL;
        if (!ch.limits?.list.exists(name, 'null')) return ERRNO.NOTCAPABLE;
      }
      return 0;
    }
    const service = this.options.services[ch.service]!;
    if (!service.limit) return ERRNO.NOTSUP;
    try {
      return service.limit(ch.limits?.list ?? null, limits);
    } catch {
      return ERRNO.INVAL;
    }
  }
}

