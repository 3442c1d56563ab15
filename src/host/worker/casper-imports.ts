/**
 * The `casper` import module (docs/abi.md): channels are descriptors in the guest's fd table;
 * requests cross the run's bridge to the broker on the host thread.
 */
import { unpackNvlist, packNvlist } from '../../casper/nvlist-codec.js';
import { NvList, type NvValue } from '../../casper/nvlist.js';
import { ERRNO, FILETYPE } from '../../wasi/constants.js';
import type { WasiContext } from '../../wasi/context.js';
import { fail, WasiError } from '../../wasi/errors.js';
import { Handle } from '../../wasi/handles.js';
import { guard } from '../../wasi/preview1.js';
import { R } from '../../wasi/rights.js';
import { BridgeError, type BridgeClient } from '../bridge.js';
import {
  CASPER_FAULT_MAX_CHARS, CASPER_MAX_MESSAGE_BYTES, CASPER_MAX_PENDING_BYTES, CASPER_NO_CHANNEL, CASPER_OP, decodeXferAnswer, encodeCasperRequest, encodeXferRequest, type XferAnswer,
} from '../casper-wire.js';
import { CHANNEL_COMMANDS, freeze, requestErrno, withError } from '../../casper/broker.js';
import { InWorkerServices, type LocalChannel } from '../../casper/in-worker.js';
import { IN_WORKER_SERVICES } from '../../casper/services/in-worker.js';
import type { GuestOp, GuestOpResult } from '../../casper/service.js';
import { BRIDGE_KIND } from '../functions.js';
import { lstatGuest, openGuestFile, realpathGuest, type SocketInstaller } from './argdata-fds.js';
import { LISTENER_RIGHTS, STREAM_SOCKET_RIGHTS } from '../../wasi/sockets.js';

const CHANNEL_RIGHTS = R.fd_read | R.fd_write | R.fd_filestat_get | R.poll_fd_readwrite;
const LIMIT_GET = packNvlist(new NvList().addString('cmd', 'limit_get'));

/** The name the broker gives cap_init's channel (core.casper: it opens the others). */
const CORE = 'core.casper';

/** A channel to a Casper service, as the guest holds it. */
export class ChannelHandle extends Handle {
  readonly filetype = FILETYPE.SOCKET_STREAM;
  pending: Uint8Array | undefined;
  constructor(
    readonly channel: number,
    private readonly onClose: (h: ChannelHandle) => void,
    /** The channel's service (core.casper for cap_init's). */
    readonly service: string = CORE,
    /** Set when this worker answers the service's commands itself (../../casper/in-worker.ts). */
    readonly local?: LocalChannel,
  ) { super(); }
  override close(): void { this.onClose(this); }
}

/** Records one Casper decision in the run's audit trail. */
export type CasperAudit = (d: { service: string; cmd: string; errno: number; fd: number }) => void;

/** The run's sockets, for replies that hand the guest one (system.net): install a slot, or give one back unused. */
export interface CasperSockets { install: SocketInstaller; discard(slot: number): void }

/**
 * Builds the casper imports of one run. With `inWorkerConfig` (the operator's configuration of the
 * services of IN_WORKER_SERVICES), those services' commands are answered in this worker; everything
 * else (and those channels' limit_*, clone, close) crosses to the broker.
 */
