/** Manifests for people: the effective grants as a table, and a manifest as YAML. */
import type * as YAML from 'yaml';
import { yaml } from './yaml.js';
import { capNames, TYPE_RIGHTS, R } from '../wasi/rights.js';
import { LISTENER_RIGHTS, STREAM_SOCKET_RIGHTS } from '../wasi/sockets.js';
import { formatBytes, formatDuration } from '../host/units.js';
import type { Limits } from '../host/limits.js';
import type { ArgNode, Manifest, SocketGrant } from './types.js';
import { PROMISES } from './vocabulary.js';

/** One descriptor the guest starts with. */
export interface GrantRow {
  fd: number;
  what: string;
  path: string;
  base: string[];
  inheriting: string[];
  note?: string;
}

type Opened = Extract<ArgNode, { type: 'file' | 'socket' }>;

/** The argdata nodes that become descriptors (files and sockets), in tree order, as the run opens them. */
function opened(node: ArgNode | undefined, out: Opened[] = []): Opened[] {
  if (!node) return out;
  if (node.type === 'file' || node.type === 'socket') out.push(node);
  else if (node.type === 'seq') node.items.forEach((n) => opened(n, out));
  else if (node.type === 'map') node.entries.forEach(([k, v]) => { opened(k, out); opened(v, out); });
  return out;
}

function socketRow(fd: number, g: SocketGrant, what: string): GrantRow {
  const listening = g.bind !== undefined;
  return {
    fd, what, path: (g.bind ?? g.connect)!,
    base: capNames(listening ? LISTENER_RIGHTS : STREAM_SOCKET_RIGHTS), inheriting: capNames(listening ? STREAM_SOCKET_RIGHTS : 0n),
  };
}

/** The descriptors of an effective manifest in fd order: stdio, directories, sockets, then argdata's files and sockets. */
export function grantRows(m: Manifest): GrantRow[] {
  const stdio = TYPE_RIGHTS.characterDevice.base & (m.stdio?.base ?? TYPE_RIGHTS.characterDevice.base);
  const rows: GrantRow[] = [
    { fd: 0, what: 'stdin', path: '', base: capNames(stdio & ~R.fd_write), inheriting: [] },
    { fd: 1, what: 'stdout', path: '', base: capNames(stdio & ~R.fd_read), inheriting: [] },
    { fd: 2, what: 'stderr', path: '', base: capNames(stdio & ~R.fd_read), inheriting: [] },
  ];
  let fd = 3;
  for (const d of m.dirs) {
    rows.push({
      fd: fd++, what: d.host === undefined ? 'dir (memory)' : `dir (${d.host})`, path: d.guest,
      base: capNames(d.rights.base), inheriting: capNames(d.rights.inheriting), ...(d.initOnly ? { note: 'init-only' } : {}),
    });
  }
  for (const g of m.sockets ?? []) rows.push(socketRow(fd++, g, g.bind !== undefined ? 'socket (listening)' : 'socket (connected)'));
  for (const n of opened(m.argdata)) {
    rows.push(n.type === 'file'
      ? { fd: fd++, what: 'file (argdata)', path: n.path, base: capNames(n.rights.base), inheriting: [] }
      : socketRow(fd++, n.socket, 'socket (argdata)'));
  }
  return rows;
}

/** The grants as a plain-text table. */
export function grantTable(m: Manifest & { limits: Limits }): string {
  const rows = grantRows(m);
  // Columns as wide as their longest cell: a long host path does not push the next column out of line.
  const whatWidth = Math.max(20, ...rows.map((r) => r.what.length));
  const pathWidth = Math.max(15, ...rows.map((r) => (r.path || '-').length));
  const lines = [`fd  ${'what'.padEnd(whatWidth)} ${'path'.padEnd(pathWidth)} rights (base / inheriting)`];
  for (const r of rows) {
    const rights = `${r.base.join(', ') || 'none'}${r.inheriting.length ? ` / ${r.inheriting.join(', ')}` : ''}`;
    lines.push(`${String(r.fd).padEnd(3)} ${r.what.padEnd(whatWidth)} ${(r.path || '-').padEnd(pathWidth)} ${rights}${r.note ? `  [${r.note}]` : ''}`);
  }
  const l = m.limits;
  lines.push('', `limits: wall ${formatDuration(l.wallMs)}, cpu ${formatDuration(l.cpuMs)}, memory ${formatBytes(l.memoryBytes)}, `
    + `output ${formatBytes(l.outputBytes)}, fds ${l.fds}, files ${formatBytes(l.filesBytes)}`);
  const services = Object.keys(m.casper);
  lines.push(`casper: ${services.length ? services.join(', ') : 'none'}`);
  const used = new Set<string>([...m.dirs.flatMap((d) => d.rights.names), ...(m.stdio?.names ?? [])]);
  const promises = [...used].filter((w) => PROMISES[w]);
  if (promises.length) {
    lines.push('', 'promises:');
    for (const p of promises) {
      const g = PROMISES[p]!;
      lines.push(`  ${p}: ${g.casper ? g.casper.join(', ') : capNames(g.rights).join(', ') || 'nothing'} (${g.note})`);
    }
  }
  return lines.join('\n');
}

