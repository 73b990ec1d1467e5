/**
 * Two attempts of one activity at once (issue 17): worker A stops (SIGSTOP) inside a step, past
 * the step's timeout, while worker B finishes that step and the rotation; A is then continued
 * (SIGCONT) and its stale attempt runs on. The rotation must come out exactly once in effect
 * (test/helpers/fault-checks.ts), and the stale attempt must change nothing in the store: the
 * key switch's compare-and-set refuses it, keygen finds the label taken or the key registered,
 * and the re-sign and revoke writes it held open were ended by Postgres and roll back.
 *
 * A stops itself at a named point (ROTOR_FAILPOINT, src/activities/failpoint.ts): keygen and the
 * switch take milliseconds, and the re-sign and revoke points are inside a batch's transaction,
 * the worst place for a worker to freeze. Keys are in SoftHSM, shared by both processes.
 */
import { readFileSync } from 'node:fs';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FailpointName } from '../../src/activities/failpoint';
import { newKeyLabel } from '../../src/activities/keygen';
import type { RotationPolicy } from '../../src/workflows/policy';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import { expectCleanRotation } from '../helpers/fault-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { killAllWorkerProcesses, startWorkerProcess, type WorkerProcess } from '../helpers/worker-process';

/**
 * Small batches so the re-sign and revoke steps are many transactions; a short heartbeat timeout
 * (the long steps) and step alert (the short ones' schedule-to-close is max(alert, 10 s)) so the
 * frozen attempt is replaced within seconds.
 */
const POLICY: Partial<RotationPolicy> = {
  minKeyAgeDays: 0,
  batchSize: 5,
  chunkSize: 100,
  heartbeatTimeoutSeconds: 3,
  stepAlertSeconds: 8,
};
const COUNT = 60;
/**
 * A stopped worker still holds the polls it had open, and the server hands them tasks that then
 * wait out their timeouts. Worker A runs one activity at a time (so, frozen inside one, it polls
 * for no other), caches no workflow (no sticky queue to wait out) and takes at most two workflow
 * tasks; those it swallows time out after the workflow task timeout, 2 s here. Worker B has the
 * SDK's defaults.
 */
const FROZEN_WORKER_LIMITS = {
  maxCachedWorkflows: 0,
  maxConcurrentActivityTaskExecutions: 1,
  maxConcurrentWorkflowTaskExecutions: 2,
};
const T0 = Date.now();
const step = (line: string) =>
  process.stderr.write(`[faults/concurrent ${((Date.now() - T0) / 1000).toFixed(1)}s] ${line}\n`);

