import type { RunRequest } from '../host/host.js';
import type { Limits } from '../host/limits.js';
import type { Manifest } from './types.js';

/** The parts of a run request an effective manifest decides. */
export type ManifestRequest = Pick<RunRequest, 'args' | 'env' | 'dirs' | 'limits' | 'argdata' | 'stdioRights' | 'casper' | 'sockets'>;

/** Turns an effective manifest (after applyPolicy) into run request fields. */
export function requestFromManifest(m: Manifest & { limits: Limits }): ManifestRequest {
  return {
    args: m.args,
    env: m.env,
    limits: m.limits,
    dirs: m.dirs,
    ...(m.argdata ? { argdata: m.argdata } : {}),
    ...(m.sockets?.length ? { sockets: m.sockets } : {}),
    ...(m.stdio ? { stdioRights: m.stdio.base } : {}),
    ...(Object.keys(m.casper).length ? { casper: m.casper } : {}),
  };
}
