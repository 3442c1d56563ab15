/**
 * The host thread's end of a run's sockets: it binds and connects what the run was granted,
 * accepts connections into free slots of the run's net memory (./layout.ts), and moves bytes
 * between Node's sockets and the slots' rings, pausing a socket whose receive ring is full and
 * waiting for 'drain' before it takes more from a send ring. It wakes the guest's thread through
 * the run's Waker cell whenever a slot may have become ready, and is woken by the guest's doorbell.
 * Everything it opened is closed when the run ends, however it ends.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { ERRNO } from '../../wasi/constants.js';
import { LISTENER_RIGHTS, STREAM_SOCKET_RIGHTS } from '../../wasi/sockets.js';
import { Waker } from '../../wasi/wake.js';
import type { ArgNode, SocketGrant } from '../grants.js';
import { formatSocketAddress, parseSocketAddress, type SocketAddress } from './address.js';
import { setPeer } from './endpoint.js';
import {
  C, createNetMemory, DGRAM_HEADER, GUEST_CLOSED, GUEST_SHUT_RD, GUEST_SHUT_WR, H, HOST_EOF, HOST_ERROR, KIND_DGRAM, KIND_FREE, KIND_LISTENER,
  KIND_STREAM, MAX_DATAGRAM, NetMemory, type Slot,
} from './layout.js';

// Node has Atomics.waitAsync since 16; TypeScript declares it only in lib es2024, above this project's.
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** A socket the guest starts with: its slot and rights (preopened, or an argdata node's). */
export interface OpenedSocket { slot: number; base: bigint; inheriting: bigint }

/** What the worker needs to give the guest its sockets. */
export interface NetSpec {
  sab: SharedArrayBuffer;
  /** Installed as descriptors after the preopened directories, in order. */
  preopened: OpenedSocket[];
  /** net.bytes: bytes received and sent together. */
  maxBytes: number;
  /** net.datagrams: datagrams received and sent together. */
  maxDatagrams: number;
}

/** A refusal or an accepted connection, for the run's audit trail. */
export interface NetAuditEntry { call: string; address: string; errno: number; message: string }

/** Options of a run's NetOwner. */
export interface NetOwnerOptions {
  /** Connections (accepted or connected) open at once. */
  connections: number;
  /** Connections that may wait on a listener for sock_accept; past it new ones are closed. */
  backlog: number;
  maxBytes: number;
  maxDatagrams: number;
  audit(e: NetAuditEntry): void;
}

const errnoOf = (e: unknown): number => {
  const code = (e as NodeJS.ErrnoException)?.code;
  return (typeof code === 'string' && (ERRNO as Record<string, number>)[code.slice(1)]) || ERRNO.IO;
};

interface Stream {
  slot: Slot;
  socket: net.Socket;
  /** Bytes received that did not fit the receive ring; the socket is paused while there are any. */
  pending: Uint8Array | undefined;
  draining: boolean;
  ended: boolean;
  finishing?: boolean;
  done: boolean;
}

interface Listener { slot: Slot; server: net.Server; address: string; waiting: number }

interface Datagrams {
  slot: Slot;
  socket: dgram.Socket;
  /** Sends handed to the socket and not yet done: at most MAX_INFLIGHT, so that Node's queue stays short. */
  inflight: number;
  /** Connected to its peer, or not to be (bound): sends may go. */
  ready: boolean;
  done: boolean;
}
/** Datagrams one socket may have in Node's send queue at once. */
const MAX_INFLIGHT = 16;

/** A socket the host could not open for the guest: the errno the guest gets, and why. */
export class SocketOpenError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = 'SocketOpenError';
  }
}

/** A bound, listening server and its address as bound ("127.0.0.1:41234", or the UNIX path). */
export interface BoundServer { server: net.Server; address: string }

