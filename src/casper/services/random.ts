/**
 * system.random: FreeBSD's cap_random (lib/libcasper/services/cap_random/cap_random.c).
 *
 * Request (cap_random_buf sends one per ≤ 1 MiB chunk; the client splits larger buffers):
 *   { cmd: "generate", size: number }
 * Reply:
 *   { data: binary[size] }                      bytes from the host's CSPRNG (crypto.randomFillSync)
 * Errors: EINVAL for another cmd, a missing "size", size 0 or size > 1 MiB (MAXSIZE).
 *
 * Limits: none. The service has no limit function, so limit_set answers EOPNOTSUPP (the broker's
 * rule for a service without `limit`). Manifest grant: {} only.
 */
import { randomFillSync } from 'node:crypto';
import { NvList } from '../nvlist.js';
import { CasperError, type CasperService } from '../service.js';
import { ERRNO } from '../../wasi/constants.js';
import { checkKeys } from './common.js';

/** The largest request, as FreeBSD's MAXSIZE. */
export const RANDOM_MAXSIZE = 1024 * 1024;

export const service: CasperService = {
  name: 'system.random',

  command(cmd, _limits, request) {
    if (cmd !== 'generate') throw new CasperError(ERRNO.INVAL, `unknown command ${cmd}`);
    const size = request.getNumber('size');
    if (size === undefined) throw new CasperError(ERRNO.INVAL, 'missing "size"');
    if (size === 0n || size > BigInt(RANDOM_MAXSIZE)) {
      throw new CasperError(ERRNO.INVAL, `size ${size} is outside 1..${RANDOM_MAXSIZE}`);
    }
    const data = new Uint8Array(Number(size));
    randomFillSync(data);
    return new NvList().addBinary('data', data);
  },

  fromManifest(grant) {
    checkKeys('system.random', grant, []);
    return null;
  },
};

export default service;
