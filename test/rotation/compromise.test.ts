/**
 * The compromise path: no overlap, the old key distrusted first, its manifests revoked at once
 * (signed with the new key), then re-issued; a compromised key is never restored.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustedKeysFromAnchor } from '../../src/manifest';
import { requireKey } from '../../src/store/keys';
import { countManifests } from '../../src/store/manifests';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { plannedSteps } from '../../src/workflows/policy';
import { type RotationStatus, rollbackUpdate } from '../../src/workflows/rotation-api';
import {
  acceptedRevocations,
  expectActiveManifestsValid,
  expectReplays,
  revocationKeyId,
} from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 400;

describe('a key compromise (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;
  let handle: WorkflowHandle;
  let result: RotationStatus;
  let oldKeyId: string;
  let refusal: unknown;

  beforeAll(async () => {
    env = await createRotationEnv('software');
    const signer = await env.initIdentity('compromised');
    oldKeyId = signer.keyId;
    await env.seed('compromised', signer, COUNT);
    // Slow enough re-sign batches that the rollback attempt lands while the rotation runs.
    handle = await env.start('compromised', 'compromise', { batchSize: 20, chunkSize: 100 });
    await env.waitForStatus(handle, 'the new key', (s) => s.newKeyId !== undefined);
    refusal = await handle
      .executeUpdate(rollbackUpdate, { args: [{ reason: 'undo' }] })
      .catch((err: unknown) => err);
    result = await env.finish(handle);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('refuses to roll back to a compromised key', () => {
    expect(refusal).toMatchObject({
      cause: { message: expect.stringMatching(/compromised key is never restored|manifests are revoked/) },
    });
  });

  it('runs at once, in the compromise order: anchor without the old key, revoke, then re-sign', () => {
    expect(result.phase, result.outcome).toBe('completed');
    expect(result.timeline.map((e) => e.step)).toEqual([
      'preflight',
      'keygen',
      'publish-anchor',
      'revoke',
      're-sign',
      'decommission',
    ]);
    expect(result.timeline.map((e) => e.step)).toEqual(
      plannedSteps('compromise', result.policy).map((p) => p.step),
    );
    const ends = result.timeline.map((e) => Date.parse(e.actualEnd!));
    expect([...ends].sort((a, b) => a - b)).toEqual(ends);
    expect(result.policy.decommissionAtSeconds).toBe(0);
  });

  it('every old manifest is revoked by a record signed by the revocation key; the twins are VALID', async () => {
    const anchor = await currentTrustAnchor(env.db.pool, 'compromised');
    expect(anchor!.document.keys.map((k) => k.key_id)).toEqual([`sha256:${result.newKeyId}`]);
    const crl = await acceptedRevocations(env, trustedKeysFromAnchor(anchor!.document));
    const mine = crl.accepted.filter((r) => r.reason === `Key compromise - old key_id=${oldKeyId}`);
    expect(mine).toHaveLength(COUNT);
    expect(new Set(mine.map((r) => r.signerKeyId))).toEqual(
      new Set([await revocationKeyId(env, 'compromised')]),
    );
    expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'revoked' })).toBe(COUNT);
    await expectActiveManifestsValid(env, 'compromised', result.newKeyId!, COUNT, [oldKeyId]);
  });

  it('destroys the compromised key and replays', async () => {
    expect((await requireKey(env.db.pool, oldKeyId)).state).toBe('destroyed');
    await expectReplays([handle]);
  });
});
