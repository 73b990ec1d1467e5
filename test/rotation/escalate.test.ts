/**
 * Issue 11, point 2: `escalate` turns a running scheduled rotation into the compromise path from
 * wherever it stands: the old key leaves the anchor at once, its manifests are all revoked, the
 * rest runs as a compromise. Tried from each phase of a scheduled rotation; refused, with the
 * reason, only where it makes no sense.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustedKeysFromAnchor } from '../../src/manifest';
import { listAudit } from '../../src/store/audit';
import { getKey } from '../../src/store/keys';
import { countManifests, importManifests } from '../../src/store/manifests';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { recordCheckIn } from '../../src/store/verifiers';
import type { RotationPolicy } from '../../src/workflows/policy';
import {
  escalateUpdate,
  pauseUpdate,
  type RotationStatus,
  resumeUpdate,
} from '../../src/workflows/rotation-api';
import { failWrites } from '../helpers/faults';
import {
  acceptedRevocations,
  allManifests,
  expectActiveManifestsValid,
  expectReplays,
} from '../helpers/rotation-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 40;
const LATE: Partial<RotationPolicy> = { revokeAtSeconds: 60, decommissionAtSeconds: 61, adoptBySeconds: 60 };

async function anchorKeysByVersion(env: RotationEnv, identity: string) {
  const { rows } = await env.db.pool.query<{ version: number; text: string }>(
    'SELECT version, text FROM trust_anchors WHERE identity = $1 ORDER BY version',
    [identity],
  );
  return rows.map((r) =>
    (JSON.parse(r.text) as { keys: { key_id: string }[] }).keys.map((k) => k.key_id.replace(/^sha256:/, '')),
  );
}

describe('escalate a scheduled rotation to a compromise (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;
  const recorded: WorkflowHandle[] = [];

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  async function scheduled(
    identity: string,
    policy: Partial<RotationPolicy>,
    beforeStart?: () => Promise<void>,
  ) {
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    await beforeStart?.();
    const handle = await env.start(identity, 'scheduled', {
      minKeyAgeDays: 0,
      stepAlertSeconds: 3,
      heartbeatTimeoutSeconds: 2,
      ...policy,
    });
    return { oldKeyId: signer.keyId, handle };
  }

  const escalate = (
    handle: WorkflowHandle,
    reason = 'key found in a public repository',
    trustedBefore?: string,
  ) =>
    handle.executeUpdate(escalateUpdate, {
      args: [{ reason, by: 'security@example', ...(trustedBefore ? { trustedBefore } : {}) }],
    });

  /** What every escalation must leave: a finished compromise, the old key gone from every later anchor. */
  async function expectCompromiseHandled(
    identity: string,
    handle: WorkflowHandle,
    oldKeyId: string,
    fromPhase: string,
    valid = COUNT,
  ): Promise<RotationStatus> {
    const result = await env.finish(handle);
    expect(result.phase, result.outcome).toBe('completed');
    expect(result.path).toBe('compromise');
    expect(result.escalation).toMatchObject({ fromPhase, by: 'security@example' });
    const newKeyId = result.newKeyId!;
    // The compromise steps ran after the escalation, in the policy's compromise order.
    const after = result.timeline.filter((e) => e.note === 'compromise path').map((e) => e.step);
    expect(after).toEqual(['publish-anchor', 'revoke', 're-sign', 'decommission']);
    // Every manifest the old key signed is revoked; the CRL records are signed by the new key.
    const all = await allManifests(env, { keyId: oldKeyId });
    expect(all.length).toBeGreaterThanOrEqual(COUNT);
    expect(await countManifests(env.db.pool, { keyId: oldKeyId, status: 'revoked' })).toBe(all.length);
    const anchor = await currentTrustAnchor(env.db.pool, identity);
    expect(anchor!.document.keys.map((k) => k.key_id)).toEqual([`sha256:${newKeyId}`]);
    const crl = await acceptedRevocations(env, trustedKeysFromAnchor(anchor!.document));
    const revokedIds = new Set(crl.accepted.map((r) => r.manifestId));
    for (const m of all) expect(revokedIds.has(m.manifestId), m.manifestId).toBe(true);
    await expectActiveManifestsValid(env, identity, newKeyId, valid, [oldKeyId]);
    expect((await getKey(env.db.pool, oldKeyId))?.state).toBe('destroyed');
    // Once an anchor without the old key was published, none lists it again.
    const versions = await anchorKeysByVersion(env, identity);
    const firstWithout = versions.findIndex((keys, i) => i > 0 && !keys.includes(oldKeyId));
    expect(firstWithout).toBeGreaterThan(0);
    for (const keys of versions.slice(firstWithout)) expect(keys).not.toContain(oldKeyId);
    return result;
  }

  it('while waiting for re-sign (nothing re-issued yet)', async () => {
    const { oldKeyId, handle } = await scheduled('esc-waiting', { resignAtSeconds: 30, ...LATE });
    recorded.push(handle);
    await env.waitForPhase(handle, ['waiting']);
    await expect(handle.executeUpdate(escalateUpdate, { args: [{}] })).rejects.toMatchObject({
      cause: { message: 'an escalation needs a reason' },
    });
    // The update answers once its bookkeeping is done, by which time the compromise path may have
    // begun; where the escalation started is what the status records (checked below).
    await escalate(handle);
    await expectCompromiseHandled('esc-waiting', handle, oldKeyId, 'waiting');
  });

  it('while re-sign keeps failing', async () => {
    let heal = async () => {};
    try {
      const { oldKeyId, handle } = await scheduled('esc-resign', LATE, async () => {
        heal = await failWrites(env.db.pool, 'manifests', { ops: 'INSERT' });
      });
      await env.waitForStatus(
        handle,
        're-sign failing',
        (s) => s.phase === 're-sign' && s.pause?.kind === 'retrying',
      );
      await escalate(handle);
      await heal();
      await expectCompromiseHandled('esc-resign', handle, oldKeyId, 're-sign');
    } finally {
      await heal();
    }
  });

  it('while held by a manifest that cannot be re-issued', async () => {
    const signer = await env.initIdentity('esc-unresignable');
    await env.seed('esc-unresignable', signer, COUNT);
    const [sample] = await allManifests(env, { keyId: signer.keyId, status: 'active' });
    const badText = sample!.text
      .replace(/"manifest_id": "[^"]+"/, '"manifest_id": "0190b6e0-eeee-7fff-8fff-ffffffffffff"')
      .replace('"crypto_profile": "standard"', '"crypto_profile": "post-quantum"');
    // Tampered after signing: stored unverified, as a row that bypassed rotor's import would be.
    await importManifests(env.db.pool, [{ text: badText, source: 'test' }], { verify: 'none' });
    const handle = await env.start('esc-unresignable', 'scheduled', { minKeyAgeDays: 0, ...LATE });
    await env.waitForStatus(handle, 'the unresignable hold', (s) => s.pause?.kind === 'unresignable');
    await escalate(handle);
    // The manifest that cannot be re-issued is revoked with the rest; it has no successor.
    const result = await expectCompromiseHandled('esc-unresignable', handle, signer.keyId, 're-sign');
    expect(result.unresignableCount).toBe(1);
  });

  it('during adoption, with a verifier behind', async () => {
    const signer = await env.initIdentity('esc-adoption');
    await env.seed('esc-adoption', signer, COUNT);
    await recordCheckIn(env.db.pool, {
      verifierId: 'spiffe://trust.example/verifier/esc-stale',
      anchorVersion: 1,
      identity: 'esc-adoption',
      trustedKeyIds: [signer.keyId],
      validCounts: {},
    });
    const handle = await env.start('esc-adoption', 'scheduled', { minKeyAgeDays: 0, ...LATE });
    recorded.push(handle);
    await env.waitForStatus(
      handle,
      'adoption blocked',
      (s) => s.phase === 'await-adoption' && s.blockers.length > 0,
    );
    await escalate(handle);
    await expectCompromiseHandled('esc-adoption', handle, signer.keyId, 'await-adoption');
  });

  it('during adoption, after re-issuing manifests that arrived after the start: their twins are revoked too', async () => {
    const signer = await env.initIdentity('esc-late-import');
    await env.seed('esc-late-import', signer, COUNT);
    await recordCheckIn(env.db.pool, {
      verifierId: 'spiffe://trust.example/verifier/esc-late',
      anchorVersion: 1,
      identity: 'esc-late-import',
      trustedKeyIds: [signer.keyId],
      validCounts: {},
    });
    const handle = await env.start('esc-late-import', 'scheduled', {
      minKeyAgeDays: 0,
      ...LATE,
      resignAtSeconds: 4,
    });
    await env.waitForPhase(handle, ['waiting']);
    // Signed by the old key after the rotation began: whoever stole it could have made these.
    await env.seed('esc-late-import', signer, 3);
    const late = (await allManifests(env, { keyId: signer.keyId })).length - COUNT;
    expect(late).toBe(3);
    await env.waitForStatus(
      handle,
      'adoption blocked',
      (s) => s.phase === 'await-adoption' && s.blockers.length > 0,
    );
    // The overlap re-issued them like the rest.
    const twinsBefore = await countManifests(env.db.pool, {
      keyId: (await handle.query<RotationStatus>('status')).newKeyId!,
      status: 'active',
    });
    expect(twinsBefore).toBe(COUNT + late);
    await escalate(handle);
    // Only the twins of manifests stored before the start stay VALID.
    const result = await expectCompromiseHandled('esc-late-import', handle, signer.keyId, 'await-adoption');
    expect(result.progress.revoke.done).toBe(COUNT + late);
    const { rows } = await env.db.pool.query<{ code: string; n: string }>(
      'SELECT code, count(*) AS n FROM rotation_declined WHERE workflow_id = $1 AND key_id = $2 GROUP BY code',
      [handle.workflowId, signer.keyId],
    );
    expect(rows).toEqual([{ code: 'stored-after-cutoff', n: String(late) }]);
    expect(await countManifests(env.db.pool, { keyId: result.newKeyId!, status: 'revoked' })).toBe(late);
  });

  it('with a cut-off before the start (the key leaked earlier): later manifests are not re-issued, their twins are revoked', async () => {
    const identity = 'esc-cutoff';
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    // stored_at is Postgres's clock on this machine: the cut-off falls strictly between the two seeds.
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    const LEAKED = 4;
    await env.seed(identity, signer, LEAKED);
    await recordCheckIn(env.db.pool, {
      verifierId: 'spiffe://trust.example/verifier/esc-cutoff',
      anchorVersion: 1,
      identity,
      trustedKeyIds: [signer.keyId],
      validCounts: {},
    });
    const handle = await env.start(identity, 'scheduled', { minKeyAgeDays: 0, ...LATE, resignAtSeconds: 1 });
    recorded.push(handle);
    await env.waitForStatus(
      handle,
      'adoption blocked',
      (s) => s.phase === 'await-adoption' && s.blockers.length > 0,
    );
    // The overlap re-issued all of them: nothing said yet that the key was stolen.
    const newKeyId = (await handle.query<RotationStatus>('status')).newKeyId!;
    expect(await countManifests(env.db.pool, { keyId: newKeyId, status: 'active' })).toBe(COUNT + LEAKED);
    const accepted = await escalate(handle, 'key seen on a paste site two days ago', cutoff);
    expect(accepted.escalation?.trustedBefore).toBe(cutoff);

    const result = await expectCompromiseHandled(identity, handle, signer.keyId, 'await-adoption', COUNT);
    expect(result.escalation).toMatchObject({ trustedBefore: cutoff });
    const { rows } = await env.db.pool.query<{ code: string; n: string }>(
      'SELECT code, count(*) AS n FROM rotation_declined WHERE workflow_id = $1 AND key_id = $2 GROUP BY code',
      [handle.workflowId, signer.keyId],
    );
    expect(rows).toEqual([{ code: 'stored-after-cutoff', n: String(LEAKED) }]);
    expect(await countManifests(env.db.pool, { keyId: newKeyId, status: 'revoked' })).toBe(LEAKED);
    const escalated = (await listAudit(env.db.pool, { subject: handle.workflowId })).filter(
      (e) => e.action === 'rotation.escalated',
    );
    expect(escalated.map((e) => e.details.trustedBefore)).toEqual([cutoff]);
  });

  it('while waiting for revocation', async () => {
    const { oldKeyId, handle } = await scheduled('esc-before-revoke', {
      adoptBySeconds: 3,
      revokeAtSeconds: 60,
      decommissionAtSeconds: 61,
    });
    await env.waitForStatus(
      handle,
      'adoption done',
      (s) =>
        s.phase === 'pre-revocation' &&
        Boolean(s.timeline.find((e) => e.step === 'await-adoption')?.actualEnd),
    );
    await escalate(handle);
    const result = await expectCompromiseHandled('esc-before-revoke', handle, oldKeyId, 'pre-revocation');
    // The gates before revocation were watching when the escalation cut them short.
    expect(result.timeline.find((e) => e.step === 'pre-revocation')).toMatchObject({
      note: 'cut short: escalated to compromise',
    });
  });

  it('while the scheduled revocation keeps failing (rollback is refused there, escalation is not)', async () => {
    const heal = await failWrites(env.db.pool, 'revocations', {
      ops: 'INSERT',
      when: `NEW.line LIKE '%Key rotation%'`,
    });
    try {
      const { oldKeyId, handle } = await scheduled('esc-revoke', { decommissionAtSeconds: 60 });
      await env.waitForStatus(
        handle,
        'revoke failing',
        (s) => s.phase === 'revoke' && s.pause?.kind === 'retrying',
      );
      await escalate(handle);
      await expectCompromiseHandled('esc-revoke', handle, oldKeyId, 'revoke');
    } finally {
      await heal();
    }
  });

  it('at decommission, with a verifier that has not accepted the new key', async () => {
    const signer = await env.initIdentity('esc-decommission');
    await env.seed('esc-decommission', signer, COUNT);
    const handle = await env.start('esc-decommission', 'scheduled', {
      minKeyAgeDays: 0,
      decommissionAtSeconds: 5,
    });
    // Holds the anchor the rotation publishes (version 2) but never reports the new key VALID.
    await env.waitForStatus(handle, 'the new anchor', (s) => (s.anchorVersion ?? 0) >= 2);
    await recordCheckIn(env.db.pool, {
      verifierId: 'spiffe://trust.example/verifier/esc-slow',
      anchorVersion: 2,
      identity: 'esc-decommission',
      trustedKeyIds: [signer.keyId],
      validCounts: {},
    });
    await env.waitForStatus(
      handle,
      'acceptance blocked',
      (s) => s.phase === 'decommission' && s.blockers.some((b) => /not yet accepted/.test(b)),
    );
    await escalate(handle);
    await expectCompromiseHandled('esc-decommission', handle, signer.keyId, 'decommission');
  });

  it('is refused where it makes no sense: during preflight, a compromise rotation, or twice', async () => {
    const signer = await env.initIdentity('esc-refused');
    await env.seed('esc-refused', signer, COUNT);
    const handle = await env.start('esc-refused', 'scheduled', {
      minKeyAgeDays: 0,
      resignAtSeconds: 30,
      ...LATE,
    });
    // Paused before the preflight ran: nothing has happened that escalation could act on.
    await handle.executeUpdate(pauseUpdate, { args: [{ reason: 'hold at preflight' }] });
    await expect(escalate(handle)).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/^the preflight is still running/) },
    });
    await handle.executeUpdate(resumeUpdate, { args: [{}] });
    await env.waitForPhase(handle, ['waiting']);
    // A cut-off comes from any client of the update: the workflow checks it too.
    await expect(escalate(handle, 'leak', 'yesterday')).rejects.toMatchObject({
      cause: {
        message: 'trustedBefore must be an instant written YYYY-MM-DDTHH:MM:SS.sssZ, got "yesterday"',
      },
    });
    await expect(escalate(handle, 'leak', '2026-01-01T00:00:00Z')).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/^trustedBefore must be an instant written/) },
    });
    const future = new Date(Date.now() + 3_600_000).toISOString();
    await expect(escalate(handle, 'leak', future)).rejects.toMatchObject({
      cause: {
        message: `trustedBefore ${future} is in the future: the cut-off is when the key stopped being trusted`,
      },
    });
    expect((await handle.query<RotationStatus>('status')).path).toBe('overlap');
    await escalate(handle);
    await expect(escalate(handle)).rejects.toMatchObject({
      cause: {
        message: expect.stringMatching(/^the rotation was already escalated to the compromise path at /),
      },
    });
    expect((await env.finish(handle)).phase).toBe('completed');

    const signer2 = await env.initIdentity('esc-compromise');
    await env.seed('esc-compromise', signer2, COUNT);
    const compromise = await env.start('esc-compromise', 'compromise');
    await compromise.executeUpdate(pauseUpdate, { args: [{ reason: 'hold' }] });
    await expect(escalate(compromise)).rejects.toMatchObject({
      cause: { message: 'the rotation is already a compromise rotation' },
    });
    await compromise.executeUpdate(resumeUpdate, { args: [{}] });
    expect((await env.finish(compromise)).phase).toBe('completed');
  });

  it('replays (histories recorded for escalate)', async () => {
    await expectReplays(recorded);
  });
});
