/**
 * Casper services answered inside the guest's own worker, without crossing to the host thread:
 * the services of services/in-worker.ts, which need no host authority. The broker on the host
 * still owns every channel (open, clone, close, limit_set, limit_get, the run's channel and limit
 * budgets); the worker only runs the service's commands, under the limits the broker holds for the
 * channel (mirrored: fetched when the channel opens, replaced when the broker accepts a limit_set),
 * with the same `command` functions, the same ServiceContext state rules and the same error
 * replies as Broker.xfer. Its work is the guest's thread's CPU time, so it counts against the
 * run's CPU limit as the host's charged work on a request does.
 */
import { EDOOFUS_REPLY, failureReply, withError } from './broker.js';
import { NvList } from './nvlist.js';
import type { CasperService, ServiceContext } from './service.js';

/** A channel the worker answers: its service, the limits the broker holds for it, its own state. */
export interface LocalChannel {
  readonly service: CasperService;
  /** The broker's limits of the channel (frozen, shared with clones, as the broker shares them). */
  limits: NvList | null;
  /** State kept between calls (getpwent's cursor); a clone starts with a fresh one. */
  readonly state: Map<string, unknown>;
}

/** A command's answer: the reply with its "error" pair, and that errno (for the audit trail). */
export interface LocalAnswer { reply: NvList; errno: number }

/** The in-worker services of one run: their sandbox state and the operator's configuration. */
export class InWorkerServices {
  private readonly sandboxState = new Map<string, Map<string, unknown>>();

  /**
   * @param services the services this worker may answer, by name
   * @param config the operator's configuration of each (ServiceContext.config)
   * @param onFault told when a service throws something other than a CasperError (it is then
   *   restarted: its sandbox state and the channel's state are dropped, as the broker does)
   */
  constructor(
    private readonly services: Record<string, CasperService>,
    private readonly config: Record<string, unknown>,
    private readonly onFault: (service: string, error: unknown) => void,
  ) {}

  /** The service of that name when this worker answers it, else undefined (it goes to the host). */
  serviceOf(name: string): CasperService | undefined {
    return Object.hasOwn(this.services, name) ? this.services[name] : undefined;
  }

  /**
   * Runs one command of a channel's service, as Broker.xfer runs it once its own commands
   * (limit_*, clone) are set apart: a CasperError is its errno (with "refused"); any other throw,
   * or a command that does not answer synchronously, is a fault: EIO and a restarted service.
   */
  command(ch: LocalChannel, cmd: string, request: NvList): LocalAnswer {
    const name = ch.service.name;
    let sandbox = this.sandboxState.get(name);
    if (!sandbox) this.sandboxState.set(name, sandbox = new Map());
    const ctx: ServiceContext = { channelState: ch.state, sandboxState: sandbox, config: this.config[name] };
    try {
      const reply = ch.service.command(cmd, ch.limits, request, ctx);
      if (reply instanceof Promise) {
        reply.catch(() => {});
        throw new Error(`${name} ${cmd} answered asynchronously, which a service answered in the guest's worker may not`);
      }
      return { reply: withError(reply, 0), errno: 0 };
    } catch (e) {
      const failed = failureReply(e);
      if (failed) return { reply: withError(failed.reply, failed.errno), errno: failed.errno };
      this.onFault(name, e);
      this.sandboxState.delete(name);
      ch.state.clear();
      return { reply: withError(new NvList(), EDOOFUS_REPLY), errno: EDOOFUS_REPLY };
    }
  }
}