/** A scalar written as `text` with an explicit tag, so that it reads back as exactly this type. */
function tagged(doc: YAML.Document, text: string, tag: string): YAML.Scalar {
  const s = doc.createNode(text) as YAML.Scalar;
  s.tag = tag;
  s.type = 'PLAIN';
  return s;
}

function timestampText(ns: bigint): string {
  const ms = ns / 1_000_000n - (ns % 1_000_000n < 0n ? 1n : 0n);
  const frac = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  return new Date(Number(ms)).toISOString().replace(/\.\d{3}Z$/, `.${String(frac).padStart(9, '0')}Z`);
}

function argToYaml(n: ArgNode, doc: YAML.Document): unknown {
  switch (n.type) {
    case 'null': return null;
    case 'bool': case 'str': return n.value;
    case 'float': {
      if (Number.isNaN(n.value)) return tagged(doc, '.nan', 'tag:yaml.org,2002:float');
      if (!Number.isFinite(n.value)) return n.value;
      // An integral float is tagged, or it would read back as an int.
      return Number.isInteger(n.value) || Object.is(n.value, -0) ? tagged(doc, Object.is(n.value, -0) ? '-0.0' : String(n.value), 'tag:yaml.org,2002:float') : n.value;
    }
    case 'int': return tagged(doc, n.value.toString(), 'tag:yaml.org,2002:int');
    case 'binary': return tagged(doc, Buffer.from(n.value).toString('base64'), 'tag:yaml.org,2002:binary');
    case 'timestamp': return tagged(doc, timestampText(n.value), 'tag:yaml.org,2002:timestamp');
    case 'seq': return n.items.map((i) => argToYaml(i, doc));
    case 'map': { const m = doc.createNode({}) as YAML.YAMLMap; for (const [k, v] of n.entries) m.set(argToYaml(k, doc), argToYaml(v, doc)); return m; }
    case 'fd': { const s = doc.createNode(['stdin', 'stdout', 'stderr'][n.fd] ?? n.fd); s.tag = '!fd'; return s; }
    case 'file': { const s = doc.createNode({ path: n.path, rights: n.rights.names }); s.tag = '!file'; return s; }
    case 'socket': return socketToYaml(n.socket, doc);
    // Only the host makes netslot nodes, after a manifest is read.
    case 'netslot': return null;
  }
}

function socketToYaml(g: SocketGrant, doc: YAML.Document): unknown {
  const s = doc.createNode(g.bind !== undefined ? { bind: g.bind } : { connect: g.connect }) as YAML.YAMLMap;
  s.tag = '!socket';
  s.flow = true;
  return s;
}

/** A manifest as YAML that parseManifest reads back to the same manifest. */
export function manifestToYaml(m: Manifest): string {
  return documentText(manifestDocument(m));
}

/** A YAML document's text, with CloudABI's tag directive when it uses !fd or !file. */
export function documentText(doc: YAML.Document): string {
  const text = doc.toString();
  return /!fd|!file/.test(text) ? `%TAG ! tag:nuxi.nl,2015:cloudabi/\n---\n${text}` : text;
}

/** A manifest as a YAML document (to which comments can be added). */
export function manifestDocument(m: Manifest): YAML.Document {
  const doc = new (yaml().Document)({});
  const root = doc.contents as YAML.YAMLMap;
  if (m.module !== undefined) root.set('module', m.module);
  root.set('args', m.args);
  if (Object.keys(m.env).length) root.set('env', m.env);
  if (m.argdata) root.set('argdata', argToYaml(m.argdata, doc));
  if (m.sockets?.length) root.set('sockets', m.sockets.map((g) => socketToYaml(g, doc)));
  if (m.dirs.length) {
    root.set('dirs', m.dirs.map((d) => {
      const node = doc.createNode({
        guest: d.guest, source: d.host ?? 'memory',
        rights: d.rights.names.length === 1 ? d.rights.names[0] : d.rights.names, ...(d.initOnly ? { init_only: true } : {}),
      }) as YAML.YAMLMap;
      node.flow = true;
      return node;
    }));
  }
  const l = m.limits;
  const limits: Record<string, string | number> = {};
  if (l.wallMs !== undefined) limits['wall'] = `${l.wallMs}ms`;
  if (l.cpuMs !== undefined) limits['cpu'] = `${l.cpuMs}ms`;
  if (l.memoryBytes !== undefined) limits['memory'] = l.memoryBytes;
  if (l.outputBytes !== undefined) limits['output'] = l.outputBytes;
  if (l.fds !== undefined) limits['fds'] = l.fds;
  if (l.filesBytes !== undefined) limits['files'] = l.filesBytes;
  if (Object.keys(limits).length) root.set('limits', limits);
  if (m.stdio) root.set('pledge', m.stdio.names);
  if (Object.keys(m.casper).length) root.set('casper', m.casper);
  return doc;
}