/** Binds and listens on `addr`; rejects with SocketOpenError (EADDRINUSE…) naming the address. */
export async function bindServer(addr: SocketAddress, backlog: number): Promise<BoundServer> {
  const spec = formatSocketAddress(addr);
  const server = net.createServer({ pauseOnConnect: false, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new SocketOpenError(errnoOf(e), `Cannot listen on ${spec}: ${(e as Error).message}`)));
    if (addr.kind === 'unix') server.listen({ path: addr.path, backlog }, resolve);
    else server.listen({ host: addr.host, port: addr.port, backlog, exclusive: true }, resolve);
  });
  server.on('error', () => {});
  const a = server.address();
  const address = typeof a === 'string' || a === null ? (addr.kind === 'unix' ? addr.path : String(a)) : formatSocketAddress({ kind: 'tcp', host: a.address, port: a.port });
  return { server, address };
}

/**
 * Connects to `addr`; rejects with SocketOpenError (ECONNREFUSED…) naming it. The socket comes
 * paused: nothing is read from it until its owner resumes it, so that no byte is taken in by a
 * process that hands the socket on (an executor's connection is dialled by the engine). `pending`
 * holds it while it connects, for an owner that must destroy it if it ends first.
 */
export function dial(addr: SocketAddress, pending: Set<net.Socket>, ended: () => SocketOpenError): Promise<net.Socket> {
  const spec = formatSocketAddress(addr);
  return new Promise<net.Socket>((resolve, reject) => {
    const s = addr.kind === 'unix' ? net.connect({ path: addr.path, allowHalfOpen: true }) : net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true });
    s.pause();
    pending.add(s);
    s.once('connect', () => { pending.delete(s); resolve(s); });
    s.once('error', (e) => { pending.delete(s); reject(new SocketOpenError(errnoOf(e), `Cannot connect to ${spec}: ${(e as Error).message}`)); });
    s.once('close', () => { if (pending.delete(s)) reject(ended()); });
  });
}

/**
 * A datagram (UDP) socket bound to `addr`, or connected to it (on a port of the system's choice);
 * rejects with SocketOpenError naming the address. `address` is the peer when connected, else the
 * address as bound. `later` leaves the connect to the socket's next owner (an executor: a socket
 * Node received already connected cannot send), bound to a port of the peer's family meanwhile.
 */
export async function openDatagram(addr: SocketAddress, connect: boolean, later = false): Promise<{ socket: dgram.Socket; address: string; connected: boolean }> {
  const spec = formatSocketAddress(addr);
  if (addr.kind !== 'tcp') throw new TypeError(`Cannot open a datagram socket on ${spec}: datagram sockets are UDP (HOST:PORT), not UNIX paths`);
  const socket = dgram.createSocket({ type: net.isIPv6(addr.host) ? 'udp6' : 'udp4' });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (e) => reject(new SocketOpenError(errnoOf(e), `Cannot ${connect ? 'connect to' : 'bind'} ${spec} (UDP): ${e.message}`)));
      if (connect && later) socket.bind(0, net.isIPv6(addr.host) ? '::' : '0.0.0.0', resolve);
      else if (connect) socket.connect(addr.port, addr.host, resolve);
      else socket.bind(addr.port, addr.host, resolve);
    });
  } catch (e) {
    socket.close();
    throw e;
  }
  socket.on('error', () => {});
  const a = socket.address();
  return { socket, address: connect ? spec : formatSocketAddress({ kind: 'tcp', host: a.address, port: a.port }), connected: connect };
}

/** What a grant opens: a listener, a connection, or a datagram socket bound or connected. */
export type GrantKind = 'listen' | 'connect' | 'dgram-bind' | 'dgram-connect';

/** The rights of a granted socket: its kind's, narrowed by the grant's (they only narrow). */
function grantRights(g: SocketGrant, kind: GrantKind): { base: bigint; inheriting: bigint } {
  const r = g.rights;
  return kind === 'listen'
    ? { base: LISTENER_RIGHTS & (r?.base ?? LISTENER_RIGHTS), inheriting: STREAM_SOCKET_RIGHTS & (r?.inheriting ?? STREAM_SOCKET_RIGHTS) }
    : { base: STREAM_SOCKET_RIGHTS & (r?.base ?? STREAM_SOCKET_RIGHTS), inheriting: 0n };
}

