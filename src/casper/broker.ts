/**
 * The Casper broker of one sandbox: its channels, each with its own limits, and the services
 * behind them. It speaks libcasper's protocol (open, limit_set, limit_get, clone, then the
 * service's own commands), runs on the host thread, and never lets a failing service take more
 * than the one call down.
 */
import { ERRNO } from '../wasi/constants.js';
import { NvList } from './nvlist.js';
import { CasperError, GuestOpNeeded, type CasperService, type GuestOp, type GuestOpResult, type ServiceContext } from './service.js';

/** A descriptor a reply hands the guest: a new channel, or a file the worker opens in the guest's fs. */
export type DescriptorGrant =
  | { kind: 'channel'; id: number }
  | { kind: 'open'; path: string; flags: number; mode: number; rights: bigint };

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

interface Channel {
  service: string;
  limits: NvList | null;
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
}

const CORE = 'core.casper';

function fail(e: Error): never {
  throw e;
}
const EDOOFUS_REPLY = ERRNO.IO;

/** One sandbox's broker. */
export class Broker {
  private readonly channels = new Map<number, Channel>();
  private nextId = 1;
  private readonly sandboxState = new Map<string, Map<string, unknown>>();
  private readonly timeoutMs: number;

  constructor(private readonly options: BrokerOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  /** cap_init(): a channel to the core service, limited to the services the manifest grants. */
  openCore(): number {
    const limits = new NvList();
    for (const name of Object.keys(this.options.grants)) limits.addNull(name);
    return this.add({ service: CORE, limits, state: new Map() });
  }

  /** Forgets a channel the guest closed. */
  close(id: number): void {
    this.channels.delete(id);
  }

  /** Whether a channel is open (for tests and the worker's checks). */
  has(id: number): boolean {
    return this.channels.has(id);
  }

  private add(c: Channel): number {
    const id = this.nextId++;
    this.channels.set(id, c);
    return id;
  }

  /**
   * Handles one request on channel `id`; always answers, with "error" set, unless the service
   * needs something done in the guest first (`needs`): the worker then sends the request again
   * with `results`.
   */
  async xfer(id: number, request: NvList, results: GuestOpResult[] = []): Promise<BrokerReply> {
    const ch = this.channels.get(id);
    const descriptors: DescriptorGrant[] = [];
    const cmd = request.getString('cmd');
    const answer = (errno: number, reply = new NvList()): BrokerReply => {
      reply.remove('error');
      reply.addNumber('error', errno);
      return { reply, descriptors, service: ch?.service ?? '?', cmd: cmd ?? '?', errno };
    };
    if (!ch) return answer(ERRNO.BADF);
    if (cmd === undefined) return answer(ERRNO.INVAL);
    if (request.pairs.some(([, v]) => v.type === 'descriptor' || v.type === 'descriptor_array')) return answer(ERRNO.INVAL);

    if (cmd === 'limit_get') {
      const reply = new NvList();
      if (ch.limits) reply.addNvlist('limits', ch.limits.clone());
      else reply.addNull('limits');
      return answer(0, reply);
    }
    if (cmd === 'limit_set') {
      const limits = request.getNvlist('limits');
      if (!limits) return answer(ERRNO.INVAL);
      const errno = this.limit(ch, limits);
      if (errno === 0) ch.limits = limits.clone();
      return answer(errno);
    }
    if (cmd === 'clone') {
      const clone = this.add({ service: ch.service, limits: ch.limits?.clone() ?? null, state: new Map() });
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
      if (!ch.limits?.exists(name, 'null') || !(name in this.options.grants)) return answer(ERRNO.NOTCAPABLE);
      const grant = this.options.grants[name] ?? {};
      let limits: NvList | null;
      try {
        limits = Object.keys(grant).length && service.fromManifest ? service.fromManifest(grant) : null;
      } catch {
        // Manifests are checked before a run; a grant that slipped through opens nothing.
        return answer(ERRNO.INVAL);
      }
      const id = this.add({ service: name, limits, state: new Map() });
      const reply = new NvList();
      reply.addDescriptor('chanfd', descriptors.push({ kind: 'channel', id }) - 1);
      reply.addNumber('chanflags', 0);
      return answer(0, reply);
    }

    const service = this.options.services[ch.service]!;
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
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      const reply = await Promise.race([
        Promise.resolve().then(() => service.command(cmd, ch.limits, request, ctx)),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new CasperError(ERRNO.TIMEDOUT, `${ch.service} ${cmd} took longer than ${this.timeoutMs} ms`)), this.timeoutMs); }),
      ]);
      return answer(0, reply);
    } catch (e) {
      if (e instanceof GuestOpNeeded) return { ...answer(0), needs: [e.op] };
      if (e instanceof CasperError) return answer(e.errno);
      // A service that throws fails this call and is restarted: its state is dropped.
      this.options.onServiceError?.(ch.service, e);
      this.sandboxState.delete(ch.service);
      ch.state.clear();
      return answer(EDOOFUS_REPLY);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The core channel's limits are service names; every other channel asks its service. */
  private limit(ch: Channel, limits: NvList): number {
    if (ch.service === CORE) {
      for (const [name, v] of limits.pairs) {
        if (v.type !== 'null') return ERRNO.INVAL;
        if (!ch.limits?.exists(name, 'null')) return ERRNO.NOTCAPABLE;
      }
      return 0;
    }
    const service = this.options.services[ch.service]!;
    if (!service.limit) return ERRNO.NOTSUP;
    try {
      return service.limit(ch.limits, limits);
    } catch {
      return ERRNO.INVAL;
    }
  }
}

