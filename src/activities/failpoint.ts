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
 */
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

/** ROTOR_FAILPOINT's value (read by src/config.ts, `RotorConfig.failpoint`); unset: no failpoint. */
export function parseFailpoint(
  spec: string | undefined,
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Failpoint | undefined {
  if (!spec) return undefined;
  const m = /^([A-Za-z]+:[a-z-]+):(stop|sleep=(\d+))$/.exec(spec);
  const name = m?.[1] as FailpointName | undefined;
  if (!m || !name || !FAILPOINTS.includes(name)) {
    throw new UsageError(
      `ROTOR_FAILPOINT=${spec}: expected <point>:stop or <point>:sleep=<ms>, point one of ${FAILPOINTS.join(', ')}`,
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
