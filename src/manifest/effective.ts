/**
 * The one way from a manifest's text to what a run is granted: read (syntax, schema), flags added,
 * checked against the policy (limits, sources, rights, argdata, Casper grants each read by its
 * service). Every caller (capsa run, capsa manifest check, POST /v1/runs) uses effectiveGrants, and
 * every problem of every kind comes back in one ManifestError, each at file:line:col.
 */
import type { Limits } from '../host/limits.js';
import { readManifest, type Reader } from './parse.js';
import { checkPolicy, grantProblem, type HeldPaths, type PlacedProblem, type Policy } from './policy.js';
import { requestFromManifest, type ManifestRequest } from './to-request.js';
import { ManifestError, type Manifest, type Problem } from './types.js';

/** What effectiveGrants needs besides the text. */
export interface GrantOptions {
  /** The name problems are reported under: a path, "manifest" (service) or "(flags)". */
  file: string;
  policy: Policy;
  /** Limits the manifest leaves out (lowered to the policy's maxima). */
  defaults: Limits;
  /** Where relative host paths start: the manifest's folder. */
  baseDir: string;
  /** What the command line adds to or changes in the manifest, before the policy sees it. */
  flags?: (m: Manifest) => Manifest;
  /** For a run about to start: host paths the check opens stay open for it (see HeldPaths). */
  held?: HeldPaths;
}

/** The effective grants: the manifest as checked (limits complete) and the run request fields. */
export interface EffectiveGrants {
  manifest: Manifest & { limits: Limits };
  request: ManifestRequest;
}

/** Where `at` (a key path) is in the text, or its nearest enclosing key's place; {0, 0} for none (a flag). */
export function placeOf(places: Reader['places'], at: string): { line: number; col: number } {
  for (let p = at; ;) {
    const place = places[p];
    if (place) return place;
    const shorter = p.replace(/(\.[^.[\]]*|\[\d+\])$/, '');
    if (shorter === p || shorter === '') return { line: 0, col: 0 };
    p = shorter;
  }
}

/** Reads a manifest and applies the flags; throws a ManifestError with every reading problem. */
export function manifestOf(text: string, o: Pick<GrantOptions, 'file' | 'flags'>): Manifest {
  const { manifest, problems } = readManifest(text);
  if (problems.length) throw new ManifestError(o.file, problems);
  return o.flags ? o.flags(manifest) : manifest;
}

/**
 * The grants a manifest's text stands for under a policy; throws one ManifestError listing every
 * problem (syntax, schema, policy excesses, unreadable Casper grants), each at file:line:col.
 */
export function effectiveGrants(text: string, o: GrantOptions): EffectiveGrants {
  const read = readManifest(text);
  const problems: Problem[] = [...read.problems];
  let manifest = read.manifest;
  if (o.flags) manifest = o.flags(manifest);
  const checked = checkPolicy(manifest, o.policy, o.defaults, o.baseDir, o.held);
  // Each Casper grant the policy allows is read by its service, once: one it cannot read is refused.
  for (const [service, grant] of Object.entries(manifest.casper)) {
    const at = `casper.${service}`;
    if (checked.problems.some((p) => p.at === at)) continue;
    const why = grantProblem(service, grant);
    if (why !== undefined) checked.problems.push({ at, message: `${at}: ${why}` });
  }
  const placed = (p: PlacedProblem): Problem => ({ ...placeOf(read.places, p.at), path: '', message: p.message, policy: true });
  problems.push(...checked.problems.map(placed));
  if (problems.length) throw new ManifestError(o.file, problems);
  return { manifest: checked.effective, request: requestFromManifest(checked.effective) };
}