function processState(pid: number): string {
  // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces, the state follows the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

async function until(what: string, test: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!inject('softhsm').available)(
  'concurrent attempts: a worker frozen inside a step past its timeout, continued after another finished it',
  () => {
    let env: RotationEnv;

    beforeAll(async () => {
      expect(inject('temporalKind')).toBe('postgres');
      env = await createRotationEnv('pkcs11', { worker: false });
    });
    afterEach(async () => {
      await killAllWorkerProcesses();
    });
    afterAll(async () => {
      await killAllWorkerProcesses();
      await env?.close();
    });

    /** Everything a stale attempt could change, as counts and key states. */
    async function storeSnapshot(): Promise<Record<string, unknown>> {
      const { rows } = await env.db.pool.query(
        `SELECT (SELECT count(*) FROM manifests)::int AS manifests,
                (SELECT string_agg(status || '=' || n, ',' ORDER BY status) FROM
                   (SELECT status, count(*) AS n FROM manifests GROUP BY status) s) AS statuses,
                (SELECT count(*) FROM revocations)::int AS revocations,
                (SELECT string_agg(identity || '@' || version || ':' || active_key_id, ',' ORDER BY identity, version)
                   FROM trust_anchors) AS anchors,
                (SELECT string_agg(key_id || '=' || state, ',' ORDER BY key_id) FROM signing_keys) AS keys,
                (SELECT count(*) FROM signing_key_transitions)::int AS transitions,
                (SELECT count(*) FROM audit_log)::int AS audit,
                (SELECT count(*) FROM rotation_declined)::int AS declined`,
      );
      return rows[0];
    }

    /**
     * Runs a rotation with worker A frozen at `point` and worker B finishing it; continues A and
     * returns the stale attempt's end line, with the store before and after it.
     */
    async function frozenAttempt(identity: string, point: FailpointName) {
      const signer = await env.initIdentity(identity);
      await env.seed(identity, signer, COUNT);
      const a = await startWorkerProcess(env, {
        ROTOR_FAILPOINT: `${point}:stop`,
        ROTOR_TEST_WORKER_LIMITS: JSON.stringify(FROZEN_WORKER_LIMITS),
      });
      const handle = (await env.start(identity, 'personnel', POLICY, {
        workflowTaskTimeout: '2 seconds',
      })) as WorkflowHandleWithFirstExecutionRunId;
      await until(
        'worker A frozen at the failpoint',
        () => a.output().includes(`failpoint ${point} reached`),
        120_000,
      );
      await until('worker A stopped', () => processState(a.pid) === 'T', 10_000);
      step(`${point}: worker ${a.pid} frozen; starting worker B`);
      const b: WorkerProcess = await startWorkerProcess(env);
      step(`${point}: worker B ${b.pid} ready`);
      // The result only, no status queries: a query handed to A's open workflow poll waits out its
      // timeout while A is stopped.
      const result = await Promise.race([
        handle.result() as Promise<RotationStatus>,
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error('the rotation did not complete in 150 s while A was stopped')),
            150_000,
          ),
        ),
        new Promise<never>((_, reject) =>
          a.exited.then(() => reject(new Error(`worker A exited: ${a.output().slice(-1500)}`))),
        ),
      ]);
      expect(result.phase, result.outcome).toBe('completed');
      expect(processState(a.pid), 'A stayed frozen while B finished').toBe('T');
      step(`${point}: B completed the rotation; continuing A`);
      const before = await storeSnapshot();
      a.signal('SIGCONT');
      await until(
        'the stale attempt ended',
        () => /failpoint \S+ attempt (returned|threw)/.test(a.output()),
        60_000,
      );
      const ended = /failpoint \S+ attempt ((returned|threw)[^\n]*)/.exec(a.output())![1]!;
      step(`${point}: stale attempt ${ended.slice(0, 300)}`);
      // Anything the stale attempt still had in flight has settled once it reported its end;
      // a last query on the same connection pool orders the snapshot after it.
      const after = await storeSnapshot();
      expect(after, 'the stale attempt changed nothing').toEqual(before);
      expect(a.child.exitCode, a.output().slice(-800)).toBeNull();
      expect(b.child.exitCode, b.output().slice(-800)).toBeNull();
      await expectCleanRotation(env, {
        identity,
        oldKeyId: signer.keyId,
        newKeyId: result.newKeyId!,
        count: COUNT,
      });
      return { handle, result, ended };
    }

    it('key switch: the stale attempt’s compare-and-set finds the anchor moved and publishes nothing', async () => {
      const { ended } = await frozenAttempt('frozen-switch', 'switchKeys:before-transaction');
      expect(ended).toMatch(/^threw .*another publisher moved it; nothing was changed/);
    }, 300_000);

    it('keygen frozen before generating: the stale attempt finds the label taken on the token', async () => {
      const { handle, result, ended } = await frozenAttempt('frozen-keygen', 'generateKey:before-generate');
      expect(ended).toMatch(/^threw .*a key labelled \S+ already exists/);
      // One pair under the rotation's label (lookup refuses a label two pairs share).
      const key = await env.custodian.lookup(newKeyLabel('frozen-keygen', handle.firstExecutionRunId));
      expect(key?.keyId).toBe(result.newKeyId);
    }, 300_000);

    it('keygen frozen after generating: the stale attempt registers the same key again, a no-op', async () => {
      const { result, ended } = await frozenAttempt('frozen-keygen-late', 'generateKey:after-generate');
      expect(ended).toMatch(/^returned /);
      expect(JSON.parse(ended.slice('returned '.length)).keyId).toBe(result.newKeyId);
    }, 300_000);

    it('re-sign frozen inside a batch transaction: B re-signs that batch, the stale commit fails', async () => {
      const { ended } = await frozenAttempt('frozen-resign', 'resignChunk:in-transaction');
      expect(ended).toMatch(/^threw /);
    }, 300_000);

    it('revoke frozen inside a batch transaction: B revokes that batch, the stale commit fails', async () => {
      const { ended } = await frozenAttempt('frozen-revoke', 'revokeChunk:in-transaction');
      expect(ended).toMatch(/^threw /);
    }, 300_000);
  },
);
