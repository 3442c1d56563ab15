/**
 * Webhooks: a run submitted with `callback_url` is POSTed to it when it ends. Each delivery is
 * signed (HMAC-SHA256 of "<timestamp>.<body>" with the tenant's secret), retried with exponential
 * backoff, and recorded in the store (GET /v1/runs/{id}/webhooks).
 *
 * A delivery is a row of the store from the moment the run ends (the scheduler stores it in the
 * end's own transaction: deliveryFor), and is claimed like a run: each attempt is made by the one
 * node that claimed the delivery, under a lease (claimDeliveries), and recorded only while that node
 * still holds it (settleDelivery). Any node with webhooks on looks for due deliveries (a retry whose
 * time came, one whose node died mid-attempt) every pollMs; the node that ended the run tries at once.
 *
 * SSRF: the host must be on the operator's allowlist (--webhook-allow); its name is resolved once
 * per attempt and every address it resolves to must be public (not private, loopback, link-local,
 * multicast or reserved) unless the operator allows private targets (--webhook-allow-private); the
 * connection is pinned to the address checked (no second resolution), and redirects are not followed.
 */
import { createHmac } from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Logger } from 'pino';
import { ApiError } from './errors.js';
import { defaultLogger } from './log.js';
import { decodeRequest, runView } from './runs/record.js';
import { randomBytes } from 'node:crypto';
import { newId } from './store/ids.js';
import type { DeliveryRecord, RunRecord, Store } from './store/types.js';

/** How an address lookup answers (dns.lookup with all: true). */
export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;

export interface WebhookOptions {
  store: Store;
  /** Hosts callbacks may go to: exact names or IP literals, or "*.example.com" for its subdomains. Empty: webhooks are off. */
  allowHosts: string[];
  /** Allow private, loopback and link-local targets (an operator's own network). Default false. */
  allowPrivate?: boolean;
  /** Attempts in all (default 5). */
  attempts?: number;
  /** The first retry's delay, ms; each next one doubles (default 2000). */
  backoffMs?: number;
  /** Per attempt, ms (default 10 s). */
  timeoutMs?: number;
  /** Name resolution (tests); default dns.lookup. */
  lookup?: Lookup;
  now?: () => number;
  logger?: Logger;
  /** This node's id, the holder of the deliveries it claims (default a random one). */
  nodeId?: string;
  /** How long a claimed delivery is this node's: one whose node died is attempted by another this long after (default the timeout + 5 s). */
  leaseMs?: number;
  /** How often this node looks for due deliveries, ms (default 1000). */
  pollMs?: number;
  /** Attempts this node makes at once, at most (default 8). */
  concurrency?: number;
}

export interface Webhooks {
  /** Checks a callback URL at submission: 422 naming callback_url when it can never be delivered. */
  check(url: string): void;
  /**
   * The delivery of a run's end, for the store to keep with the end itself: pending and due now,
   * or failed when the URL is refused now (the allowlist changed since the submission); undefined
   * when the run has no callback_url.
   */
  deliveryFor(run: RunRecord): DeliveryRecord | undefined;
  /** A run ended on this node: attempt the deliveries due now, not at the next poll. */
  onFinish(run: RunRecord): void;
  /** Starts looking for due deliveries (those a stop or a dead node left pending too). */
  start(): Promise<void>;
  /** Stops claiming (pending deliveries stay pending in the store) and waits for attempts in flight. */
  stop(): Promise<void>;
}

export const SIGNATURE_HEADER = 'Capsa-Signature';
export const TIMESTAMP_HEADER = 'Capsa-Timestamp';
export const DELIVERY_HEADER = 'Capsa-Delivery';

