/**
 * A worker killed (SIGKILL, a real `src/worker.ts` process) in the middle of re-signing, and
 * another started: the step resumes from its heartbeat cursor; no manifest gets two twins and
 * none is missed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countManifests, successorOf } from '../../src/store/manifests';
import { allManifests, expectActiveManifestsValid, expectReplays } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 3000;
const ROOT = join(import.meta.dirname, '../..');

function startWorkerProcess(env: RotationEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      DATABASE_URL: env.db.url,
      TEMPORAL_ADDRESS: env.temporal.address,
      ROTOR_TASK_QUEUE: env.temporal.taskQueue,
      ROTOR_SOFTWARE_KEY_DIR: env.keyDir,
      ROTOR_PUBLIC_URL: env.baseUrl,
      ROTOR_REVOKED_BY: 'spiffe://trust.example/security-team',
    },
  });
}

describe('a worker killed mid re-sign (real worker process, Temporal, Postgres)', () => {
  let env: RotationEnv;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    env = await createRotationEnv('software');
    await env.stopWorker();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await env?.close();
  });

  it('resumes from the cursor with no duplicate twins and none missed', async () => {
    const signer = await env.initIdentity('killed-worker');
    const oldKeyId = signer.keyId;
    await env.seed('killed-worker', signer, COUNT);
    child = startWorkerProcess(env);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // One chunk, many small transactions: the cursor lives only in the activity's heartbeats.
    const handle = await env.start('killed-worker', 'personnel', {
      minKeyAgeDays: 0,
      batchSize: 10,
      chunkSize: COUNT,
      heartbeatTimeoutSeconds: 2,
    });
    const status = await env.waitForStatus(handle, 'the new key', (s) => s.newKeyId !== undefined, 90_000);
    const newKeyId = status.newKeyId!;
    let twinsAtKill = 0;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      twinsAtKill = await countManifests(env.db.pool, { keyId: newKeyId });
      if (twinsAtKill > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    const afterKill = await countManifests(env.db.pool, { keyId: newKeyId });
    expect(twinsAtKill, stderr).toBeGreaterThan(0);
    expect(afterKill, 'the worker must die mid re-sign for this test to mean anything').toBeLessThan(COUNT);

    await env.startWorker();
    const result = await env.finish(handle);
    expect(result.phase, result.outcome).toBe('completed');
    expect(result.progress.resign.done).toBe(COUNT);

    const twins = await allManifests(env, { keyId: newKeyId });
    expect(twins).toHaveLength(COUNT);
    const predecessors = new Set(
      twins.map((t) => (JSON.parse(t.text) as { previous_manifest_id: string }).previous_manifest_id),
    );
    expect(predecessors.size).toBe(COUNT);
    for (const old of (await allManifests(env, { keyId: oldKeyId })).slice(0, 200)) {
      expect((await successorOf(env.db.pool, old.manifestId))?.keyId).toBe(newKeyId);
    }
    await expectActiveManifestsValid(env, 'killed-worker', newKeyId, COUNT, [oldKeyId]);
    await expectReplays([handle]);
  }, 300_000);
});
