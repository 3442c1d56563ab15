/**
 * Every Casper service capsa offers, by the name a guest passes to cap_service_open().
 * Each file documents its request/reply shapes, its limits and its manifest grant.
 */
import { readGrant, type CasperService } from '../service.js';
import type { NvList } from '../nvlist.js';
import dns from './dns.js';
import fileargs from './fileargs.js';
import { IN_WORKER_SERVICES } from './in-worker.js';
import net from './net.js';

export const SERVICES: Record<string, CasperService> = {
  [dns.name]: dns,
  ...IN_WORKER_SERVICES,
  [fileargs.name]: fileargs,
  [net.name]: net,
};

export { IN_WORKER_SERVICES };

export { GrantError } from './common.js';

/**
 * The limits a manifest's grant of `service` stands for, read by the service's own reader (null:
 * none, the service's defaults). The one place a grant is read: the manifest check, the policy
 * check and the broker all call it, so a new service plugs in by adding its reader above.
 * Throws (the service's GrantError) when the grant means nothing to it.
 */
export function readCasperGrant(service: string, grant: Record<string, unknown>): NvList | null {
  const s = SERVICES[service];
  if (!s) throw new Error(`${service}: unknown service; services are ${Object.keys(SERVICES).join(', ')}`);
  return readGrant(s, grant);
}
export default SERVICES;
