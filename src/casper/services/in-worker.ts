/**
 * The Casper services a guest's own worker answers: they need no host authority (no network, no
 * host files, nothing of the host but its CSPRNG), their commands are synchronous, and their state
 * lives in their ServiceContext (the channel's cursor, the sandbox's sysctl overlay). A run has
 * one worker that may use Casper (a child guest cannot import it), so that worker holds the whole
 * sandbox's state for these services. The others (dns, fileargs, net) stay on the host thread.
 * Kept apart from index.ts so that the worker loads only these.
 */
import type { CasperService } from '../service.js';
import grp from './grp.js';
import pwd from './pwd.js';
import random from './random.js';
import sysctl from './sysctl.js';

export const IN_WORKER_SERVICES: Record<string, CasperService> = {
  [pwd.name]: pwd,
  [grp.name]: grp,
  [random.name]: random,
  [sysctl.name]: sysctl,
};
