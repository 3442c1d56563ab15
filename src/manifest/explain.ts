/**
 * Why a capability decision was refused, in the manifest's terms: which right or Casper grant was
 * missing and which line of the manifest that ran would grant it (the dashboard's audit timeline,
 * GET /v1/runs/{id}/audit). Read from the audit event and the manifest's text; descriptors the
 * guest opened itself are traced to their directory through the audit's path_open events when the
 * run recorded them (audit: all), else to the only directory when there is one.
 */
import type { AuditEvent } from '../host/result.js';
import { placeOf } from './effective.js';
import { readManifest } from './parse.js';
import type { Manifest } from './types.js';

/** What a refused decision lacked and where the manifest would grant it. */
export interface Refusal {
  /** Capsicum rights, or a Casper service or limit, by name. */
  missing: string[];
  /** The manifest text (one line, YAML) that would grant it. */
  grant?: string;
  /** Where that goes in the manifest (1-based; line 0 when the key is absent and must be added). */
  line: number;
  col: number;
  /** The key path, e.g. "dirs[0].rights". */
  path: string;
  /** One sentence for people. */
  note: string;
}

const isCasper = (call: string) => call.startsWith('system.') || call.startsWith('core.');
const list = (words: string[]) => `[${words.join(', ')}]`;

/**
 * Explains each refused event of a run against the manifest text it ran with: the answer is
 * aligned with `events` (undefined for allowed ones). Events must be the run's audit in order
 * (attempts one after another); allowed ones only serve to trace descriptors.
 */
export function explainRefusals(text: string, events: readonly AuditEvent[]): (Refusal | undefined)[] {
  const read = readManifest(text);
  const m = read.manifest;
  const at = (path: string) => ({ ...placeOf(read.places, path), path });
  // Where each descriptor came from: the directory index it was opened through.
  const start = () => new Map<number, number>(m.dirs.map((_, i) => [3 + i, i]));
  let origin = start();
  return events.map((e) => {
    // A retried run's audit starts again at seq 0, with the directories only.
    if (e.seq === 0) origin = start();
    if (e.decision === 'allowed') {
      const o = origin.get(e.fd);
      if (e.call === 'path_open' && e.openedFd !== undefined && o !== undefined) origin.set(e.openedFd, o);
      return undefined;
    }
    return explainOne(m, e, origin, at);
  });
}

function explainOne(m: Manifest, e: AuditEvent, origin: Map<number, number>, at: (p: string) => { line: number; col: number; path: string }): Refusal {
  const held = new Set(e.rightsHeld);
  const missing = e.rightsNeeded.filter((r) => !held.has(r));
  if (isCasper(e.call)) {
    const service = e.path && !e.path.startsWith('core.') ? e.path : e.call.slice(0, e.call.lastIndexOf('.'));
    if (service.startsWith('core.')) {
      return { missing: ['a Casper service'], ...at('casper'), grant: 'casper: { system.SERVICE: {} }',
        note: 'No Casper service is granted, so the guest cannot open the Casper channel; grant the service it uses under casper (or pledge)' };
    }
    if (m.casper[service] === undefined) {
      return { missing: [service], ...at('casper'), grant: `casper: { ${service}: {} }`, note: `The Casper service ${service} is not granted; add it under casper` };
    }
    return { missing: [`casper.${service} limits`], ...at(`casper.${service}`),
      note: `${service} is granted, but its grant does not cover what the guest asked for (${e.call.slice(service.length + 1)}): widen casper.${service}` };
  }
  if (e.fd < 0) {
    return { missing: ['a socket grant'], ...at('sockets'), note: `${e.call}${e.path ? ` ${e.path}` : ''} is not granted: sockets are granted under sockets (or an argdata !socket)` };
  }
  if (missing.length === 0) {
    return { missing: [], line: 0, col: 0, path: '', note: e.message ?? `${e.call} failed (errno ${e.errno}); no right was missing, so no manifest line changes it` };
  }
  if (e.fd <= 2) {
    return { missing, ...at('pledge'), note: `fd ${e.fd} (stdio) lacks ${missing.join(', ')}: the manifest's pledge narrows the stdio descriptors; add the promise that holds it (stdio holds them all)` };
  }
  const opened = e.fd >= 3 + m.dirs.length;
  const i = origin.get(e.fd) ?? (opened && m.dirs.length === 1 ? 0 : undefined);
  const d = i === undefined ? undefined : m.dirs[i];
  if (i === undefined || !d) {
    return { missing, ...at('dirs'), note: `fd ${e.fd} lacks ${missing.join(', ')}; it was opened by the guest through a directory the audit does not name (run with audit: all to trace it)` };
  }
  const rights = [...d.rights.names, ...missing.filter((r) => !d.rights.names.includes(r))];
  const how = !opened ? `the directory ${d.guest} (fd ${e.fd})` : `fd ${e.fd}, opened through ${d.guest}${origin.has(e.fd) ? '' : ' (the only directory)'},`;
  return {
    missing, ...at(`dirs[${i}]`), grant: `rights: ${list(rights)}`,
    note: `${how} lacks ${missing.join(', ')}: add ${missing.length === 1 ? 'it' : 'them'} to dirs[${i}].rights`,
  };
}
