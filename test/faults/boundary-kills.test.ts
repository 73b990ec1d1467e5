/**
 * A worker killed at each phase boundary of each trigger, and at each undo step of a rollback
 * (issue 17): the worker process SIGKILLs itself at the named boundary (ROTOR_FAILPOINT
 * `<activity>:returned:kill[:<field>=<value>]`, src/activities/failpoint.ts), a fresh worker
 * process takes over, and the rotation must come out as if nothing happened: completed (or rolled
 * back), every manifest re-issued and revoked exactly once in effect, no twin lost or doubled, the
 * audit chain intact with no entry twice, the keys in their final states, the history replayable.
 *
 * The boundary after a step is its audit entry (`recordAudit` of `rotation.<step>`, the step's last
 * write): the kill comes after that activity committed and before its result reached Temporal, so
 * the step is done in the store and unknown to the workflow, and the retry must change nothing.
 * The rollback's undo steps write no entry of their own, so each is named by its activity and the
 * key it acts for, and killed the same way: its work committed, its result never reported.
 *
 * One rotation per scenario (each trigger, and a rollback after the anchor switch), killed at every
 * boundary in turn: the worker that takes over is started to die at the next boundary, and the
 * last one finishes. Each kill is checked where it happens (SIGKILL, the failpoint's line, the
 * rotation still running, the boundary's audit entry committed once); the outcome at the end.
 * Scenarios run side by side, each with its own identity, task queue and worker processes.
 *
 * A killed attempt of an activity without heartbeats is retried by the server only when its
 * start-to-close timeout ends (two minutes for the one-transaction steps, one for the audit): the
 * test stands in for that timeout by failing the dead attempt by id once the process is gone
 * (`failAttemptsOf`), so a boundary takes seconds; what the retry then finds is the same.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { requireKey } from '../../src/store/keys';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { recordCheckIn } from '../../src/store/verifiers';
import type { RotationPolicy, StepName, Trigger } from '../../src/workflows/policy';
import { rollbackUpdate, rotationWorkflowId } from '../../src/workflows/rotation-api';
import { expectAuditIntact, expectCleanRotation } from '../helpers/fault-checks';
import { allManifests, expectActiveManifestsValid, expectReplays } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { killAllWorkerProcesses, startWorkerProcess, type WorkerProcess } from '../helpers/worker-process';

const COUNT = 30;
const POLICY: Partial<RotationPolicy> = { minKeyAgeDays: 0 };
/**
 * The killed worker caches no workflow: a sticky queue of a dead worker is only given up after its
 * schedule-to-start timeout. The workflow task timeout (start option) bounds a task it held.
 */
const KILLED_WORKER_LIMITS = { maxCachedWorkflows: 0 };
const WORKFLOW_TASK_TIMEOUT = '2 seconds';

const OVERLAP_STEPS: StepName[] = [
  'preflight',
  'keygen',
  're-sign',
  'publish-anchor',
  'await-adoption',
  'pre-revocation',
  'revoke',
  'decommission',
];
const COMPROMISE_STEPS: StepName[] = [
  'preflight',
  'keygen',
  'publish-anchor',
  'revoke',
  're-sign',
  'decommission',
];

/** A boundary: where the worker dies, given the old key (the rollback's undo steps act for it). */
interface Boundary {
  name: string;
  failpoint(oldKeyId: string): string;
  /** The audit action of the boundary, when it is one: committed at the kill, and written once. */
  auditAction?: string;
}

/** One rotation per scenario, a worker killed at each of its boundaries in turn. */
interface Scenario {
  name: string;
  trigger: Trigger;
  rollback?: boolean;
  boundaries: Boundary[];
}

/** After a step: its audit entry, the step's last write, is committed and unreported. */
const afterAudit = (action: string): Boundary => ({
  name: `after ${action}`,
  failpoint: () => `recordAudit:returned:kill:action=rotation.${action}`,
  auditAction: `rotation.${action}`,
});

const SCENARIOS: Scenario[] = [
  ...(['scheduled', 'personnel', 'hsm-replacement'] as const).map((trigger) => ({
    name: trigger,
    trigger,
    boundaries: [...OVERLAP_STEPS, 'completed'].map(afterAudit),
  })),
  {
    name: 'compromise',
    trigger: 'compromise',
    boundaries: [...COMPROMISE_STEPS, 'completed'].map(afterAudit),
  },
  {
    name: 'rollback after the anchor switch (personnel)',
    trigger: 'personnel',
    rollback: true,
    boundaries: [
      afterAudit('rollback-requested'),
      {
        name: 'the new key’s twins re-signed back to the old key',
        failpoint: (old) => `resignChunk:returned:kill:toKeyId=${old}`,
      },
      {
        name: 'the old key’s manifests handed out again',
        failpoint: (old) => `releaseDelivery:returned:kill:keyId=${old}`,
      },
      {
        name: 'the anchor restored to the old key',
        failpoint: (old) => `switchKeys:returned:kill:activeKeyId=${old}`,
      },
      { name: 'the new key destroyed', failpoint: () => 'decommissionKey:returned:kill' },
      afterAudit('rolled-back'),
    ],
  },
];