/** A grant's address to bind or connect to, checked: a stream or datagram socket, exactly one of bind and connect. */
function grantAddress(g: SocketGrant): { kind: GrantKind; addr: SocketAddress } {
  const type = g.type ?? 'stream';
  if (type !== 'stream' && type !== 'dgram') throw new TypeError(`Cannot open a ${String(type)} socket: the types are stream and dgram`);
  if ((g.bind === undefined) === (g.connect === undefined)) throw new TypeError('A socket grant needs exactly one of bind or connect');
  const bind = g.bind !== undefined;
  const addr = parseSocketAddress(bind ? g.bind! : g.connect!);
  if (type === 'dgram') return { kind: bind ? 'dgram-bind' : 'dgram-connect', addr };
  return { kind: bind ? 'listen' : 'connect', addr };
}

/**
 * Opens a run's granted sockets with `open` (which returns the slot each went to): the preopened
 * grants, then the argdata tree's `socket` nodes, which come back as `netslot` nodes.
 */
export async function openGrants(preopened: SocketGrant[], argdata: ArgNode | undefined,
  open: (kind: GrantKind, addr: SocketAddress) => Promise<number>): Promise<{ preopened: OpenedSocket[]; argdata: ArgNode | undefined }> {
  const one = async (g: SocketGrant): Promise<OpenedSocket> => {
    const { kind, addr } = grantAddress(g);
    return { slot: await open(kind, addr), ...grantRights(g, kind) };
  };
  const tree = async (n: ArgNode): Promise<ArgNode> => {
    switch (n.type) {
      case 'socket': {
        const o = await one(n.socket);
        return { type: 'netslot', slot: o.slot, rights: { base: o.base, inheriting: o.inheriting, names: n.socket.rights?.names ?? [] } };
      }
      case 'seq': return { type: 'seq', items: await Promise.all(n.items.map(tree)) };
      case 'map': return { type: 'map', entries: await Promise.all(n.entries.map(async ([k, v]) => [await tree(k), await tree(v)] as [ArgNode, ArgNode])) };
      default: return n;
    }
  };
  const opened: OpenedSocket[] = [];
  for (const g of preopened) opened.push(await one(g));
  return { preopened: opened, argdata: argdata ? await tree(argdata) : undefined };
}

/** What a run's Casper services use to hand the guest sockets (system.net's connect and bind). */
export interface RunSockets {
  /** Addresses the run listens on, as bound. */
  readonly addresses: string[];
  /** Connects to `addr`: the connection's slot. */
  connect(addr: SocketAddress): Promise<number>;
  /** Listens on `addr`: the listener's slot. */
  listen(addr: SocketAddress): Promise<number>;
  /** Closes a slot's socket that no guest descriptor came to hold. */
  release(slot: number): void;
  /** Closes every socket of the run. */
  close(): void;
}

/** A run's sockets on the host thread. */
export class NetOwner implements RunSockets {
  private readonly mem: NetMemory;
  private readonly waker: Waker;
  private readonly streams = new Map<number, Stream>();
  private readonly listeners: Listener[] = [];
  private readonly dgrams = new Map<number, Datagrams>();
  /** Connections under way (Casper's connect): destroyed if the run ends first. */
  private readonly connecting = new Set<net.Socket>();
  /** Slots held for sockets being opened elsewhere (reserve, adopt). */
  private readonly reserved = new Set<number>();
  private closed = false;
  private doorbell = 0;
  /** Addresses the run listens on (stream listeners and bound datagram sockets), as bound ("127.0.0.1:41234"), in grant order. */
  readonly addresses: string[] = [];

  /** Net memory for `grants` sockets plus `options.connections` connections. */
  constructor(grants: number, private readonly options: NetOwnerOptions) {
    this.mem = new NetMemory(createNetMemory(grants + options.connections));
    this.waker = new Waker(this.mem.wakerCell());
  }

