/**
 * Issue 11, point 5: the key switch is one Postgres transaction with compare-and-set on the
 * anchor version. A retry of a switch that committed is a success that changes nothing; a late
 * attempt, or the loser of a race, changes nothing and fails for good (non-retryable).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities';
import { initIdentity } from '../../src/activities/identity';
import type { SwitchKeysInput } from '../../src/activities/types';
import type { KeyCustodian } from '../../src/custody/custodian';
import { openSoftwareCustodian } from '../../src/custody/software';
import { getKey, registerKey } from '../../src/store/keys';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

describe('switchKeys: one transaction, compare-and-set on the anchor version (Postgres)', () => {
  let db: TestDatabase;
  let custodian: KeyCustodian;
  let dir: string;
  let activities: ReturnType<typeof createActivities>;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'rotor-switch-'));
    custodian = await openSoftwareCustodian({ dir });
    activities = createActivities({
      pool: db.pool,
      custodian: async () => custodian,
      settings: { revokedBy: 'urn:test' },
    });
  });
  afterAll(async () => {
    await custodian?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function identityWithNewKey(identity: string) {
    const { key } = await initIdentity(db.pool, custodian, identity, `t-${randomBytes(4).toString('hex')}`);
    const made = await custodian.generate(`t-${randomBytes(4).toString('hex')}`);
    await registerKey(db.pool, {
      identity,
      keyId: made.keyId,
      publicKey: made.publicKey,
      custodian: 'software',
      handle: made.handle,
      state: 'pending',
      description: undefined,
    });
    return { oldKeyId: key.keyId, newKeyId: made.keyId };
  }

  const dual = (identity: string, oldKeyId: string, newKeyId: string, expected: number): SwitchKeysInput => ({
    identity,
    expectedAnchorVersion: expected,
    activeKeyId: newKeyId,
    transitions: [
      { keyId: oldKeyId, to: 'retiring' },
      { keyId: newKeyId, to: 'active' },
    ],
    anchorKeys: [
      { keyId: newKeyId, status: 'active' },
      { keyId: oldKeyId, status: 'retiring' },
    ],
  });
  const distrust = (
    identity: string,
    oldKeyId: string,
    newKeyId: string,
    expected: number,
  ): SwitchKeysInput => ({
    identity,
    expectedAnchorVersion: expected,
    activeKeyId: newKeyId,
    transitions: [
      { keyId: oldKeyId, to: 'retired' },
      { keyId: newKeyId, to: 'active' },
    ],
    anchorKeys: [{ keyId: newKeyId, status: 'active' }],
  });

  it('commits key states and the anchor together; a retry of that switch changes nothing', async () => {
    const { oldKeyId, newKeyId } = await identityWithNewKey('cas-retry');
    const first = await activities.switchKeys(dual('cas-retry', oldKeyId, newKeyId, 1));
    expect(first).toMatchObject({ version: 2, changed: true });
    expect((await getKey(db.pool, oldKeyId))?.state).toBe('retiring');
    expect((await getKey(db.pool, newKeyId))?.state).toBe('active');
    const again = await activities.switchKeys(dual('cas-retry', oldKeyId, newKeyId, 1));
    expect(again).toMatchObject({ version: 2, changed: false });
    expect((await currentTrustAnchor(db.pool, 'cas-retry'))?.version).toBe(2);
  });

  it('a late attempt of an older switch changes nothing and fails for good', async () => {
    const { oldKeyId, newKeyId } = await identityWithNewKey('cas-late');
    await activities.switchKeys(dual('cas-late', oldKeyId, newKeyId, 1));
    await activities.switchKeys(distrust('cas-late', oldKeyId, newKeyId, 2));
    // The first switch's attempt arrives late, after version 3: it must not put the old key back.
    const late = await activities
      .switchKeys(dual('cas-late', oldKeyId, newKeyId, 1))
      .catch((e: unknown) => e);
    expect(late).toBeInstanceOf(ApplicationFailure);
    expect(late).toMatchObject({
      type: 'AnchorVersionConflict',
      nonRetryable: true,
      message: expect.stringMatching(/is at version 3, this switch expected 1: .*nothing was changed/),
    });
    const anchor = await currentTrustAnchor(db.pool, 'cas-late');
    expect(anchor?.version).toBe(3);
    expect(anchor?.document.keys.map((k) => k.key_id)).toEqual([`sha256:${newKeyId}`]);
    expect((await getKey(db.pool, oldKeyId))?.state).toBe('retired');
  });

  it('of two switches racing from one version, exactly one lands', async () => {
    const { oldKeyId, newKeyId } = await identityWithNewKey('cas-race');
    const results = await Promise.allSettled([
      activities.switchKeys(dual('cas-race', oldKeyId, newKeyId, 1)),
      activities.switchKeys(distrust('cas-race', oldKeyId, newKeyId, 1)),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toMatchObject({ type: 'AnchorVersionConflict' });
    const anchor = await currentTrustAnchor(db.pool, 'cas-race');
    expect(anchor?.version).toBe(2);
    // The registry agrees with whichever anchor landed.
    const oldState = (await getKey(db.pool, oldKeyId))?.state;
    expect(oldState).toBe(anchor!.document.keys.length === 2 ? 'retiring' : 'retired');
  });

  it('an unknown key is a permanent failure, and nothing is written', async () => {
    const { oldKeyId } = await identityWithNewKey('cas-unknown');
    const bogus = 'f'.repeat(64);
    const err = await activities.switchKeys(dual('cas-unknown', oldKeyId, bogus, 1)).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'KEY_UNKNOWN', nonRetryable: true });
    expect((await currentTrustAnchor(db.pool, 'cas-unknown'))?.version).toBe(1);
    expect((await getKey(db.pool, oldKeyId))?.state).toBe('active');
  });
});
