/**
 * Failpoints for the fault suite's concurrent-attempt cases (issue 17, test/faults/
 * concurrent-attempts.test.ts): a worker stopped inside an activity past its timeout while another
 * worker finishes the step, then continued. Keygen and the key switch take milliseconds, so a
 * test cannot catch the process inside them from outside; the worker stops itself at a named
 * point instead.
 *
 * `ROTOR_FAILPOINT=<activity>:<point>:<action>`, action `stop` (the process sends itself SIGSTOP;
 * the test continues it with SIGCONT) or `sleep=<ms>`. It fires once per process. Unset, which is
 * every production start: `parseFailpoint` returns undefined, the worker's activities get no
 * `failpoint` dependency and their `deps.failpoint?.(…)` calls do nothing.
 *
 * Each line goes to stderr (the test reads it): the point reached, continued, and how the attempt
 * that reached it ended, so a test knows when the stale attempt is done.
 *
 * Boundary kills (test/faults/boundary-kills.test.ts): `<activity>:returned:kill[:<field>=<value>]`.
 * When that activity has done its work and returned, for an input whose top-level `field` is
 * `value` (any input without the filter), the process writes the line and sends itself SIGKILL
 * before the result reaches Temporal: the step's effects are committed and the workflow never
 * hears of it, the worst moment for a worker to die at a boundary. The filter picks one call of an
 * activity several steps share: `recordAudit` with `action=rotation.<step>` is the boundary after
 * `<step>` (its audit entry, written last), `switchKeys` with `activeKeyId=<old key>` the
 * rollback's restore.
 *
 * Safe in production: nothing here runs unless ROTOR_FAILPOINT is set in the worker's environment,
 * which no deployment does (compose, the README and `rotor` never set it); unset, the worker wraps
 * no activity and passes no `failpoint` dependency, so the code paths are the ones without it. A
 * malformed value stops the worker at start (UsageError) rather than being ignored.
 */
import { writeSync } from 'node:fs';
import { errorMessage, UsageError } from '../errors';

export const FAILPOINTS = [
  'generateKey:before-generate',
  'generateKey:after-generate',
  'switchKeys:before-transaction',
  'resignChunk:in-transaction',
  'revokeChunk:in-transaction',
] as const;
export type FailpointName = (typeof FAILPOINTS)[number];

export interface Failpoint {
  /** The activity the point is in. */
  activity: string;
  /** Reached at `name` (no-op for any other point, and after the first time). */
  reach(name: FailpointName): Promise<void>;
  /** Wraps the point's activity to report how the attempt that reached the point ended. */
  watch<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R>;
}

/** SIGKILL, as the OOM killer or a node failure ends a worker: no handler, no flush, no goodbye. */
const killSelf = (): void => {
  process.kill(process.pid, 'SIGKILL');
};

/** ROTOR_FAILPOINT's value (read by src/config.ts, `RotorConfig.failpoint`); unset: no failpoint. */
export function parseFailpoint(
  spec: string | undefined,
  // Synchronous: a line still buffered when the process kills itself would be lost.
  write: (line: string) => void = (line) => writeSync(2, `${line}\n`),
  kill: () => void = killSelf,
): Failpoint | undefined {
  if (!spec) return undefined;
  const boundary = /^([A-Za-z]+):returned:kill(?::([A-Za-z]+)=(.+))?$/.exec(spec);
  if (boundary) return killOnReturn(spec, boundary[1]!, boundary[2], boundary[3], write, kill);
  const m = /^([A-Za-z]+:[a-z-]+):(stop|sleep=(\d+))$/.exec(spec);
  const name = m?.[1] as FailpointName | undefined;
  if (!m || !name || !FAILPOINTS.includes(name)) {
    throw new UsageError(
      `ROTOR_FAILPOINT=${spec}: expected <point>:stop or <point>:sleep=<ms>, point one of ${FAILPOINTS.join(', ')}; or <activity>:returned:kill[:<field>=<value>]`,
      'FAILPOINT_INVALID',
    );
  }
  const sleepMs = m[3] === undefined ? undefined : Number(m[3]);
  let fired = false;
  let reported = false;
  return {
    activity: name.split(':')[0]!,
    async reach(point) {
      if (point !== name || fired) return;
      fired = true;
      write(`failpoint ${name} reached pid=${process.pid}`);
      if (sleepMs === undefined) process.kill(process.pid, 'SIGSTOP');
      else await new Promise((r) => setTimeout(r, sleepMs));
      write(`failpoint ${name} continued`);
    },
    watch(fn) {
      return async (...args) => {
        // The attempt that reaches the point is one that started before it fired (once per process).
        const before = fired;
        const ended = (how: string) => {
          if (before || !fired || reported) return;
          reported = true;
          write(`failpoint ${name} attempt ${how}`);
        };
        try {
          const result = await fn(...args);
          ended(`returned ${JSON.stringify(result)}`);
          return result;
        } catch (err) {
          ended(`threw ${errorMessage(err)}`);
          throw err;
        }
      };
    },
  };
}

/** `<activity>:returned:kill[:<field>=<value>]`: the process SIGKILLs itself once that call returned. */
function killOnReturn(
  spec: string,
  activity: string,
  field: string | undefined,
  value: string | undefined,
  write: (line: string) => void,
  kill: () => void,
): Failpoint {
  let fired = false;
  const matches = (input: unknown) =>
    field === undefined ||
    (typeof input === 'object' &&
      input !== null &&
      String((input as Record<string, unknown>)[field]) === value);
  return {
    activity,
    async reach() {
      // No point inside an activity: this failpoint fires on the activity's return.
    },
    watch(fn) {
      return async (...args) => {
        const result = await fn(...args);
        if (!fired && matches(args[0])) {
          fired = true;
          write(`failpoint ${spec} reached pid=${process.pid}: killing`);
          kill();
          // SIGKILL ends the process before this settles; with a test's `kill`, it never settles
          // either: the result is never reported, as with a real kill.
          return new Promise<never>(() => {});
        }
        return result;
      };
    },
  };
}
