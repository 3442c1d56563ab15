/**
 * A run's sockets when its guest runs in an executor process (process isolation). The executor has
 * no network (bubblewrap's --unshare-net), so this process (the engine, where the limits were
 * checked) binds and connects, and hands each socket's descriptor to the executor over the IPC
 * channel (SCM_RIGHTS; Node's child_process handle passing, which Deno's node:child_process speaks
 * too). There a NetOwner puts it in a slot of the run's net memory as it does for a thread's run:
 * bytes never cross the engine, the kernel's and the slots' buffers bound what is in flight, and
 * the executor's death closes them (the engine keeps no copy once it handed a socket over).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { ERRNO } from '../../wasi/constants.js';
import type { ArgNode, SocketGrant } from '../grants.js';
import { formatSocketAddress, type SocketAddress } from './address.js';
import {
  bindServer, dial, openDatagram, openGrants, SocketOpenError, type NetAuditEntry, type NetOwnerOptions, type OpenedSocket, type RunSockets,
} from './owner.js';

/** What an executor needs to make a run's net memory: a NetOwner's sizes and the sockets the guest starts with. */
export interface NetPlan {
  /** Slots for the granted sockets (the first ones); `connections` more follow. */
  grants: number;
  connections: number;
  backlog: number;
  maxBytes: number;
  maxDatagrams: number;
  preopened: OpenedSocket[];
  /** Sockets that follow the plan, each in a message of its own: the guest starts once all are there. */
  handles: number;
}

/** A socket on its way to the executor, for slot `slot`. */
export interface HandedSocket { slot: number; handle: net.Socket | net.Server | dgram.Socket; address: string }

/** An executor's answer about one of a run's slots. */
export interface NetAnswer { slot?: number; errno?: number; error?: string }

/** How the engine reaches a run's NetOwner in its executor, once the run was sent there. */
export interface NetLink {
  /** Holds a free slot (EMFILE when the run's are full). */
  reserve(what: string): Promise<NetAnswer>;
  /** Closes a slot's socket, or gives back a reserved slot. */
  release(slot: number): void;
  /** Hands a socket over into a reserved slot; resolves once the executor holds it. */
  adopt(socket: HandedSocket): Promise<NetAnswer>;
}

/** The part of a run that the executor pool deals with: the plan, the sockets, the link, the audit. */
export interface ExecutorSockets {
  plan: NetPlan;
  /** The sockets opened before the run (the engine's copies are closed once handed over). */
  take(): HandedSocket[];
  /** The run was sent to an executor: Casper's connect and bind reach it through `link`. */
  attach(link: NetLink): void;
  /** Every socket take() gave was sent to the executor, and the engine's copies are closed. */
  handed(): void;
  /** A refusal the executor's NetOwner recorded (a connection past the backlog…). */
  audit(e: NetAuditEntry): void;
}

/** The engine's side of an executor run's sockets. */
export class RemoteNet implements RunSockets {
  readonly addresses: string[] = [];
  private link: NetLink | undefined;
  private handles: HandedSocket[] = [];
  private readonly connecting = new Set<net.Socket>();
  private closed = false;
  private onHanded: () => void = () => {};
  /**
   * Resolves once the executor holds the run's pre-opened sockets. Until then the engine's own copy
   * of a listener still accepts: only now may its address be given to clients (onListening).
   */
  readonly handedOver = new Promise<void>((resolve) => { this.onHanded = resolve; });

  /**
   * `onDeno`: the executors are Deno's, which take streams it connected here but cannot use a
   * datagram socket handed to them, and sometimes leave a handed listener's first connection
   * unanswered (1 in 4 runs of test/host/executor-sockets.test.ts): both are refused up front.
   */
  constructor(private readonly options: NetOwnerOptions, private readonly onDeno = false) {}

  /** Throws when the executors cannot serve this kind of socket (see the constructor). */
  private checkRuntime(kind: 'datagram socket' | 'listener', addr: SocketAddress): void {
    if (this.onDeno) {
      throw new TypeError(`Cannot open the ${kind} ${formatSocketAddress(addr)}: Deno executors cannot serve a ${kind} handed to them; run it on Node executors (--executor-runtime node) or on threads`);
    }
  }

  private ended(what: string): SocketOpenError {
    return new SocketOpenError(ERRNO.CANCELED, `Cannot ${what}: the run has ended`);
  }

