import { ERRNO } from './constants.js';
import type { WasiContext } from './context.js';
import { guard } from './preview1.js';

/** The `capsicum` import module: cap_enter(2) and cap_getmode(2) (docs/abi.md). */
export function createCapsicumImports(ctx: WasiContext) {
  return {
    cap_enter: guard('cap_enter', (): number => {
      ctx.enterCapabilityMode();
      return ERRNO.SUCCESS;
    }),
    cap_getmode: guard('cap_getmode', (modePtr: number): number => {
      ctx.mem.sync().setU32(modePtr, ctx.inCapabilityMode ? 1 : 0);
      return ERRNO.SUCCESS;
    }),
  };
}