export function createCasperImports(ctx: WasiContext, client: BridgeClient, audit: CasperAudit, sockets?: CasperSockets, inWorkerConfig?: Record<string, unknown>) {
  const { mem, fds } = ctx;
  const call = (op: number, channel: number, payload?: Uint8Array): Uint8Array => {
    try {
      return client.call(encodeCasperRequest(BRIDGE_KIND.casper, op, channel, payload));
    } catch (e) {
      if (e instanceof BridgeError) fail(e.code === 'timeout' ? ERRNO.TIMEDOUT : ERRNO.IO, e.message);
      throw e;
    }
  };
  // A service that throws here is reported to the host, which lists it in the run's warnings.
  const inWorker = inWorkerConfig ? new InWorkerServices(IN_WORKER_SERVICES, inWorkerConfig, (service, e) => {
    const message = String((e as Error)?.message ?? e).slice(0, CASPER_FAULT_MAX_CHARS);
    try { call(CASPER_OP.fault, 0, new TextEncoder().encode(JSON.stringify({ service, message }))); } catch { /* the run is ending anyway */ }
  }) : undefined;
  const closeChannel = (channel: number) => {
    try { call(CASPER_OP.close, channel); } catch { /* the run is ending anyway */ }
  };
  // Replies kept for casper.recv, on all channels together: bounded by CASPER_MAX_PENDING_BYTES.
  let pendingBytes = 0;
  const setPending = (h: ChannelHandle, reply: Uint8Array | undefined) => {
    pendingBytes += (reply?.length ?? 0) - (h.pending?.length ?? 0);
    h.pending = reply;
  };
  /** Keeps a reply for casper.recv and tells the guest its size. */
  const setReply = (h: ChannelHandle, packed: Uint8Array, respLenOut: number): number => {
    setPending(h, packed);
    mem.setU32(respLenOut, packed.length);
    return ERRNO.SUCCESS;
  };
  const onClose = (h: ChannelHandle) => {
    setPending(h, undefined);
    closeChannel(h.channel);
  };
  const xferOnHost = (channel: number, request: Uint8Array): XferAnswer => {
    // A service may first need things only this worker can do (fileargs' lstat and realpath):
    // do them and send the request again with the answers.
    const results: GuestOpResult[] = [];
    let a = decodeXferAnswer(call(CASPER_OP.xfer, channel, encodeXferRequest(request, results)));
    for (let round = 0; a.needs?.length && round < 8; round++) {
      for (const op of a.needs) results.push(guestOp(ctx, op));
      a = decodeXferAnswer(call(CASPER_OP.xfer, channel, encodeXferRequest(request, results)));
    }
    if (a.needs?.length) fail(ERRNO.IO, 'the service kept asking for guest operations');
    return a;
  };
  /**
   * The broker's limits of a new channel this worker will answer, asked with limit_get (once, when
   * the channel is opened); a failure fails the open, so that the service's commands never split
   * between this worker and the host.
   */
  const limitsOf = (channel: number): NvList | null => {
    const a = xferOnHost(channel, LIMIT_GET);
    if (a.status !== 0) fail(a.status, 'cannot read the new channel\'s limits');
    if (a.errno !== 0) fail(a.errno, 'cannot read the new channel\'s limits');
    const limits = unpackNvlist(a.reply).getNvlist('limits');
    return limits ? freeze(limits) : null;
  };
  /** Installs a channel the broker made; `parent` is the channel a clone comes from. */
  const install = (channel: number, service: string = CORE, parent?: LocalChannel): number => {
    const served = inWorker?.serviceOf(service);
    const local: LocalChannel | undefined = served
      ? { service: served, limits: parent ? parent.limits : limitsOf(channel), state: new Map() }
      : undefined;
    return fds.insert({ handle: new ChannelHandle(channel, onClose, service, local), base: CHANNEL_RIGHTS, inheriting: 0n, fdflags: 0 });
  };
  // Like sock_*: a descriptor that is no channel is ENOTSOCK whatever its rights.
  const channelOf = (fd: number, needed: bigint, what: string): ChannelHandle => {
    const h = fds.peek(fd)?.handle;
    if (h !== undefined && !(h instanceof ChannelHandle)) fail(ERRNO.NOTSOCK, `fd ${fd} is not a Casper channel`);
    return fds.get(fd, needed, what).handle as ChannelHandle;
  };

  return {
    init: guard('casper.init', (fdOut: number): number => {
      mem.sync().check(fdOut >>> 0, 4);
      ctx.refuseInCapabilityMode('cap_init');
      fds.ensureRoom();
      const channel = new DataView(call(CASPER_OP.init, 0).buffer).getUint32(0, true);
      if (channel === CASPER_NO_CHANNEL) fail(ERRNO.MFILE, 'every Casper channel this run may have is open');
      mem.setU32(fdOut, install(channel));
      return ERRNO.SUCCESS;
    }),
    xfer: guard('casper.xfer', (fd: number, req: number, reqLen: number, respLenOut: number): number => {
      mem.sync().check(respLenOut >>> 0, 4);
      const h = channelOf(fd, R.fd_write | R.fd_read, 'casper.xfer');
      // Checked here, before anything crosses to the host thread (which checks again).
      if ((reqLen >>> 0) > CASPER_MAX_MESSAGE_BYTES) fail(ERRNO.MSGSIZE, `the request is ${reqLen >>> 0} bytes, above the ${CASPER_MAX_MESSAGE_BYTES}-byte limit`);
      if (pendingBytes - (h.pending?.length ?? 0) >= CASPER_MAX_PENDING_BYTES) {
        fail(ERRNO.NOBUFS, `${pendingBytes} bytes of replies wait for casper.recv on other channels`);
      }
      const request = mem.bytes(req, reqLen).slice();
      // Read here only where this worker needs what the request says: a command of a channel it
      // answers, and which service an open (or a clone) gives the new channel.
      let unpacked: NvList | undefined;
      if (h.local || h.service === CORE) {
        try {
          unpacked = unpackNvlist(request);
        } catch {
          return ERRNO.INVAL; // what the host answers for a request it cannot read
        }
      }
      const cmd = unpacked?.getString('cmd');
      let reply: NvList;
      if (h.local && unpacked && !(cmd !== undefined && CHANNEL_COMMANDS.has(cmd))) {
        const refused = requestErrno(unpacked);
        const answer = refused !== 0 ? { reply: withError(new NvList(), refused), errno: refused } : inWorker!.command(h.local, cmd!, unpacked);
        audit({ service: h.service, cmd: cmd ?? '?', errno: answer.errno, fd });
        return setReply(h, packNvlist(answer.reply), respLenOut);
      }
      const a = xferOnHost(h.channel, request);
      if (a.status !== 0) return a.status;
      audit({ service: a.service, cmd: a.cmd, errno: a.errno, fd });
      // The broker took the new limits: this worker's copy follows (limits only narrow, the broker checked).
      if (h.local && cmd === 'limit_set' && a.errno === 0) h.local.limits = freeze(unpacked!.getNvlist('limits')!);
      reply = unpackNvlist(a.reply);
      if (a.descriptors.length) {
        // The broker's descriptor values are indexes; each becomes a descriptor of this guest. A
        // file that cannot be opened turns the reply into that errno (fileargs_open's ENOENT…).
        const fdsOf: number[] = [];
        try {
          // The service of a channel the reply hands over: the one opened, or the clone's parent's.
          const opened = cmd === 'open' && h.service === CORE ? unpacked?.getString('service') : undefined;
          for (const d of a.descriptors) {
            if (d.kind === 'channel') fdsOf.push(opened !== undefined ? install(d.id, opened) : install(d.id, h.service, h.local));
            else if (d.kind === 'open') fdsOf.push(openGuestFile(ctx, d.path, d.rights, 'fileargs'));
            else if (!sockets) fail(ERRNO.NOTSUP, 'the run has no sockets to hand over');
            else fdsOf.push(d.listening ? sockets.install(d.slot, LISTENER_RIGHTS, STREAM_SOCKET_RIGHTS) : sockets.install(d.slot, STREAM_SOCKET_RIGHTS, 0n));
          }
          reply = patchDescriptors(reply, fdsOf);
        } catch (e) {
          for (const fd of fdsOf) fds.close(fd);
          // Channels the broker made for this reply that never became descriptors: release them too.
          for (const d of a.descriptors.slice(fdsOf.length)) {
            if (d.kind === 'channel') closeChannel(d.id);
            else if (d.kind === 'socket') sockets?.discard(d.slot);
          }
          const errno = e instanceof WasiError ? e.errno : ERRNO.IO;
          reply = new NvList().addNumber('error', errno);
          audit({ service: a.service, cmd: a.cmd, errno, fd });
        }
      }
      return setReply(h, packNvlist(reply), respLenOut);
    }),
    recv: guard('casper.recv', (fd: number, buf: number, len: number): number => {
      const h = channelOf(fd, R.fd_read, 'casper.recv');
      const pending = h.pending ?? fail(ERRNO.INVAL, 'no reply is waiting on this channel');
      if ((len >>> 0) < pending.length) fail(ERRNO.NOBUFS, `the reply is ${pending.length} bytes`);
      mem.sync().bytes(buf, pending.length).set(pending);
      setPending(h, undefined);
      return ERRNO.SUCCESS;
    }),
  };
}

