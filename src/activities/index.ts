/**
 * All of the rotation's activities, bound to one set of dependencies. The workflow sees only the
 * type; the worker and the tests call `createActivities`.
 *
 * Every activity is wrapped once here: an error that can never succeed on retry (bad input or
 * policy, an unknown key, an illegal key move, manifest content rotor refuses) leaves as a
 * non-retryable failure, so the workflow pauses for a person at once instead of retrying it for
 * ever; anything else (Postgres failing over, an HSM session lost) is retried with backoff.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { PolicyError, RotorError, UsageError } from '../errors';
import { anchorUpkeepActivities } from './anchor-upkeep';
import { auditActivities } from './audit';
import { adoptionActivities } from './await-adoption';
import { crlCompactionActivities } from './crl-compaction';
import { decommissionActivities } from './decommission';
import { deliveryActivities } from './delivery';
import { type ActivityDeps, stepLog } from './deps';
import { keygenActivities } from './keygen';
import { notifyActivities } from './notify';
import { preRevocationActivities } from './pre-revocation';
import { preflightActivities } from './preflight';
import { publishAnchorActivities } from './publish-anchor';
import { resignActivities } from './resign';
import { revokeActivities } from './revoke';

/** RotorError codes that name a state no retry changes. */
const PERMANENT_CODES = new Set(['KEY_UNKNOWN', 'KEY_TRANSITION_ILLEGAL', 'KEY_STATE']);

export function isPermanent(err: unknown): err is Error {
  if (err instanceof UsageError || err instanceof PolicyError) return true;
  return err instanceof RotorError && PERMANENT_CODES.has(err.code);
}

function permanentAsNonRetryable<A extends unknown[], R>(fn: (...args: A) => Promise<R>) {
  return async (...args: A): Promise<R> => {
    try {
      return await fn(...args);
    } catch (err) {
      if (!isPermanent(err)) throw err;
      const type = err instanceof RotorError ? err.code : err.name;
      throw ApplicationFailure.create({ message: err.message, type, nonRetryable: true });
    }
  };
}

export function createActivities(deps: ActivityDeps) {
  const all = {
    ...preflightActivities(deps),
    ...keygenActivities(deps),
    ...resignActivities(deps),
    ...publishAnchorActivities(deps),
    ...adoptionActivities(deps),
    ...revokeActivities(deps),
    ...preRevocationActivities(deps),
    ...decommissionActivities(deps),
    ...deliveryActivities(deps),
    ...auditActivities(deps),
    ...notifyActivities(deps),
    ...anchorUpkeepActivities(deps),
    ...crlCompactionActivities(deps),
  };
  return logged(
    Object.fromEntries(
      Object.entries(all).map(([name, fn]) => [name, permanentAsNonRetryable(fn as never)]),
    ) as typeof all,
  );
}

// biome-ignore lint/suspicious/noExplicitAny: activities take any serialisable arguments
type ActivityFunctions = Record<string, (...args: any[]) => Promise<unknown>>;

/**
 * One `info` line per finished activity, through the activity's logger (so it carries the
 * workflow id, activity id and attempt): its name, duration and the scalar fields of its result.
 * Results already go into the workflow history, which never holds secrets; the logger's
 * redaction covers secret-named fields all the same. Failures are logged by the SDK (WARN).
 */
function logged<T extends ActivityFunctions>(activities: T): T {
  const wrapped: ActivityFunctions = {};
  for (const [name, activity] of Object.entries(activities)) {
    wrapped[name] = async (...args) => {
      const started = performance.now();
      const result = await activity(...args);
      stepLog().info(`${name} done`, {
        activity: name,
        durationMs: Math.round(performance.now() - started),
        result: scalarFields(result),
      });
      return result;
    };
  }
  return wrapped as T;
}

function scalarFields(value: unknown): Record<string, unknown> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string' && v.length <= 128) out[k] = v;
  }
  return out;
}

export type RotationActivities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './deps';