  /**
   * Opens the run's sockets: the preopened grants and the argdata tree's `socket` nodes (which
   * come back as `netslot` nodes). Rejects with a message naming the address when one cannot
   * be bound or connected; everything opened so far is closed then.
   */
  async open(preopened: SocketGrant[], argdata: ArgNode | undefined): Promise<{ spec: NetSpec; argdata: ArgNode | undefined }> {
    try {
      const opened = await openGrants(preopened, argdata, (kind, addr) => {
        if (kind === 'listen') return this.listen(addr);
        if (kind === 'connect') return this.connect(addr);
        return this.datagram(addr, kind === 'dgram-connect');
      });
      return { spec: this.start(opened.preopened), argdata: opened.argdata };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Starts serving the guest's doorbell: the spec the worker needs, with the sockets it starts with. */
  start(preopened: OpenedSocket[]): NetSpec {
    this.watch();
    return { sab: this.mem.sab, preopened, maxBytes: this.options.maxBytes, maxDatagrams: this.options.maxDatagrams };
  }

  private freeSlot(): Slot | undefined {
    return this.mem.slots.find((s) => s.kind === KIND_FREE && !this.streams.has(s.index) && !this.dgrams.has(s.index) && !this.reserved.has(s.index));
  }

  /**
   * Holds a free slot for a socket opened elsewhere (an executor's: the engine dials, then hands
   * the socket over with adopt()). Throws SocketOpenError (EMFILE) when the run's slots are full.
   */
  reserve(what: string): number {
    if (this.closed) throw this.ended(what);
    const slot = this.freeSlot();
    if (!slot) throw this.full(what);
    this.reserved.add(slot.index);
    return slot.index;
  }

  /** Gives back a slot reserve() held, when its socket could not be opened. */
  unreserve(index: number): void {
    this.reserved.delete(index);
  }

  /**
   * Puts a server, a connected socket or a datagram socket opened elsewhere into slot `index`
   * (reserved, or free before start()). A datagram socket's `address` is its peer, '' if it has none.
   */
  adopt(index: number, handle: net.Server | net.Socket | dgram.Socket, address: string): void {
    this.reserved.delete(index);
    const slot = this.mem.slots[index];
    if (this.closed || !slot || slot.kind !== KIND_FREE || this.streams.has(index)) {
      if (handle instanceof net.Socket) handle.destroy(); else handle.close();
      throw this.closed ? this.ended(`take the socket of ${address}`) : new SocketOpenError(ERRNO.BADF, `Cannot take the socket of ${address}: slot ${index} is not free`);
    }
    if (handle instanceof net.Server) this.addListener(slot, { server: handle, address });
    else if (handle instanceof dgram.Socket) this.attachDatagrams(slot, handle, address || undefined);
    else this.attach(slot, handle, address);
  }

  /** Binds or connects a datagram socket (`!socket { type: dgram }`): its slot. */
  async datagram(addr: SocketAddress, connect: boolean): Promise<number> {
    const what = `${connect ? 'connect to' : 'bind'} ${formatSocketAddress(addr)} (UDP)`;
    const index = this.reserve(what);
    let opened: Awaited<ReturnType<typeof openDatagram>>;
    try {
      opened = await openDatagram(addr, connect);
    } catch (e) {
      this.unreserve(index);
      throw e;
    }
    this.reserved.delete(index);
    if (this.closed) { opened.socket.close(); throw this.ended(what); }
    if (!opened.connected) this.addresses.push(opened.address);
    this.attachDatagrams(this.mem.slots[index]!, opened.socket, opened.connected ? opened.address : undefined);
    return index;
  }

  /**
   * Serves a datagram socket in `slot`; `peer` is where a connected one sends (a bound one has
   * none: preview1 has no sendto). A datagram that finds the receive ring full is dropped, as a
   * full socket buffer drops it: nothing waits here for a guest that does not read.
   */
  private attachDatagrams(slot: Slot, socket: dgram.Socket, peer: string | undefined): void {
    slot.rx.clear();
    slot.tx.clear();
    Atomics.store(slot.ctl, C.HOST, 0);
    Atomics.store(slot.ctl, C.ERRNO, 0);
    Atomics.store(slot.ctl, C.GUEST, 0);
    if (peer !== undefined) setPeer(slot, peer); else Atomics.store(slot.ctl, 4, 0);
    let jsConnected = true;
    try { socket.remoteAddress(); } catch { jsConnected = false; }
    const p = peer !== undefined && !jsConnected ? parseSocketAddress(peer) : undefined;
    const st: Datagrams = { slot, socket, inflight: 0, done: false, ready: p === undefined };
    // One the engine opened for an executor comes bound and is connected here (see openDatagram).
    if (p?.kind === 'tcp') socket.connect(p.port, p.host, () => { st.ready = true; this.pumpDatagrams(st); });
    // Only the peer's datagrams, also those that came before the connect.
    const from = peer !== undefined ? parseSocketAddress(peer) : undefined;
    Atomics.store(slot.ctl, C.KIND, KIND_DGRAM);
    this.dgrams.set(slot.index, st);
    const live = (): boolean => this.dgrams.get(slot.index) === st;
    socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      if (!live() || slot.guestFlags() & (GUEST_SHUT_RD | GUEST_CLOSED) || msg.length > MAX_DATAGRAM) return;
      if (from?.kind === 'tcp' && (rinfo.port !== from.port || (net.isIP(from.host) !== 0 && rinfo.address !== from.host))) return;
      if (slot.rx.room() < DGRAM_HEADER + msg.length) return;
      const record = new Uint8Array(DGRAM_HEADER + msg.length);
      new DataView(record.buffer).setUint32(0, msg.length, true);
      record.set(msg, DGRAM_HEADER);
      slot.rx.write(record);
      this.waker.wake();
    });
    socket.on('error', (e) => {
      if (!live()) return;
      Atomics.store(slot.ctl, C.ERRNO, errnoOf(e));
      Atomics.or(slot.ctl, C.HOST, HOST_ERROR);
      this.waker.wake();
    });
    socket.on('close', () => { st.done = true; });
  }

