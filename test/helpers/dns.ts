/**
 * A DNS server on loopback (dns2, UDP) for the Casper system.dns tests: the examples' server
 * (examples/dns-server.mjs, which the README's Casper example runs), so that the tests and the
 * example answer alike. 192.0.2.30 is www.example.org (PTR), and with `forward` www.example.org is
 * 192.0.2.30 (A), and `a` adds names with one IPv4 address each; every other name answers NXDOMAIN. It
 * records the names asked.
 */
export { startDnsServer, type DnsFixture } from '../../examples/dns-server.mjs';
