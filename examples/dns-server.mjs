// The DNS server of the Casper example (README.md, docs/casper.md) and of the tests, on loopback
// (dns2, a dev dependency): 192.0.2.30 is www.example.org (PTR); with `forward`, www.example.org is
// 192.0.2.30 (A); `a` adds names with one IPv4 address each. A name with an address has no other
// records (NODATA, so a CNAME query finds no alias); every other name is NXDOMAIN. It records the
// names asked.
//
//   node dns-server.mjs [PORT]     listens on 127.0.0.1:PORT (default 5354, examples/casper.yaml's)
import dns2 from 'dns2';
import { pathToFileURL } from 'node:url';

/** Starts the server on 127.0.0.1 and `port` (default: a free one); resolves to its port, the names asked and close(). */
export async function startDnsServer({ forward = false, port = 0, a = {} } = {}) {
  const { Packet } = dns2;
  const queries = [];
  const addresses = { ...(forward ? { 'www.example.org': '192.0.2.30' } : {}), ...a };
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const q = request.questions[0];
      queries.push(q.name);
      if (q.name === '30.2.0.192.in-addr.arpa' && (!forward || q.type === Packet.TYPE.PTR)) {
        response.answers.push({ name: q.name, type: Packet.TYPE.PTR, class: Packet.CLASS.IN, ttl: 60, domain: 'www.example.org' });
      } else if (addresses[q.name] !== undefined) {
        if (q.type === Packet.TYPE.A) response.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 60, address: addresses[q.name] });
      } else {
        response.header.rcode = 3; // NXDOMAIN
      }
      send(response);
    },
  });
  const addr = await server.listen({ udp: { port, address: '127.0.0.1' } });
  return { port: addr.udp.port, queries, close: async () => { await server.close(); } };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const s = await startDnsServer({ forward: true, port: Number(process.argv[2] ?? 5354) });
  console.log(`listening on 127.0.0.1:${s.port}`);
}
