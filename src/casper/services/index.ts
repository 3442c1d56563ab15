/**
 * Every Casper service capsa offers, by the name a guest passes to cap_service_open().
 * Each file documents its request/reply shapes, its limits and its manifest grant.
 */
import type { CasperService } from '../service.js';
import dns from './dns.js';
import fileargs from './fileargs.js';
import grp from './grp.js';
import pwd from './pwd.js';
import random from './random.js';
import sysctl from './sysctl.js';

export const SERVICES: Record<string, CasperService> = {
  [dns.name]: dns,
  [pwd.name]: pwd,
  [grp.name]: grp,
  [random.name]: random,
  [sysctl.name]: sysctl,
  [fileargs.name]: fileargs,
};

export { GrantError } from './common.js';
export default SERVICES;
