/** The example DNS server's running instance (examples/dns-server.mjs). */
export interface DnsFixture {
  port: number;
  /** Names asked, in order. */
  queries: string[];
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 and `port` (default: a free one). */
export function startDnsServer(options?: { forward?: boolean; port?: number; a?: Record<string, string> }): Promise<DnsFixture>;