  /** Sends what the guest queued on a datagram socket, and frees its slot once the guest closed it. */
  private pumpDatagrams(st: Datagrams): void {
    const { slot, socket } = st;
    const head = new Uint8Array(DGRAM_HEADER);
    while (st.ready && !st.done && st.inflight < MAX_INFLIGHT && slot.tx.read(head, true) === DGRAM_HEADER) {
      const len = new DataView(head.buffer).getUint32(0, true);
      const record = Buffer.allocUnsafe(DGRAM_HEADER + len);
      slot.tx.read(record);
      st.inflight++;
      const sent = (): void => { st.inflight--; this.pumpDatagrams(st); };
      socket.send(record.subarray(DGRAM_HEADER), sent);
      this.waker.wake();
    }
    if (slot.guestFlags() & GUEST_CLOSED && (st.done || (slot.tx.available() === 0 && st.inflight === 0))) this.detach(slot.index);
  }

  private full(what: string): SocketOpenError {
    return new SocketOpenError(ERRNO.MFILE, `Cannot ${what}: the run has ${this.options.connections} sockets open, its limit (net.connections)`);
  }

  private ended(what: string): SocketOpenError {
    return new SocketOpenError(ERRNO.CANCELED, `Cannot ${what}: the run has ended`);
  }

  /**
   * Listens on `addr` (a `!socket { bind }`, `--listen`, Casper's bind): the listener's slot.
   * Rejects with SocketOpenError (EADDRINUSE…, EMFILE when the run's slots are full).
   */
  async listen(addr: SocketAddress): Promise<number> {
    const spec = formatSocketAddress(addr);
    if (this.closed) throw this.ended(`listen on ${spec}`);
    const slot = this.freeSlot();
    if (!slot) throw this.full(`listen on ${spec}`);
    // Held while the server binds: another open must not take the same slot.
    Atomics.store(slot.ctl, C.KIND, KIND_LISTENER);
    let bound: BoundServer;
    try {
      bound = await bindServer(addr, this.options.backlog);
    } catch (e) {
      Atomics.store(slot.ctl, C.KIND, KIND_FREE);
      throw e;
    }
    if (this.closed) { bound.server.close(); Atomics.store(slot.ctl, C.KIND, KIND_FREE); throw this.ended(`listen on ${spec}`); }
    this.addListener(slot, bound);
    return slot.index;
  }

