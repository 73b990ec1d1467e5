/**
 * On the production-shape Temporal (its four services on Postgres persistence): two worker
 * processes share one rotation, keys in SoftHSM; the one holding the re-sign step is SIGKILLed
 * mid-step and the other finishes the step from the heartbeat cursor and the whole rotation.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { countManifests } from '../../src/store/manifests';
import { expectCleanRotation } from '../helpers/fault-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { holderOf, killAllWorkerProcesses, startWorkerProcess } from '../helpers/worker-process';

const COUNT = 400;
const step = (line: string) => process.stderr.write(`[two-workers] ${line}\n`);

describe.skipIf(!inject('softhsm').available)(
  'SoftHSM: two worker processes share a rotation on the Postgres-backed Temporal server; one is killed',
  () => {
    let env: RotationEnv;

    beforeAll(async () => {
      expect(inject('temporalKind')).toBe('postgres');
      env = await createRotationEnv('pkcs11', { worker: false });
    });
    afterAll(async () => {
      await killAllWorkerProcesses();
      await env?.close();
    });

    it('the survivor resumes the killed worker’s re-sign and completes the rotation', async () => {
      const identity = 'shared-workers';
      const signer = await env.initIdentity(identity);
      await env.seed(identity, signer, COUNT);
      step('seeded; starting two worker processes');
      const workers = await Promise.all([startWorkerProcess(env), startWorkerProcess(env)]);
      step(`workers ${workers.map((w) => w.pid).join(', ')} ready`);
      const handle = await env.start(identity, 'personnel', {
        minKeyAgeDays: 0,
        batchSize: 5,
        chunkSize: 200,
        // The survivor takes the step over once the killed holder's heartbeats stop for this long.
        heartbeatTimeoutSeconds: 3,
        stepAlertSeconds: 30,
      });
      const { newKeyId } = await env.waitForStatus(
        handle,
        'the new key',
        (s) => s.newKeyId !== undefined,
        90_000,
      );
      const holder = await holderOf(handle, 'resignChunk', workers, 120_000);
      step(`worker ${holder.pid} holds the re-sign step`);
      const survivor = workers.find((w) => w !== holder)!;
      const deadline = Date.now() + 60_000;
      while ((await countManifests(env.db.pool, { keyId: newKeyId! })) === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await holder.kill();
      step('killed it');
      const atKill = await countManifests(env.db.pool, { keyId: newKeyId! });
      expect(atKill, 'the killed worker had re-signed part of the step').toBeGreaterThan(0);
      expect(atKill, 'and died before the end of it').toBeLessThan(COUNT);

      const result = await env.finish(handle, 180_000);
      expect(result.phase, result.outcome).toBe('completed');
      expect(result.progress.resign.done).toBe(COUNT);
      expect(survivor.child.exitCode, survivor.output().slice(-500)).toBeNull();
      await expectCleanRotation(env, { identity, oldKeyId: signer.keyId, newKeyId: newKeyId!, count: COUNT });
      // Taken over on the heartbeat timeout, within the step's own attempt budget: the step never
      // failed long enough to pause as `retrying` (it would, after stepAlertSeconds, without it).
      const { rows } = await env.db.pool.query<{ action: string }>(
        "SELECT action FROM audit_log WHERE subject = $1 AND action = 'rotation.step-failing'",
        [`rotation/${identity}`],
      );
      expect(rows, 'no step-failing alert').toEqual([]);
    }, 480_000);
  },
);
