import type { ArgNode, DirGrant, RightsGrant, SocketGrant } from '../host/grants.js';
import type { Limits } from '../host/limits.js';

export type { ArgNode, DirGrant, RightsGrant, SocketGrant };

/**
 * A directory grant as a manifest holds it: the engine's DirGrant (host path, or in-memory without
 * one), its rights always given and named for messages, `readonly` set when they write nothing.
 */
export type DirEntryGrant = DirGrant & { rights: RightsGrant; initOnly: boolean; readonly: boolean };

/** Casper services and the widest limits a guest may set on them (issue 5 gives them meaning). */
export type CasperGrants = Record<string, Record<string, unknown>>;

/** A validated manifest: everything a guest gets. */
export interface Manifest {
  /** A path (CLI) or a "sha256:…" id (service); may be omitted when the caller names the module. */
  module?: string;
  args: string[];
  env: Record<string, string>;
  argdata?: ArgNode;
  dirs: DirEntryGrant[];
  /** Socket descriptors the guest starts with, after the directories (`sockets:`, `--listen`). */
  sockets?: SocketGrant[];
  limits: Partial<Limits>;
  casper: CasperGrants;
  /** Rights of the stdio descriptors, when the manifest narrows them (pledge's stdio). */
  stdio?: RightsGrant;
}

/** Where a problem is in the manifest's text. */
export interface Problem {
  /** 1-based; 0 when the problem has no place (e.g. the file is too large). */
  line: number;
  col: number;
  /** The key path, e.g. "dirs[1].rights". */
  path: string;
  message: string;
  /** Set for what the policy refuses (the manifest itself is well-formed there). */
  policy?: true;
}

/** Every problem of a manifest at once, each with file:line:col. */
export class ManifestError extends Error {
  constructor(readonly file: string, readonly problems: Problem[]) {
    super(problems.map((p) => `${file}:${p.line}:${p.col}: ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'));
    this.name = 'ManifestError';
  }
}
