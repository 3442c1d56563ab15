/** Socket addresses as manifests and flags spell them: "host:port", "[v6]:port", or a UNIX path. */
import net from 'node:net';

/** A parsed address: TCP host and port, or a UNIX socket path. */
export type SocketAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Parses an address; throws a TypeError that says what is wrong and shows the forms. */
export function parseSocketAddress(spec: string): SocketAddress {
  if (spec.startsWith('/')) {
    if (spec.includes('\0')) throw new TypeError(`socket address ${JSON.stringify(spec)} contains a NUL byte`);
    return { kind: 'unix', path: spec };
  }
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:[\]]+):(\d+)$/.exec(spec);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`socket address ${JSON.stringify(spec)}: expected HOST:PORT, [IPV6]:PORT or an absolute UNIX path, e.g. 127.0.0.1:8080`);
  }
  const host = m[1]!;
  if (spec.startsWith('[') && net.isIPv6(host) === false) throw new TypeError(`socket address ${spec}: ${host} is not an IPv6 address`);
  return { kind: 'tcp', host, port };
}

/** The address as it is spelled: "127.0.0.1:80", "[::1]:80", "/run/x.sock". */
export function formatSocketAddress(a: SocketAddress): string {
  if (a.kind === 'unix') return a.path;
  return net.isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Whether `a` is on the loopback interface (127.0.0.0/8, ::1, localhost) or a UNIX path. */
export function isLoopback(a: SocketAddress): boolean {
  if (a.kind === 'unix') return true;
  return a.host === 'localhost' || a.host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a.host) || a.host === '::ffff:127.0.0.1';
}