  /**
   * Binds and connects the run's granted sockets here, for the executor's first slots (its net
   * memory is new: they are free), and resolves the argdata tree's `socket` nodes to them.
   */
  async open(preopened: SocketGrant[], argdata: ArgNode | undefined): Promise<{ sockets: ExecutorSockets; argdata: ArgNode | undefined }> {
    let next = 0;
    try {
      const opened = await openGrants(preopened, argdata, async (kind, addr) => {
        const slot = next++;
        if (kind === 'listen') { this.checkRuntime('listener', addr); this.handles.push({ slot, ...await this.bind(addr) }); }
        else if (kind === 'connect') this.handles.push({ slot, handle: await this.dial(addr), address: formatSocketAddress(addr) });
        else {
          this.checkRuntime('datagram socket', addr);
          // The executor learns a datagram socket's peer from `address` (a bound one has none: '').
          const d = await openDatagram(addr, kind === 'dgram-connect', true);
          if (this.closed) { d.socket.close(); throw this.ended(`open ${d.address}`); }
          if (!d.connected) this.addresses.push(d.address);
          this.handles.push({ slot, handle: d.socket, address: d.connected ? d.address : '' });
        }
        return slot;
      });
      const o = this.options;
      const plan: NetPlan = {
        grants: next, connections: o.connections, backlog: o.backlog, maxBytes: o.maxBytes, maxDatagrams: o.maxDatagrams, preopened: opened.preopened, handles: this.handles.length,
      };
      const sockets: ExecutorSockets = {
        plan,
        take: () => this.take(),
        attach: (link) => { this.link = link; },
        handed: () => this.onHanded(),
        audit: (e) => o.audit(e),
      };
      return { sockets, argdata: opened.argdata };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private async bind(addr: SocketAddress): Promise<Omit<HandedSocket, 'slot'>> {
    const b = await bindServer(addr, this.options.backlog);
    if (this.closed) { b.server.close(); throw this.ended(`listen on ${b.address}`); }
    // A connection this process accepts before the executor holds the listener has nobody to serve
    // it (a fixed port, a queued run): reset it at once rather than leave the client hanging.
    b.server.on('connection', (s) => s.destroy());
    this.addresses.push(b.address);
    return { handle: b.server, address: b.address };
  }

  private async dial(addr: SocketAddress): Promise<net.Socket> {
    const spec = formatSocketAddress(addr);
    const s = await dial(addr, this.connecting, () => this.ended(`connect to ${spec}`));
    if (this.closed) { s.destroy(); throw this.ended(`connect to ${spec}`); }
    return s;
  }

  /** Holds a slot in the executor first, so that nothing is sent when the run's slots are full. */
  private async slotFor(what: string): Promise<{ link: NetLink; slot: number }> {
    const link = this.link;
    if (this.closed || !link) throw this.ended(what);
    const r = await link.reserve(what);
    if (r.slot === undefined) throw new SocketOpenError(r.errno ?? ERRNO.IO, r.error ?? `Cannot ${what}`);
    return { link, slot: r.slot };
  }

  private async handOver(link: NetLink, socket: HandedSocket): Promise<number> {
    const r = await link.adopt(socket);
    if (r.slot === undefined) throw new SocketOpenError(r.errno ?? ERRNO.IO, r.error ?? `Cannot hand the socket of ${socket.address} to the executor`);
    return r.slot;
  }

  /** Casper's connect: a slot held in the executor, then the connection made here and handed over. */
  async connect(addr: SocketAddress): Promise<number> {
    const { link, slot } = await this.slotFor(`connect to ${formatSocketAddress(addr)}`);
    let socket: net.Socket;
    try {
      socket = await this.dial(addr);
    } catch (e) {
      link.release(slot);
      throw e;
    }
    return this.handOver(link, { slot, handle: socket, address: formatSocketAddress(addr) });
  }

  /** Casper's bind: a slot held in the executor, then the server bound here and handed over. */
  async listen(addr: SocketAddress): Promise<number> {
    this.checkRuntime('listener', addr);
    const { link, slot } = await this.slotFor(`listen on ${formatSocketAddress(addr)}`);
    let bound: Omit<HandedSocket, 'slot'>;
    try {
      bound = await this.bind(addr);
    } catch (e) {
      link.release(slot);
      throw e;
    }
    return this.handOver(link, { ...bound, slot });
  }

  release(slot: number): void {
    this.link?.release(slot);
  }

  /** Closes what was opened and not handed over; what the executor holds closes with its run there. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.connecting) s.destroy();
    for (const h of this.take()) {
      if (h.handle instanceof net.Socket) h.handle.destroy(); else h.handle.close();
    }
  }

  private take(): HandedSocket[] {
    const h = this.handles;
    this.handles = [];
    return h;
  }
}
