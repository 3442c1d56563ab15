/**
 * Sockets in manifests: the example parses, a policy that allows no network refuses it
 * naming the address, and a policy's net rule lets exactly its addresses through.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/host/limits.js';
import { parseManifest } from '../../src/manifest/parse.js';
import { addressAllowed, applyPolicy, OPEN_POLICY, parsePolicy, SERVICE_POLICY } from '../../src/manifest/policy.js';
import { requestFromManifest } from '../../src/manifest/to-request.js';
import { grantRows, manifestToYaml } from '../../src/manifest/describe.js';

const EXAMPLE = `%TAG ! tag:nuxi.nl,2015:cloudabi/
---
module: ./httpd.wasm
argdata:
  listener: !socket { bind: 0.0.0.0:12345 }
sockets:
  - !socket { bind: /run/capsa/app.sock }
`;

describe('!socket in manifests', () => {
  it('the issue\'s example parses into socket nodes and preopened sockets, and reads back the same', () => {
    const m = parseManifest(EXAMPLE, 'm.yaml');
    expect(m.argdata).toEqual({ type: 'map', entries: [[{ type: 'str', value: 'listener' }, { type: 'socket', socket: { bind: '0.0.0.0:12345', type: 'stream' } }]] });
    expect(m.sockets).toEqual([{ bind: '/run/capsa/app.sock', type: 'stream' }]);
    expect(parseManifest(manifestToYaml(m), 'again.yaml')).toEqual(m);
    const effective = applyPolicy(m, OPEN_POLICY, DEFAULT_LIMITS, 'm.yaml');
    expect(requestFromManifest(effective).sockets).toEqual([{ bind: '/run/capsa/app.sock', type: 'stream' }]);
  });

  it('manifest check lists the sockets in fd order: after the directories, then argdata\'s', () => {
    const rows = grantRows(parseManifest(EXAMPLE, 'm.yaml')).slice(3);
    expect(rows.map((r) => [r.fd, r.what, r.path, r.base.join(' '), r.inheriting.join(' ')])).toEqual([
      [3, 'socket (listening)', '/run/capsa/app.sock', 'CAP_FCNTL CAP_FSTAT CAP_EVENT CAP_ACCEPT', 'CAP_READ CAP_FCNTL CAP_WRITE CAP_FSTAT CAP_EVENT CAP_SHUTDOWN'],
      [4, 'socket (argdata)', '0.0.0.0:12345', 'CAP_FCNTL CAP_FSTAT CAP_EVENT CAP_ACCEPT', 'CAP_READ CAP_FCNTL CAP_WRITE CAP_FSTAT CAP_EVENT CAP_SHUTDOWN'],
    ]);
  });

  it('a policy that allows no network refuses every socket, naming the address and what it allows', () => {
    const m = parseManifest(EXAMPLE, 'm.yaml');
    expect(() => applyPolicy(m, SERVICE_POLICY, DEFAULT_LIMITS, 'm.yaml')).toThrow(
      'm.yaml:0:0: sockets[0]: !socket { bind: /run/capsa/app.sock } is not allowed by the policy (net.bind allows: none)\n'
      + 'm.yaml:0:0: argdata: !socket { bind: 0.0.0.0:12345 } is not allowed by the policy (net.bind allows: none)');
  });

  it('a policy\'s net rule allows its addresses and no others', () => {
    const policy = parsePolicy('net:\n  bind: ["127.0.0.1:*", "/run/capsa/"]\n  connect: ["127.0.0.1:5432"]\n', 'p.yaml');
    const ok = parseManifest('sockets: [!socket { bind: "127.0.0.1:8080" }, !socket { bind: /run/capsa/a.sock }, !socket { connect: "127.0.0.1:5432" }]\n');
    expect(applyPolicy(ok, policy, DEFAULT_LIMITS).sockets).toHaveLength(3);
    const wide = parseManifest('sockets: [!socket { bind: "0.0.0.0:8080" }, !socket { bind: /run/capsa/../x }, !socket { connect: "127.0.0.1:5433" }]\n');
    const err = (() => { try { applyPolicy(wide, policy, DEFAULT_LIMITS, 'w.yaml'); } catch (e) { return (e as Error).message; } return ''; })();
    expect(err.split('\n')).toEqual([
      'w.yaml:0:0: sockets[0]: !socket { bind: 0.0.0.0:8080 } is not allowed by the policy (net.bind allows: 127.0.0.1:*, /run/capsa/)',
      'w.yaml:0:0: sockets[1]: !socket { bind: /run/capsa/../x } is not allowed by the policy (net.bind allows: 127.0.0.1:*, /run/capsa/)',
      'w.yaml:0:0: sockets[2]: !socket { connect: 127.0.0.1:5433 } is not allowed by the policy (net.connect allows: 127.0.0.1:5432)',
    ]);
    expect(() => parsePolicy('net: { listen: [] }\n', 'p.yaml')).toThrow('p.yaml:1:8: net.listen: unknown key "listen"');
  });

  it('addressAllowed: hosts match exactly, ports by number or *', () => {
    expect(addressAllowed('[::1]:80', '[::1]:*')).toBe(true);
    expect(addressAllowed('127.0.0.1:80', '127.0.0.10:*')).toBe(false);
    expect(addressAllowed('127.0.0.1:8080', '127.0.0.1:80')).toBe(false);
  });

  describe('casper system.net follows the net rules', () => {
    const check = (manifest: string, policy: string): string[] => {
      try { applyPolicy(parseManifest(manifest, 'm.yaml'), parsePolicy(policy, 'p.yaml'), DEFAULT_LIMITS, 'm.yaml'); return []; }
      catch (e) { return (e as Error).message.split('\n'); }
    };

    it('CONNECTDNS reaches what name2addr resolves: its hosts must be allowed, and without hosts only "*" will do', () => {
      const grant = (extra: string) => `casper: { system.net: { mode: [connectdns, name2addr]${extra} } }\n`;
      expect(check(grant(', name2addr: { hosts: { api.example.org: "443" } }'), 'casper: { system.net: {} }\nnet: { connect: ["api.example.org:443"] }\n')).toEqual([]);
      expect(check(grant(', name2addr: { hosts: { api.example.org: "" } }'), 'casper: { system.net: {} }\nnet: { connect: ["api.example.org:443"] }\n')).toEqual([
        'm.yaml:0:0: casper.system.net: connect to api.example.org:* is not allowed by the policy (net.connect allows: api.example.org:443)',
      ]);
      expect(check(grant(''), 'casper: { system.net: {} }\nnet: { connect: ["api.example.org:443"] }\n')[0]).toContain('connect to any address');
      expect(check(grant(''), 'casper: { system.net: {} }\nnet: { connect: ["*"] }\n')).toEqual([]);
    });

    it('bind follows net.bind; a grant the policy\'s own system.net limits do not cover is refused', () => {
      expect(check('casper: { system.net: { mode: [bind], bind: ["127.0.0.1:8080"] } }\n', 'casper: { system.net: {} }\nnet: { bind: ["127.0.0.1:*"] }\n')).toEqual([]);
      expect(check('casper: { system.net: { mode: [bind], bind: ["0.0.0.0:8080"] } }\n', 'casper: { system.net: {} }\nnet: { bind: ["127.0.0.1:*"] }\n')).toEqual([
        'm.yaml:0:0: casper.system.net: bind to 0.0.0.0:8080 is not allowed by the policy (net.bind allows: 127.0.0.1:*)',
      ]);
      expect(check('casper: { system.net: { mode: [connect], connect: ["127.0.0.1:5432", "127.0.0.1:5433"] } }\n',
        'casper: { system.net: { mode: [connect], connect: ["127.0.0.1:5432"] } }\nnet: { connect: ["*"] }\n')).toEqual([
        'm.yaml:0:0: casper.system.net.connect: "127.0.0.1:5433" not allowed by the policy (allowed: "127.0.0.1:5432")',
      ]);
    });
  });
});
