/**
 * Issue 12, point 4, in a real rotation: a registered verifier that never checks in holds the
 * adoption gate (silence is "behind", not "gone"), where an unregistered one that went quiet would
 * drop out of the live set; retiring it, with a reason, lets the gate's pause end by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getKey } from '../../src/store/keys';
import { recordCheckIn, registerVerifier, retireVerifier } from '../../src/store/verifiers';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

describe('registered verifiers in the gates (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a silent registered verifier holds adoption until it is retired; a quiet unregistered one does not', async () => {
    const signer = await env.initIdentity('reg-gate');
    await env.seed('reg-gate', signer, 20);
    await registerVerifier(env.db.pool, { verifierId: 'reg-gate-silent', identity: 'reg-gate' });
    // Its last check-in (on anchor 1) was an hour ago; it has been silent since.
    await recordCheckIn(env.db.pool, {
      verifierId: 'reg-gate-silent',
      identity: 'reg-gate',
      anchorVersion: 1,
      trustedKeyIds: [signer.keyId],
      validCounts: {},
      at: new Date(Date.now() - 3_600_000),
    });
    // Checked in once, an hour ago, with the shared token: outside any liveness window.
    await recordCheckIn(env.db.pool, {
      verifierId: 'reg-gate-quiet-legacy',
      identity: 'reg-gate',
      anchorVersion: 1,
      trustedKeyIds: [signer.keyId],
      validCounts: {},
      at: new Date(Date.now() - 3_600_000),
    });
    const handle = await env.start('reg-gate', 'personnel', { minKeyAgeDays: 0 });
    const held = await env.waitForStatus(handle, 'the adoption pause', (s) => s.pause?.kind === 'adoption');
    expect(held.adoption).toMatchObject({ mode: 'check-in', live: 1, behind: 1 });
    expect(held.adoption.verifiers.map((v) => [v.verifierId, v.anchorVersion, v.adopted])).toEqual([
      ['reg-gate-silent', 1, false],
    ]);
    expect(held.pauseReason).toMatch(/reg-gate-silent/);
    // The old key is still trusted everywhere: nothing was revoked while the gate held.
    expect((await getKey(env.db.pool, signer.keyId))?.state).toBe('retiring');
    await retireVerifier(env.db.pool, 'reg-gate-silent', 'host decommissioned (CHG-7)');
    // No verifier left in the gate: the cache-lifetime rule, and the pause ends without a resume.
    const result = await env.finish(handle);
    expect(result.phase).toBe('completed');
    expect(result.adoption.mode).toBe('cache-lifetime');
    expect((await getKey(env.db.pool, signer.keyId))?.state).toBe('destroyed');
  });
});