function guestOp(ctx: WasiContext, op: GuestOp): GuestOpResult {
  try {
    return op.kind === 'lstat'
      ? { kind: 'lstat', path: op.path, ok: true, stat: lstatGuest(ctx, op.path) }
      : { kind: 'realpath', path: op.path, ok: true, resolved: realpathGuest(ctx, op.path) };
  } catch (e) {
    if (!(e instanceof WasiError)) throw e;
    return { kind: op.kind, path: op.path, ok: false, errno: e.errno };
  }
}

function patchDescriptors(list: NvList, fds: number[]): NvList {
  const map = (v: NvValue): NvValue => {
    switch (v.type) {
      case 'descriptor': return { type: 'descriptor', value: fds[v.value] ?? fail(ERRNO.IO, `reply names descriptor #${v.value}, which the broker did not grant`) };
      case 'descriptor_array': return { type: 'descriptor_array', value: v.value.map((i) => fds[i] ?? fail(ERRNO.IO, `reply names descriptor #${i}, which the broker did not grant`)) };
      case 'nvlist': return { type: 'nvlist', value: patchDescriptors(v.value, fds) };
      case 'nvlist_array': return { type: 'nvlist_array', value: v.value.map((l) => patchDescriptors(l, fds)) };
      default: return v;
    }
  };
  for (const p of list.pairs) p[1] = map(p[1]);
  return list;
}