/** The signature of a delivery: `v1=` and the hex HMAC-SHA256 of "<timestamp>.<body>" under the tenant's secret. */
export function signPayload(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

// Addresses a callback must not reach unless allowed: RFC 1918/6598/5737/etc., loopback, link-local, multicast, reserved.
const BLOCKED = new net.BlockList();
for (const [a, p] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) {
  BLOCKED.addSubnet(a, p, 'ipv4');
}
for (const [a, p] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2001:db8::', 32], ['100::', 64]] as const) {
  BLOCKED.addSubnet(a, p, 'ipv6');
}

/** Why an address is not a public one, or undefined. IPv4-mapped IPv6 is judged by its IPv4. */
export function privateAddress(address: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const v4 = mapped ? mapped[1]! : address;
  const family = net.isIPv4(v4) ? 'ipv4' : net.isIPv6(v4) ? 'ipv6' : undefined;
  if (!family) return `${address} is not an IP address`;
  if (!BLOCKED.check(v4, family)) return undefined;
  if (/^127\.|^::1$/.test(v4)) return `${address} is a loopback address`;
  if (/^169\.254\.|^fe[89ab]/i.test(v4)) return `${address} is a link-local address`;
  return `${address} is a private or reserved address`;
}

/** A host name without the brackets URL.hostname keeps around an IPv6 literal. */
const unbracket = (host: string): string => host.replace(/^\[|\]$/g, '');

/** Whether the allowlist names `host`: exactly, or as a subdomain of a "*.suffix" entry. */
function allowed(allowHosts: string[], host: string): boolean {
  const h = unbracket(host.toLowerCase());
  return allowHosts.some((e) => {
    const a = unbracket(e.toLowerCase());
    return a.startsWith('*.') ? h.endsWith(a.slice(1)) && h.length > a.length - 1 : h === a;
  });
}

const defaultLookup: Lookup = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

/** Makes the webhook sender. */
export function createWebhooks(o: WebhookOptions): Webhooks {
  const now = o.now ?? Date.now;
  const attemptsMax = Math.max(1, o.attempts ?? 5);
  const backoff = o.backoffMs ?? 2000;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const lookup = o.lookup ?? defaultLookup;
  const nodeId = o.nodeId ?? `webhooks-${randomBytes(6).toString('hex')}`;
  const leaseMs = o.leaseMs ?? timeoutMs + 5000;
  const pollMs = Math.max(10, o.pollMs ?? 1000);
  const concurrency = Math.max(1, o.concurrency ?? 8);
  const log = (o.logger ?? defaultLogger()).child({ component: 'webhooks' });
  /** Wake-ups at the times this node's retries are due (another node's poll may claim them first). */
  const timers = new Set<NodeJS.Timeout>();
  let poller: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();
  let started = false;
  /** A claim is in progress; `again`: claim once more after it. */
  let claiming = false;
  let again = false;

  /** The URL's problem for a tenant (a 422's message), or undefined. */
  const urlProblem = (text: string): string | undefined => {
    let u: URL;
    try { u = new URL(text); } catch { return 'is not a URL'; }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return `must be http or https, not ${u.protocol.replace(/:$/, '')}`;
    if (u.username || u.password) return 'must not carry a user name or password';
    if (!o.allowHosts.length) return 'cannot be used: this service sends no webhooks (the operator allows no hosts: capsa serve --webhook-allow HOST)';
    if (!allowed(o.allowHosts, u.hostname)) return `names ${u.hostname}, which is not among the hosts the operator allows (${o.allowHosts.join(', ')})`;
    const literal = unbracket(u.hostname);
    if (net.isIP(literal) && !o.allowPrivate) {
      const why = privateAddress(literal);
      if (why) return `is refused: ${why} (the operator allows private targets with --webhook-allow-private)`;
    }
    return undefined;
  };

  /** One attempt: resolve, check, connect to the checked address, POST. Resolves with the status, or throws why. */
  const post = async (url: URL, headers: Record<string, string>, body: string): Promise<number> => {
    const host = unbracket(url.hostname);
    const addrs = net.isIP(host) ? [{ address: host, family: net.isIPv6(host) ? 6 : 4 }] : await lookup(host);
    if (!addrs.length) throw new Refused(`${host} has no address`);
    if (!o.allowPrivate) {
      for (const a of addrs) {
        const why = privateAddress(a.address);
        if (why) throw new Refused(`${host} resolves to ${why}`);
      }
    }
    const pinned = addrs[0]!;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<number>((resolve, reject) => {
      const req = mod.request(url, {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        // Pinned: the socket goes to the address checked above, whatever DNS says now (rebinding).
        lookup: (_h, opts, cb) => {
          if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [pinned]);
          else cb(null, pinned.address, pinned.family);
        },
        ...(url.protocol === 'https:' && !net.isIP(host) ? { servername: host } : {}),
        timeout: timeoutMs,
        agent: false,
      }, (res) => {
        // The answer's body is not needed; drain it without keeping it.
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  };

  /** One attempt, number `d.attempts`, of a delivery this node claimed; recorded if the claim still holds. */
  const attempt = async (d: DeliveryRecord): Promise<void> => {
    const next: DeliveryRecord = { ...d };
    if (d.attempts > attemptsMax) {
      // A node claimed the last attempt and died before recording it.
      Object.assign(next, { state: 'failed', nextAt: null, lastStatus: null, lastError: `the node making attempt ${d.attempts - 1} stopped before recording it; no attempts are left` });
    } else {
      const run = await o.store.getRun(d.tenantId, d.runId);
      if (!run) return; // pruned meanwhile, with its deliveries
      const secret = await o.store.webhookSecret(d.tenantId);
      const v = runView(run);
      const body = JSON.stringify({
        type: 'run.finished', delivery: d.id, attempt: d.attempts,
        run: { id: v.id, module: v.module, status: v.status, exitCode: v.exitCode, blame: v.blame ?? null, createdAt: v.createdAt, finishedAt: v.finishedAt, usage: v.usage ?? null },
      });
      const ts = Math.floor(now() / 1000);
      const headers = {
        'content-type': 'application/json', 'user-agent': 'capsa-webhook/1',
        [DELIVERY_HEADER]: d.id, [TIMESTAMP_HEADER]: String(ts), [SIGNATURE_HEADER]: signPayload(secret, ts, body),
      };
      try {
        const status = await post(new URL(d.url), headers, body);
        next.lastStatus = status;
        if (status >= 200 && status < 300) {
          Object.assign(next, { state: 'delivered', lastError: null, nextAt: null });
        } else {
          next.lastError = status >= 300 && status < 400 ? `answered ${status}: redirects are not followed` : `answered ${status}`;
        }
      } catch (e) {
        next.lastStatus = null;
        next.lastError = (e as Error).message;
        if (e instanceof Refused) Object.assign(next, { state: 'failed', nextAt: null });
      }
      if (next.state === 'pending') {
        if (next.attempts >= attemptsMax) Object.assign(next, { state: 'failed', nextAt: null });
        else next.nextAt = now() + backoff * 2 ** (next.attempts - 1);
      }
    }
    next.updatedAt = now();
    const kept = await o.store.settleDelivery(nodeId, next);
    log.info({ tenant: d.tenantId, run: d.runId, delivery: d.id, state: next.state, attempt: next.attempts, status: next.lastStatus, error: next.lastError, recorded: kept }, 'webhook');
    if (kept && next.state === 'pending' && next.nextAt !== null) wakeAt(next.nextAt);
  };

  /** Claims the deliveries due now, up to this node's free attempts, and makes their attempts. */
  const claim = (): void => {
    if (!started) return;
    if (claiming) { again = true; return; }
    const free = concurrency - inFlight.size;
    // Every slot busy: claimed again when one is freed.
    if (free <= 0) { again = true; return; }
    claiming = true;
    again = false;
    o.store.claimDeliveries(nodeId, free, leaseMs, now()).then((ds) => {
      claiming = false;
      for (const d of ds) track(attempt(d));
      if (again || (ds.length === free && ds.length > 0)) claim();
    }, (e: unknown) => {
      claiming = false;
      log.warn({ err: e }, 'cannot claim webhook deliveries; retrying on the next poll');
    });
  };

  /** Claims again at `at` (a retry this node scheduled). */
  const wakeAt = (at: number): void => {
    if (!started) return;
    const t = setTimeout(() => { timers.delete(t); claim(); }, Math.max(0, at - now()));
    t.unref();
    timers.add(t);
  };

  const track = (p: Promise<void>): void => {
    const q = p.catch((e: unknown) => log.warn({ err: e }, 'webhook delivery failed in the service')).finally(() => {
      inFlight.delete(q);
      // A free slot: deliveries may be waiting for it.
      if (again) claim();
    });
    inFlight.add(q);
  };

  return {
    check(url) {
      const why = urlProblem(url);
      if (why) throw new ApiError(422, 'invalid_request', `callback_url ${why}`, [{ path: 'callback_url', message: why }]);
    },
    deliveryFor(run) {
      // Most runs have no callback: skip parsing their request (stdin and files in base64).
      if (!run.request.includes('"callbackUrl"')) return undefined;
      let url: string | undefined;
      try { url = decodeRequest(run.request).callbackUrl; } catch { return undefined; }
      if (!url) return undefined;
      const t = now();
      const d: DeliveryRecord = { id: newId('whd'), runId: run.id, tenantId: run.tenantId, url, state: 'pending', attempts: 0, lastStatus: null, lastError: null, nextAt: t, createdAt: t, updatedAt: t };
      // Checked again: the allowlist may have changed since the run was submitted.
      const why = urlProblem(url);
      return why ? { ...d, state: 'failed', nextAt: null, lastError: `callback_url ${why}` } : d;
    },
    onFinish(run) {
      if (run.request.includes('"callbackUrl"')) claim();
    },
    async start() {
      if (started) return;
      started = true;
      poller = setInterval(claim, pollMs);
      poller.unref();
      claim();
    },
    async stop() {
      started = false;
      if (poller) clearInterval(poller);
      poller = undefined;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.allSettled([...inFlight]);
    },
  };
}

/** A target the rules refuse: recorded as failed, not retried. */
class Refused extends Error {}
