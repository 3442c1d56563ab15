/**
 * A DNS server on loopback (dns2, UDP) for the Casper system.dns tests: 192.0.2.30 is
 * www.example.org (PTR), and with `forward` www.example.org is 192.0.2.30 (A); `a` adds names with
 * one IPv4 address each. A name with an address has no other records (NODATA, so a CNAME query
 * finds no alias); every other name answers NXDOMAIN. It records the names asked.
 */
import dns2 from 'dns2';

export interface DnsFixture {
  port: number;
  /** Names asked, in order. */
  queries: string[];
  close(): Promise<void>;
}

/** Starts the fixture on 127.0.0.1 and a free port. */
export async function startDnsServer(options: { forward?: boolean; a?: Record<string, string> } = {}): Promise<DnsFixture> {
  const { Packet } = dns2;
  const queries: string[] = [];
  const a: Record<string, string> = { ...(options.forward ? { 'www.example.org': '192.0.2.30' } : {}), ...options.a };
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const q = request.questions[0]!;
      queries.push(q.name);
      if (q.name === '30.2.0.192.in-addr.arpa' && (!options.forward || q.type === Packet.TYPE.PTR)) {
        response.answers.push({ name: q.name, type: Packet.TYPE.PTR, class: Packet.CLASS.IN, ttl: 60, domain: 'www.example.org' } as never);
      } else if (a[q.name] !== undefined) {
        if (q.type === Packet.TYPE.A) response.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 60, address: a[q.name] } as never);
      } else {
        response.header.rcode = 3;
      }
      send(response);
    },
  });
  const addr = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  return { port: addr.udp!.port, queries, close: async () => { await server.close(); } };
}