const T0 = Date.now();
const say = (line: string) =>
  process.stderr.write(`[faults/boundary ${((Date.now() - T0) / 1000).toFixed(1)}s] ${line}\n`);

/**
 * Worker processes start two at a time: five scenarios starting theirs at once on two cores (with
 * other test files running) can miss the helper's readiness deadline.
 */
const starting = (() => {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    while (running >= 2) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
})();

/** One at a time. */
const settingUp = (() => {
  let last: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const next = last.then(fn, fn);
    last = next.catch(() => undefined);
    return next;
  };
})();

async function within<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(!inject('softhsm').available)(
  'SoftHSM: a worker killed at each phase boundary of each trigger, and during a rollback; a fresh worker finishes',
  () => {
    let env: RotationEnv;
    const handles: WorkflowHandle[] = [];

    beforeAll(async () => {
      expect(inject('temporalKind')).toBe('postgres');
      env = await createRotationEnv('pkcs11', { worker: false });
    });
    afterAll(async () => {
      await killAllWorkerProcesses();
      await env?.close();
    });

    async function auditCount(workflowId: string, action: string): Promise<number> {
      const { rows } = await env.db.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM audit_log WHERE subject = $1 AND action = $2',
        [workflowId, action],
      );
      return rows[0]!.n;
    }

    /**
     * What the server would do at the dead attempts' start-to-close timeout: fail each attempt the
     * killed process held, so the retry policy schedules the next one (on the fresh worker).
     */
    async function failAttemptsOf(handle: WorkflowHandle, dead: WorkerProcess): Promise<string[]> {
      const { raw, runId } = await handle.describe();
      const failed: string[] = [];
      for (const a of raw.pendingActivities ?? []) {
        const held =
          a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED &&
          a.lastWorkerIdentity?.startsWith(`${dead.pid}@`);
        if (!held) continue;
        await env.temporal.client.activity.fail(
          { workflowId: handle.workflowId, runId, activityId: a.activityId! },
          new Error(`worker ${dead.pid} was killed (stands in for the start-to-close timeout)`),
        );
        failed.push(a.activityType?.name ?? '?');
      }
      return failed;
    }

    async function runScenario(sc: Scenario, i: number): Promise<void> {
      const identity = `boundary-${i}-${sc.trigger}`;
      const workflowId = rotationWorkflowId(identity);
      const taskQueue = `${env.temporal.taskQueue}-boundary-${i}`;
      // One identity made at a time: keygen on the test's own token session, five at once, has
      // failed with CKR_GENERAL_ERROR in SoftHSM.
      const signer = await settingUp(async () => {
        const made = await env.initIdentity(identity);
        await env.seed(identity, made, COUNT);
        return made;
      });
      const oldKeyId = signer.keyId;
      /** A worker of this scenario's queue; with a failpoint, one that is to die at that boundary. */
      const worker = (boundary?: Boundary) =>
        starting(() =>
          startWorkerProcess(env, {
            ROTOR_TASK_QUEUE: taskQueue,
            ...(boundary
              ? {
                  ROTOR_FAILPOINT: boundary.failpoint(oldKeyId),
                  ROTOR_TEST_WORKER_LIMITS: JSON.stringify(KILLED_WORKER_LIMITS),
                }
              : {}),
          }),
        );
      let current = await worker(sc.boundaries[0]);
      const policy: Partial<RotationPolicy> = sc.rollback
        ? // Held at the adoption step, after the anchor switch, until the test rolls back.
          { ...POLICY, adoptBySeconds: 60, revokeAtSeconds: 60, decommissionAtSeconds: 61 }
        : POLICY;
      if (sc.rollback) {
        // A live verifier that never adopts holds the rotation at the adoption gate.
        await recordCheckIn(env.db.pool, {
          verifierId: `spiffe://trust.example/verifier/${identity}`,
          anchorVersion: 1,
          identity,
          trustedKeyIds: [oldKeyId],
          validCounts: {},
        });
      }
      const handle = await env.start(identity, sc.trigger, policy, {
        taskQueue,
        workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
      });
      handles.push(handle);
      let rollback: Promise<unknown> | undefined;
      if (sc.rollback) {
        // Read from the store first: a status query replays the whole history on a worker that
        // caches none, so polling one from the start costs more than the rotation.
        await within(
          'the anchor switch',
          (async () => {
            while ((await auditCount(workflowId, 'rotation.publish-anchor')) === 0)
              await new Promise((r) => setTimeout(r, 250));
          })(),
          180_000,
        );
        await env.waitForStatus(
          handle,
          'the adoption gate holding',
          (s) => s.phase === 'await-adoption' && s.blockers.length > 0,
          90_000,
        );
        // Not awaited here: the first kill is in the rollback's own audit entry, and the update
        // ends only once a later worker has written it.
        rollback = handle
          .executeUpdate(rollbackUpdate, { args: [{ reason: 'boundary kill test', by: 'test@rotor' }] })
          .catch((err: unknown) => err);
      }

      try {
        for (const [k, boundary] of sc.boundaries.entries()) {
          const what = `${sc.name}: ${boundary.name}`;
          const dying = current;
          const failpoint = boundary.failpoint(oldKeyId);
          await within(`${what}: the worker killing itself`, dying.exited, 180_000);
          expect(dying.child.signalCode, `${what}: ${dying.output().slice(-1500)}`).toBe('SIGKILL');
          expect(dying.output(), what).toContain(`failpoint ${failpoint} reached pid=${dying.pid}: killing`);
          const described = await handle.describe();
          expect(described.status.name, `${what}: the rotation still running at the kill`).toBe('RUNNING');
          if (boundary.auditAction) {
            expect(
              await auditCount(workflowId, boundary.auditAction),
              `${what}: the entry is committed`,
            ).toBe(1);
          }
          const failed = await failAttemptsOf(handle, dying);
          expect(failed.length, `${what}: the killed worker held the boundary’s activity`).toBeGreaterThan(0);
          // The next worker dies at the next boundary; the last one finishes.
          current = await worker(sc.boundaries[k + 1]);
          say(`${what}: killed ${dying.pid} holding ${failed.join(', ')}; next worker ${current.pid}`);
        }
        const result = await env.finish(handle, 180_000);
        say(`${sc.name}: ${result.phase}`);
        if (rollback)
          expect(await rollback, 'the rollback update ended').toMatchObject({ phase: expect.any(String) });
        expect(result.phase, result.outcome).toBe(sc.rollback ? 'rolled-back' : 'completed');
        const newKeyId = result.newKeyId!;
        for (const b of sc.boundaries) {
          if (b.auditAction)
            expect(await auditCount(workflowId, b.auditAction), `${b.name}: written once`).toBe(1);
        }
        if (sc.rollback) await expectCleanRollback(identity, oldKeyId, newKeyId);
        else {
          await expectCleanRotation(env, { identity, oldKeyId, newKeyId, count: COUNT });
          expect((await requireKey(env.db.pool, oldKeyId)).state).toBe('destroyed');
          expect((await requireKey(env.db.pool, newKeyId)).state).toBe('active');
          const anchor = await currentTrustAnchor(env.db.pool, identity);
          expect(anchor!.document.keys.map((k) => k.key_id)).toEqual([`sha256:${newKeyId}`]);
        }
        expect(current.child.exitCode, current.output().slice(-800)).toBeNull();
        say(`${sc.name}: checked`);
      } finally {
        await current.kill();
      }
    }

    /**
     * Rolled back after the anchor switch: every twin the new key signed has exactly one successor
     * signed by the old key, nothing is revoked, the old key is active and alone in the anchor,
     * the new key destroyed, and the audit chain intact.
     */
    async function expectCleanRollback(identity: string, oldKeyId: string, newKeyId: string) {
      const twins = await allManifests(env, { keyId: newKeyId });
      expect(twins, 'one twin per manifest').toHaveLength(COUNT);
      expect(
        await allManifests(env, { keyId: newKeyId, status: 'superseded' }),
        'every twin superseded by its successor',
      ).toHaveLength(COUNT);
      const back = await allManifests(env, { keyId: oldKeyId, status: 'active' });
      expect(back, 'one successor per twin').toHaveLength(COUNT);
      const predecessors = new Set(
        back.map((m) => (JSON.parse(m.text) as { previous_manifest_id?: string }).previous_manifest_id),
      );
      expect(predecessors).toEqual(new Set(twins.map((t) => t.manifestId)));
      expect(await allManifests(env, { keyId: oldKeyId, status: 'revoked' }), 'nothing revoked').toHaveLength(
        0,
      );
      expect(await allManifests(env, { keyId: newKeyId, status: 'revoked' }), 'nothing revoked').toHaveLength(
        0,
      );
      const { anchor } = await expectActiveManifestsValid(env, identity, oldKeyId, COUNT, [newKeyId]);
      expect(anchor.document.keys.map((k) => k.key_id)).toEqual([`sha256:${oldKeyId}`]);
      expect((await requireKey(env.db.pool, oldKeyId)).state).toBe('active');
      expect((await requireKey(env.db.pool, newKeyId)).state).toBe('destroyed');
      await expectAuditIntact(env);
    }

    it.concurrent.each(SCENARIOS.map((sc, i) => [sc.name, sc, i] as const))(
      '%s: a worker killed at each boundary in turn, the next one finishing',
      async (_name, sc, i) => {
        await runScenario(sc, i);
      },
      900_000,
    );

    it('every killed rotation’s history replays against the current workflow code', async () => {
      expect(handles).toHaveLength(SCENARIOS.length);
      await expectReplays(handles);
    });
  },
);
