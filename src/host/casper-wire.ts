/**
 * The casper messages between a guest's worker and the broker on the host thread, carried by
 * the run's bridge: [BRIDGE_KIND.casper][op][channel u32][payload].
 */
import type { DescriptorGrant } from '../casper/broker.js';
import type { GuestOp, GuestOpResult } from '../casper/service.js';

/** `fault`: a service the worker answers threw (payload: JSON { service, message }), for the run's warnings. */
export const CASPER_OP = { init: 1, xfer: 2, close: 3, fault: 4 } as const;

/** The longest fault message that crosses (a service's exception text). */
export const CASPER_FAULT_MAX_CHARS = 1000;

/**
 * The largest packed nvlist a guest may send, or be answered with, on a channel (256 KiB):
 * thousands of fileargs names fit, and decoding the costliest message of that size (all tiny
 * pairs) takes the host thread tens of milliseconds, not seconds. Larger ones are EMSGSIZE,
 * refused by the worker before they cross the bridge (and again by the host).
 */
export const CASPER_MAX_MESSAGE_BYTES = 256 << 10;
/**
 * The largest bridge request of a run: a Casper message and room for the answers of the guest
 * operations a service asked for (fileargs' lstat/realpath). Host function calls are far smaller.
 */
export const CASPER_MAX_REQUEST_BYTES = 2 * CASPER_MAX_MESSAGE_BYTES;

/**
 * The most reply bytes a run's channels may keep waiting for casper.recv together (4 MiB);
 * while they hold more, casper.xfer is ENOBUFS before sending anything.
 */
export const CASPER_MAX_PENDING_BYTES = 4 << 20;

/** The channel number of an init answer that opened nothing: the broker's channels are full. */
export const CASPER_NO_CHANNEL = 0;

/** A request for the broker. */
export function encodeCasperRequest(kind: number, op: number, channel: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const buf = new Uint8Array(6 + payload.length);
  buf[0] = kind;
  buf[1] = op;
  new DataView(buf.buffer).setUint32(2, channel, true);
  buf.set(payload, 6);
  return buf;
}

/** The parts of a request, or undefined when it is too short to be one. */
export function decodeCasperRequest(buf: Uint8Array): { op: number; channel: number; payload: Uint8Array } | undefined {
  if (buf.length < 6) return undefined;
  return { op: buf[1]!, channel: new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(2, true), payload: buf.subarray(6) };
}

/** What comes back for an xfer: the packed reply (descriptor values are indexes) and what to install. */
export interface XferAnswer {
  /** 0, or the errno for a request the broker could not read (EINVAL). */
  status: number;
  /** Operations to do in the guest and send back with the same request (fileargs' lstat, realpath). */
  needs?: GuestOp[];
  reply: Uint8Array;
  descriptors: DescriptorGrant[];
  service: string;
  cmd: string;
  errno: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Serialises an xfer answer: u32 status, u32 reply length, reply, then JSON (bigints as strings). */
export function encodeXferAnswer(a: XferAnswer): Uint8Array {
  const meta = enc.encode(JSON.stringify({ descriptors: a.descriptors, service: a.service, cmd: a.cmd, errno: a.errno, ...(a.needs ? { needs: a.needs } : {}) },
    (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  const buf = new Uint8Array(8 + a.reply.length + meta.length);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, a.status, true);
  dv.setUint32(4, a.reply.length, true);
  buf.set(a.reply, 8);
  buf.set(meta, 8 + a.reply.length);
  return buf;
}

/** The inverse of encodeXferAnswer. */
export function decodeXferAnswer(buf: Uint8Array): XferAnswer {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const status = dv.getUint32(0, true);
  const len = dv.getUint32(4, true);
  const reply = buf.slice(8, 8 + len);
  const meta = JSON.parse(dec.decode(buf.subarray(8 + len))) as Omit<XferAnswer, 'status' | 'reply'>;
  meta.descriptors = meta.descriptors.map((d) => (d.kind === 'open' ? { ...d, rights: BigInt(d.rights) } : d));
  return { status, reply, ...meta };
}

const bigintText = (_k: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);
const bigintBack = (_k: string, v: unknown) => (typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v);

/** An xfer's payload: u32 nvlist length, the packed nvlist, then JSON of guest-op results. */
export function encodeXferRequest(nvlist: Uint8Array, results: GuestOpResult[]): Uint8Array {
  const meta = results.length ? enc.encode(JSON.stringify(results, bigintText)) : new Uint8Array(0);
  const buf = new Uint8Array(4 + nvlist.length + meta.length);
  new DataView(buf.buffer).setUint32(0, nvlist.length, true);
  buf.set(nvlist, 4);
  buf.set(meta, 4 + nvlist.length);
  return buf;
}

/** The inverse of encodeXferRequest; undefined when the framing is wrong. */
export function decodeXferRequest(buf: Uint8Array): { nvlist: Uint8Array; results: GuestOpResult[] } | undefined {
  if (buf.length < 4) return undefined;
  const len = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(0, true);
  if (4 + len > buf.length) return undefined;
  const rest = buf.subarray(4 + len);
  return { nvlist: buf.subarray(4, 4 + len), results: rest.length ? JSON.parse(dec.decode(rest), bigintBack) as GuestOpResult[] : [] };
}
