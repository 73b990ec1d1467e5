/**
 * The Temporal server (its four services on Postgres persistence, as compose runs it) killed with
 * SIGKILL and started again on the same databases, mid-timer and mid-activity. The worker and the
 * client keep their connections' addresses and reconnect; the rotation must complete on its own
 * with every manifest re-issued and revoked exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countManifests } from '../../src/store/manifests';
import type { TemporalServer } from '../../src/temporal/server';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import { expectCleanRotation } from '../helpers/fault-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { startOwnTemporalServer } from '../helpers/temporal-server';

const COUNT = 300;
const step = (line: string) => process.stderr.write(`[faults/temporal] ${line}\n`);

describe('the Temporal server killed and restarted mid-rotation (its own server, Postgres persistence)', () => {
  let server: TemporalServer;
  let env: RotationEnv;

  beforeAll(async () => {
    server = await startOwnTemporalServer();
    env = await createRotationEnv('software', { temporalAddress: server.address });
  });
  afterAll(async () => {
    await env?.close();
    await server?.stop();
  });

  async function resultWithin(handle: { result(): Promise<unknown> }, timeoutMs: number) {
    return Promise.race([
      handle.result() as Promise<RotationStatus>,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no result in ${timeoutMs} ms`)), timeoutMs),
      ),
    ]);
  }

  it('mid-timer: the durable timer fires after the restart and the rotation completes', async () => {
    const identity = 'temporal-timer';
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    // Re-sign waits 8 s after keygen: the server dies while that timer is pending.
    const handle = await env.start(identity, 'personnel', {
      minKeyAgeDays: 0,
      resignAtSeconds: 8,
      adoptBySeconds: 10,
      revokeAtSeconds: 10,
      decommissionAtSeconds: 11,
    });
    const waiting = await env.waitForPhase(handle, ['waiting'], 90_000);
    expect(waiting.blockers.join(' ')).toMatch(/before re-sign/);
    await server.kill();
    step('server killed during the timer');
    await new Promise((r) => setTimeout(r, 3_000));
    await server.restart();
    step('server restarted');
    const result = await resultWithin(handle, 240_000);
    expect(result.phase, result.outcome).toBe('completed');
    await expectCleanRotation(env, {
      identity,
      oldKeyId: signer.keyId,
      newKeyId: result.newKeyId!,
      count: COUNT,
    });
  }, 400_000);

  it('mid-activity: the re-sign running when the server died finishes after the restart', async () => {
    const identity = 'temporal-activity';
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    const handle = await env.start(identity, 'personnel', {
      minKeyAgeDays: 0,
      batchSize: 5,
      chunkSize: 100,
      // A heartbeat lost while the server is down must not end the attempt before it comes back.
      heartbeatTimeoutSeconds: 10,
      stepAlertSeconds: 30,
    });
    const { newKeyId } = await env.waitForStatus(
      handle,
      'the new key',
      (s) => s.newKeyId !== undefined,
      90_000,
    );
    let partial = 0;
    const deadline = Date.now() + 120_000;
    while (partial === 0 && Date.now() < deadline)
      partial = await countManifests(env.db.pool, { keyId: newKeyId! });
    await server.kill();
    step(`server killed at ${partial} twins`);
    expect(partial).toBeGreaterThan(0);
    expect(partial, 'the server must die mid re-sign').toBeLessThan(COUNT);
    await new Promise((r) => setTimeout(r, 3_000));
    await server.restart();
    step('server restarted');
    const result = await resultWithin(handle, 300_000);
    expect(result.phase, result.outcome).toBe('completed');
    await expectCleanRotation(env, { identity, oldKeyId: signer.keyId, newKeyId: newKeyId!, count: COUNT });
  }, 450_000);
});
