/**
 * Operators' controls on a running rotation (software custody, compressed timeline): pause and
 * resume, rollback at each phase where the runbook allows it, refusal where it does not, and one
 * rotation per identity at a time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  WorkflowExecutionAlreadyStartedError,
  type WorkflowHandle,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/store/audit';
import { activeKey, requireKey } from '../../src/store/keys';
import { countManifests, getManifest, importManifests, successorOf } from '../../src/store/manifests';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { recordCheckIn } from '../../src/store/verifiers';
import { plannedSteps } from '../../src/workflows/policy';
import {
  pauseUpdate,
  type RotationStatus,
  resumeUpdate,
  rollbackUpdate,
} from '../../src/workflows/rotation-api';
import { allManifests, expectActiveManifestsValid, expectReplays } from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 300;

describe('rotation controls (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;
  const handles: WorkflowHandle[] = [];

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  async function identityWithManifests(identity: string) {
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    return signer.keyId;
  }

  it('pause holds the rotation past its deadline; resume carries on and completes', async () => {
    const oldKeyId = await identityWithManifests('pause-resume');
    // Re-sign far enough out that the pause lands while waiting, even on a loaded machine.
    const handle = await env.start('pause-resume', 'personnel', {
      resignAtSeconds: 12,
      adoptBySeconds: 13,
      revokeAtSeconds: 13,
      decommissionAtSeconds: 14,
      minKeyAgeDays: 0,
      keepOldKeyInAnchor: true,
    });
    handles.push(handle);
    await env.waitForPhase(handle, ['waiting']);
    const paused = await handle.executeUpdate(pauseUpdate, {
      args: [{ reason: 'on-call looking at dashboards' }],
    });
    expect(paused.paused).toBe(true);
    await expect(handle.executeUpdate(pauseUpdate, { args: [{}] })).rejects.toThrow(
      WorkflowUpdateFailedError,
    );
    // Past t=5m (12 s here): nothing was re-signed while paused.
    await env.waitForStatus(
      handle,
      'the re-sign time',
      () => Date.now() > Date.parse(paused.timeline[2]!.plannedAt) + 1500,
    );
    const held = await handle.query<RotationStatus>('status');
    expect(held.paused).toBe(true);
    expect(held.pauseReason).toBe('on-call looking at dashboards');
    expect(held.progress.resign.done).toBe(0);
    expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'active' })).toBe(COUNT);
    const resumed = await handle.executeUpdate(resumeUpdate, { args: [{}] });
    expect(resumed.paused).toBe(false);
    const result = await env.finish(handle);
    expect(result.phase).toBe('completed');
    // The code ran the steps in the policy's order, the one place that order is written.
    expect(result.timeline.map((e) => e.step)).toEqual(
      plannedSteps('personnel', result.policy).map((p) => p.step),
    );
    const starts = result.timeline.map((e) => Date.parse(e.actualStart!));
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    // The deadline did not move: the re-sign step's plan stayed at t=2 s and it ran late.
    const resign = result.timeline.find((e) => e.step === 're-sign')!;
    expect(Date.parse(resign.actualStart!) - Date.parse(resign.plannedAt)).toBeGreaterThan(1500);
    const { anchor } = await expectActiveManifestsValid(env, 'pause-resume', result.newKeyId!, COUNT, [
      oldKeyId,
    ]);
    // keepOldKeyInAnchor: the destroyed key stays verify-only until its public key's retention ends.
    const retention = (await requireKey(env.db.pool, oldKeyId)).retentionUntil!;
    expect(anchor.document.active_key_id).toBe(`sha256:${result.newKeyId}`);
    expect(anchor.document.keys).toEqual([
      expect.objectContaining({ key_id: `sha256:${result.newKeyId}`, status: 'active' }),
      expect.objectContaining({
        key_id: `sha256:${oldKeyId}`,
        status: 'verify-only',
        valid_until: expect.any(String),
      }),
    ]);
    expect(Date.parse(anchor.document.keys[1]!.valid_until!)).toBe(retention.getTime());
  });

  it('a failed preflight gate stops the rotation before t=0, with the reason in the status', async () => {
    const oldKeyId = await identityWithManifests('not-an-hsm');
    const handle = await env.start('not-an-hsm', 'personnel', {
      allowSoftwareCustodian: false,
      minKeyAgeDays: 0,
    });
    handles.push(handle);
    const result = await env.finish(handle);
    expect(result.phase).toBe('failed');
    expect(result.outcome).toMatch(
      /^preflight refused: custodian-policy: the software custodian is not an HSM and this policy requires one/,
    );
    expect(result.newKeyId).toBeUndefined();
    expect(result.timeline.find((e) => e.step === 'keygen')?.actualStart).toBeUndefined();
    expect((await activeKey(env.db.pool, 'not-an-hsm'))?.keyId).toBe(oldKeyId);
    expect((await currentTrustAnchor(env.db.pool, 'not-an-hsm'))?.version).toBe(1);
  });

  it('a second rotation of the same identity is refused while one runs', async () => {
    await identityWithManifests('one-at-a-time');
    const first = await env.start('one-at-a-time', 'personnel', {
      resignAtSeconds: 30,
      adoptBySeconds: 31,
      revokeAtSeconds: 31,
      decommissionAtSeconds: 32,
      minKeyAgeDays: 0,
    });
    handles.push(first);
    await env.waitForPhase(first, ['waiting']);
    const second = env.start('one-at-a-time', 'compromise');
    await expect(second).rejects.toThrow(WorkflowExecutionAlreadyStartedError);
    await expect(second).rejects.toMatchObject({ workflowId: 'rotation/one-at-a-time' });
    await first.executeUpdate(rollbackUpdate, { args: [{ reason: 'test over' }] });
    expect((await env.finish(first)).phase).toBe('rolled-back');
  });

  it('rollback before re-sign: the new key is quarantined then destroyed, nothing else changes', async () => {
    const oldKeyId = await identityWithManifests('rollback-early');
    const anchorBefore = await currentTrustAnchor(env.db.pool, 'rollback-early');
    const handle = await env.start('rollback-early', 'personnel', {
      resignAtSeconds: 30,
      adoptBySeconds: 31,
      revokeAtSeconds: 31,
      decommissionAtSeconds: 32,
      minKeyAgeDays: 0,
    });
    handles.push(handle);
    const waiting = await env.waitForPhase(handle, ['waiting']);
    expect(waiting.newKeyId).toBeDefined();
    await expect(handle.executeUpdate(rollbackUpdate, { args: [{}] })).rejects.toMatchObject({
      cause: { message: 'a rollback needs a reason' },
    });
    await handle.executeUpdate(rollbackUpdate, {
      args: [{ reason: 'new key generated with the wrong label' }],
    });
    const result = await env.finish(handle);
    expect(result.phase).toBe('rolled-back');
    expect(result.outcome).toBe('new key generated with the wrong label');
    const newKey = await requireKey(env.db.pool, waiting.newKeyId!);
    expect(newKey.state).toBe('destroyed');
    expect(newKey.quarantinedAt).not.toBeNull();
    expect((await activeKey(env.db.pool, 'rollback-early'))?.keyId).toBe(oldKeyId);
    expect((await currentTrustAnchor(env.db.pool, 'rollback-early'))?.version).toBe(anchorBefore?.version);
    expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'active' })).toBe(COUNT);
  });

  it('rollback during adoption: every manifest gets a successor signed by the old key, the new key leaves the anchor', async () => {
    const oldKeyId = await identityWithManifests('rollback-adoption');
    // A live verifier that never adopts holds the rotation at the adoption step.
    await recordCheckIn(env.db.pool, {
      verifierId: 'spiffe://trust.example/verifier/stale',
      anchorVersion: 1,
      identity: 'rollback-adoption',
      trustedKeyIds: [oldKeyId],
      validCounts: {},
    });
    const handle = await env.start('rollback-adoption', 'personnel', {
      adoptBySeconds: 60,
      revokeAtSeconds: 60,
      decommissionAtSeconds: 61,
      minKeyAgeDays: 0,
    });
    handles.push(handle);
    const adopting = await env.waitForStatus(
      handle,
      'a blocked adoption',
      (s) => s.phase === 'await-adoption' && s.blockers.length > 0,
    );
    expect(adopting.progress.resign.done).toBe(COUNT);
    expect(adopting.blockers.join()).toMatch(
      /1 of 1 live verifier\(s\) do not hold anchor version 2 yet: spiffe:\/\/trust\.example\/verifier\/stale/,
    );
    expect(adopting.adoption.mode).toBe('check-in');
    await handle.executeUpdate(rollbackUpdate, {
      args: [{ reason: 'new key defective', by: 'oncall@example' }],
    });
    const result = await env.finish(handle);
    expect(result.phase).toBe('rolled-back');
    expect(result.progress.rollback).toEqual({ done: COUNT, total: COUNT });
    expect((await activeKey(env.db.pool, 'rollback-adoption'))?.keyId).toBe(oldKeyId);
    expect((await requireKey(env.db.pool, adopting.newKeyId!)).state).toBe('destroyed');
    const { anchor } = await expectActiveManifestsValid(env, 'rollback-adoption', oldKeyId, COUNT, [
      adopting.newKeyId!,
    ]);
    expect(anchor.document.keys.map((k) => k.key_id)).toEqual([`sha256:${oldKeyId}`]);
    expect(anchor.version).toBe(3);
    // Nothing was revoked: rollback happens before revocation or not at all.
    expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'revoked' })).toBe(0);
    expect(await countManifests(env.db.pool, { keyId: adopting.newKeyId!, status: 'revoked' })).toBe(0);
  });

  it('rollback is refused once revocation has started, with the runbook reason', async () => {
    await identityWithManifests('no-way-back');
    const handle = await env.start('no-way-back', 'personnel', {
      decommissionAtSeconds: 30,
      minKeyAgeDays: 0,
    });
    handles.push(handle);
    const afterRevoke = await env.waitForStatus(handle, 'revocation done', (s) =>
      Boolean(s.timeline.find((e) => e.step === 'revoke')?.actualEnd),
    );
    expect(afterRevoke.progress.revoke.done).toBe(COUNT);
    const refused = handle.executeUpdate(rollbackUpdate, { args: [{ reason: 'too late' }] });
    await expect(refused).rejects.toThrow(WorkflowUpdateFailedError);
    await expect(refused).rejects.toMatchObject({
      cause: { message: "the old key's manifests are revoked; roll forward with a new rotation" },
    });
    await handle.terminate('test over');
  });

  it('a manifest that cannot be re-issued is left untouched, listed, and holds the rotation by policy', async () => {
    const oldKeyId = await identityWithManifests('unresignable');
    // A post-quantum profile cannot carry an Ed25519-only signature: re-issue must refuse it.
    const [sample] = await allManifests(env, { keyId: oldKeyId, status: 'active' });
    const badId = '0190b6e0-ffff-7fff-8fff-ffffffffffff';
    const badText = sample!.text
      .replace(/"manifest_id": "[^"]+"/, `"manifest_id": "${badId}"`)
      .replace('"crypto_profile": "standard"', '"crypto_profile": "post-quantum"');
    // Tampered after signing: stored unverified, as a row that bypassed rotor's import would be.
    expect(
      (await importManifests(env.db.pool, [{ text: badText, source: 'test' }], { verify: 'none' })).imported,
    ).toBe(1);
    const handle = await env.start('unresignable', 'personnel', { minKeyAgeDays: 0 });
    handles.push(handle);
    const held = await env.waitForStatus(handle, 'a paused rotation', (s) => s.paused);
    expect(held.phase).toBe('re-sign');
    expect(held.blockers).toEqual([
      '1 manifest(s) could not be re-issued; the status lists 1, rotor rotate unresignable lists all',
    ]);
    expect(held.pause?.kind).toBe('unresignable');
    expect(held.unresignableCount).toBe(1);
    expect(held.unresignable).toHaveLength(1);
    expect(held.unresignable[0]!.manifestId).toBe(badId);
    expect(held.unresignable[0]!.reason).toMatch(/post-quantum/);
    expect(held.progress.resign).toEqual({ done: COUNT, total: COUNT + 1 });
    await handle.executeUpdate(resumeUpdate, {
      args: [{ reason: 'accepted: re-attest that agent by hand' }],
    });
    const result = await env.finish(handle);
    expect(result.phase).toBe('completed');
    const untouched = await getManifest(env.db.pool, badId);
    expect(untouched?.text).toBe(badText);
    expect(untouched?.status).toBe('active');
    expect(await successorOf(env.db.pool, badId)).toBeNull();
  });

  it('no private key material reaches Temporal: no seed appears in any history', async () => {
    const seeds = readdirSync(env.keyDir)
      .filter((f) => f.endsWith('.key'))
      .map((f) => readFileSync(join(env.keyDir, f), 'utf8').trim());
    expect(seeds.length).toBeGreaterThan(3);
    for (const handle of handles) {
      const history = JSON.stringify(await handle.fetchHistory());
      expect(history.length).toBeGreaterThan(1000);
      for (const seed of seeds) {
        expect(history.includes(seed)).toBe(false);
        expect(history.includes(Buffer.from(seed, 'base64url').toString('base64'))).toBe(false);
      }
    }
  });

  it('the audit chain is intact and every history replays against the current code', async () => {
    expect((await verifyAuditChain(env.db.pool)).ok).toBe(true);
    await expectReplays(handles);
  });
});
