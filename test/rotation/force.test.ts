/**
 * Issue 11, point 3: `resume --force` applies only to the verifier gate that paused the rotation,
 * and only while it is that pause. It never carries over to a later gate, and a forced resume of
 * any other pause is refused with the reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '../../src/store/audit';
import { getKey } from '../../src/store/keys';
import { importManifests } from '../../src/store/manifests';
import { recordCheckIn } from '../../src/store/verifiers';
import { pauseUpdate, resumeUpdate } from '../../src/workflows/rotation-api';
import { allManifests } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 30;

describe('scoped --force (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  it("a force passes the adoption gate's pause only; the acceptance gate pauses again on its own", async () => {
    const signer = await env.initIdentity('force-scope');
    await env.seed('force-scope', signer, COUNT);
    // Never adopts the new anchor and never accepts the new key.
    await recordCheckIn(env.db.pool, {
      verifierId: 'spiffe://trust.example/verifier/stuck',
      anchorVersion: 1,
      identity: 'force-scope',
      trustedKeyIds: [signer.keyId],
      validCounts: {},
    });
    const handle = await env.start('force-scope', 'personnel', { minKeyAgeDays: 0 });
    const atAdoption = await env.waitForStatus(
      handle,
      'the adoption pause',
      (s) => s.pause?.kind === 'adoption',
    );
    expect(atAdoption.pauseReason).toMatch(
      /^adoption bound passed: 1 of 1 live verifier\(s\) do not hold anchor version 2/,
    );
    const forced = await handle.executeUpdate(resumeUpdate, {
      args: [{ force: true, reason: 'stuck verifier is being replaced', by: 'oncall@example' }],
    });
    expect(forced.paused).toBe(false);
    // The next gate holds by itself: the force did not carry over.
    const atAcceptance = await env.waitForStatus(
      handle,
      'the acceptance pause',
      (s) => s.pause?.kind === 'acceptance',
    );
    expect(atAcceptance.phase).toBe('decommission');
    expect((await getKey(env.db.pool, signer.keyId))?.state).not.toBe('destroyed');
    await handle.executeUpdate(resumeUpdate, { args: [{ force: true, reason: 'accepted risk' }] });
    const result = await env.finish(handle);
    expect(result.phase).toBe('completed');
    expect((await getKey(env.db.pool, signer.keyId))?.state).toBe('destroyed');
    const actions = (await listAudit(env.db.pool, { subject: handle.workflowId, limit: 200 })).map(
      (e) => e.action,
    );
    expect(actions.filter((a) => a === 'rotation.adoption-forced')).toHaveLength(1);
    expect(actions.filter((a) => a === 'rotation.acceptance-forced')).toHaveLength(1);
  });

  it('a forced resume of any other pause is refused with the reason; a plain resume goes on', async () => {
    const signer = await env.initIdentity('force-refused');
    await env.seed('force-refused', signer, COUNT);
    const [sample] = await allManifests(env, { keyId: signer.keyId, status: 'active' });
    const badText = sample!.text
      .replace(/"manifest_id": "[^"]+"/, '"manifest_id": "0190b6e0-dddd-7fff-8fff-ffffffffffff"')
      .replace('"crypto_profile": "standard"', '"crypto_profile": "post-quantum"');
    // Tampered after signing: stored unverified, as a row that bypassed rotor's import would be.
    await importManifests(env.db.pool, [{ text: badText, source: 'test' }], { verify: 'none' });
    const handle = await env.start('force-refused', 'personnel', { minKeyAgeDays: 0 });
    await expect(handle.executeUpdate(resumeUpdate, { args: [{ force: true }] })).rejects.toMatchObject({
      cause: { message: 'the rotation is not paused' },
    });
    await env.waitForStatus(handle, 'the unresignable pause', (s) => s.pause?.kind === 'unresignable');
    await expect(handle.executeUpdate(resumeUpdate, { args: [{ force: true }] })).rejects.toMatchObject({
      cause: {
        message: expect.stringMatching(
          /^--force applies only to a gate's own pause \(adoption, acceptance or pickup bound, analysis tripped\); this pause is 'unresignable': .*Resume without --force$/,
        ),
      },
    });
    // Still paused, for the same reason.
    const still = await handle.query('status');
    expect(still).toMatchObject({ paused: true, pause: { kind: 'unresignable' } });
    await handle.executeUpdate(resumeUpdate, { args: [{ reason: 'accepted: re-attest by hand' }] });
    await handle.executeUpdate(pauseUpdate, { args: [{ reason: 'looking at dashboards' }] });
    await expect(handle.executeUpdate(resumeUpdate, { args: [{ force: true }] })).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/this pause is 'operator': looking at dashboards/) },
    });
    await handle.executeUpdate(resumeUpdate, { args: [{}] });
    expect((await env.finish(handle)).phase).toBe('completed');
  });
});