  private addListener(slot: Slot, { server, address }: BoundServer): void {
    Atomics.store(slot.ctl, C.KIND, KIND_LISTENER);
    const l: Listener = { slot, server, address, waiting: 0 };
    this.listeners.push(l);
    this.addresses.push(address);
    server.on('connection', (s) => this.incoming(l, s));
    server.on('error', () => {});
  }

  /**
   * Connects to `addr` (a `!socket { connect }`, Casper's connect): the connection's slot.
   * Nothing is sent when the run's slots are full. Rejects with SocketOpenError (ECONNREFUSED…).
   */
  async connect(addr: SocketAddress): Promise<number> {
    const spec = formatSocketAddress(addr);
    if (this.closed) throw this.ended(`connect to ${spec}`);
    if (!this.freeSlot()) throw this.full(`connect to ${spec}`);
    const socket = await dial(addr, this.connecting, () => this.ended(`connect to ${spec}`));
    const slot = this.freeSlot();
    if (this.closed || !slot) {
      socket.destroy();
      throw this.closed ? this.ended(`connect to ${spec}`) : this.full(`connect to ${spec}`);
    }
    this.attach(slot, socket, spec);
    return slot.index;
  }

  /** Closes a slot's socket that no guest descriptor holds (a Casper reply that never arrived). */
  release(index: number): void {
    this.reserved.delete(index);
    const l = this.listeners.findIndex((x) => x.slot.index === index);
    if (l >= 0) {
      const [gone] = this.listeners.splice(l, 1);
      gone!.server.close();
      Atomics.store(gone!.slot.ctl, C.KIND, KIND_FREE);
      return;
    }
    this.detach(index);
  }

  private incoming(l: Listener, socket: net.Socket): void {
    const peer = socket.remoteAddress !== undefined ? formatSocketAddress({ kind: 'tcp', host: socket.remoteAddress, port: socket.remotePort ?? 0 }) : l.address;
    const refuse = (message: string): void => {
      this.options.audit({ call: 'sock_accept', address: peer, errno: ERRNO.CONNREFUSED, message: `Refused a connection from ${peer} on ${l.address}: ${message}` });
      socket.destroy();
    };
    if (this.closed) return void socket.destroy();
    if (l.waiting >= this.options.backlog) return refuse(`${l.waiting} connections already wait for sock_accept (backlog ${this.options.backlog})`);
    const slot = this.freeSlot();
    if (!slot) return refuse(`the run has ${this.options.connections} connections open, its limit (net.connections)`);
    this.attach(slot, socket, peer);
    l.waiting++;
    const word = new Uint8Array(4);
    new DataView(word.buffer).setUint32(0, slot.index, true);
    if (l.slot.rx.write(word) !== 4) { this.detach(slot.index); return refuse('the accept queue is full'); }
    this.waker.wake();
  }

  private attach(slot: Slot, socket: net.Socket, peer: string): void {
    slot.rx.clear();
    slot.tx.clear();
    Atomics.store(slot.ctl, C.HOST, 0);
    Atomics.store(slot.ctl, C.ERRNO, 0);
    Atomics.store(slot.ctl, C.GUEST, 0);
    setPeer(slot, peer);
    Atomics.store(slot.ctl, C.KIND, KIND_STREAM);
    const st: Stream = { slot, socket, pending: undefined, draining: false, ended: false, done: false };
    this.streams.set(slot.index, st);
    socket.setNoDelay(true);
    // A freed slot may carry a new connection before this socket's last events arrive.
    const live = (): boolean => this.streams.get(slot.index) === st;
    socket.on('data', (chunk: Buffer) => {
      if (!live() || slot.guestFlags() & (GUEST_SHUT_RD | GUEST_CLOSED)) return;
      const n = slot.rx.write(chunk);
      if (n < chunk.length) {
        st.pending = chunk.subarray(n);
        socket.pause();
      }
      if (n > 0) this.waker.wake();
    });
    // A dialled socket comes paused (see dial): a 'data' listener alone does not start it.
    socket.resume();
    socket.on('end', () => { if (live()) { Atomics.or(slot.ctl, C.HOST, HOST_EOF); this.waker.wake(); } });
    socket.on('error', (e) => {
      if (!live()) return;
      Atomics.store(slot.ctl, C.ERRNO, errnoOf(e));
      Atomics.or(slot.ctl, C.HOST, HOST_ERROR);
      this.waker.wake();
    });
    socket.on('close', () => {
      st.done = true;
      if (!live()) return;
      Atomics.or(slot.ctl, C.HOST, HOST_EOF);
      this.waker.wake();
      this.pump(st);
    });
  }

  /** Frees a slot whose socket is gone; the guest no longer refers to it. */
  private detach(index: number): void {
    const d = this.dgrams.get(index);
    if (d) {
      this.dgrams.delete(index);
      if (!d.done) d.socket.close();
      Atomics.store(d.slot.ctl, C.KIND, KIND_FREE);
      return;
    }
    const st = this.streams.get(index);
    if (!st) return;
    this.streams.delete(index);
    st.socket.destroy();
    Atomics.store(st.slot.ctl, C.KIND, KIND_FREE);
  }

  /** Moves what can move on one connection, after the guest rang or the socket drained. */
  private pump(st: Stream): void {
    const { slot, socket } = st;
    const guest = slot.guestFlags();
    if (st.pending && !(guest & GUEST_SHUT_RD)) {
      const n = slot.rx.write(st.pending);
      st.pending = n === st.pending.length ? undefined : st.pending.subarray(n);
      if (n > 0) this.waker.wake();
      if (!st.pending && !st.done) socket.resume();
    } else if (guest & GUEST_SHUT_RD && st.pending) {
      st.pending = undefined;
      if (!st.done) socket.resume();
    }
    if (!st.draining && !st.done) {
      const avail = slot.tx.available();
      if (avail > 0) {
        const buf = Buffer.allocUnsafe(avail);
        slot.tx.read(buf);
        this.waker.wake();
        if (!socket.write(buf)) {
          st.draining = true;
          socket.once('drain', () => { st.draining = false; this.pump(st); });
        }
      }
    }
    const txEmpty = slot.tx.available() === 0 && !st.draining;
    if (!txEmpty) return;
    if (guest & GUEST_CLOSED) {
      // Closed by the guest: the slot is freed once its last bytes are out (or the peer is gone).
      if (st.done || socket.writableFinished) this.detach(slot.index);
      else if (!st.ended) { st.ended = true; socket.end(() => this.detach(slot.index)); }
      else if (!st.finishing) { st.finishing = true; socket.once('finish', () => this.detach(slot.index)); }
    } else if (guest & GUEST_SHUT_WR && !st.ended && !st.done) {
      st.ended = true;
      socket.end();
    }
  }

  /** Watches the guest's doorbell until close(). */
  private watch(): void {
    const arm = (): void => {
      if (this.closed) return;
      const w = waitAsync(this.mem.header, H.DOORBELL, this.doorbell);
      if (w.async) void w.value.then(ring);
      else setImmediate(ring);
    };
    const ring = (): void => {
      if (this.closed) return;
      this.doorbell = Atomics.load(this.mem.header, H.DOORBELL);
      for (const l of this.listeners) l.waiting = l.slot.rx.available() >>> 2;
      for (const st of [...this.streams.values()]) this.pump(st);
      for (const d of [...this.dgrams.values()]) this.pumpDatagrams(d);
      arm();
    };
    arm();
  }

  /** Closes every socket and server of the run (its end, whatever its status). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Releases the pending doorbell wait.
    Atomics.add(this.mem.header, H.DOORBELL, 1);
    Atomics.notify(this.mem.header, H.DOORBELL);
    for (const l of this.listeners) l.server.close();
    for (const s of this.connecting) s.destroy();
    for (const st of this.streams.values()) st.socket.destroy();
    for (const d of this.dgrams.values()) if (!d.done) d.socket.close();
    this.dgrams.clear();
    this.streams.clear();
  }

  /** Connections open now (for tests and metrics). */
  get openConnections(): number {
    return this.streams.size;
  }
}
