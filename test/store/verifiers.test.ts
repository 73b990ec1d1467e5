import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countVerifiers,
  getVerifier,
  liveVerifiers,
  liveVerifiersNotAccepted,
  recordCheckIn,
  verifiersBehind,
  verifiersHolding,
  verifiersThatAccepted,
} from '../../src/store/verifiers';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const t0 = new Date('2026-06-05T10:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

describe('verifier registry', () => {
  it('answers the adoption questions', async () => {
    // v1 holds anchor 1 and only ever saw the old key; v2 moved to anchor 2 and accepted the new
    // key; v3 holds anchor 2 but has not yet accepted a new-key manifest; v4 went silent.
    await recordCheckIn(db.pool, {
      verifierId: 'v1',
      anchorVersion: 1,
      trustedKeyIds: [OLD],
      validCounts: { [OLD]: 9 },
      at: at(0),
    });
    await recordCheckIn(db.pool, {
      verifierId: 'v2',
      anchorVersion: 1,
      trustedKeyIds: [OLD],
      validCounts: { [OLD]: 3 },
      at: at(0),
    });
    await recordCheckIn(db.pool, {
      verifierId: 'v2',
      anchorVersion: 2,
      trustedKeyIds: [OLD, NEW],
      validCounts: { [OLD]: 4, [NEW]: 1 },
      at: at(60),
    });
    await recordCheckIn(db.pool, {
      verifierId: 'v3',
      anchorVersion: 2,
      trustedKeyIds: [OLD, NEW],
      validCounts: { [NEW]: 0 },
      at: at(60),
    });
    await recordCheckIn(db.pool, {
      verifierId: 'v4',
      anchorVersion: 1,
      trustedKeyIds: [OLD],
      validCounts: {},
      at: at(-3600),
    });

    const window = { withinSeconds: 300, now: at(90) };
    const ids = (rows: { verifierId: string }[]) => rows.map((r) => r.verifierId);
    expect(await countVerifiers(db.pool)).toBe(4);
    expect(ids(await liveVerifiers(db.pool, window))).toEqual(['v1', 'v2', 'v3']);
    expect(ids(await verifiersHolding(db.pool, { ...window, version: 2 }))).toEqual(['v2', 'v3']);
    expect(ids(await verifiersBehind(db.pool, { ...window, identity: 'default', version: 2 }))).toEqual([
      'v1',
    ]);
    expect(ids(await verifiersBehind(db.pool, { ...window, identity: 'other', version: 2 }))).toEqual([]);
    expect(ids(await verifiersThatAccepted(db.pool, NEW))).toEqual(['v2']);
    expect(ids(await verifiersThatAccepted(db.pool, OLD))).toEqual(['v1', 'v2']);
    expect(ids(await liveVerifiersNotAccepted(db.pool, { ...window, keyId: NEW }))).toEqual(['v1', 'v3']);

    const v2 = await getVerifier(db.pool, 'v2');
    expect(v2).toMatchObject({
      anchorVersion: 2,
      trustedKeyIds: [OLD, NEW],
      validCounts: { [OLD]: 4, [NEW]: 1 },
    });
    expect(v2!.firstSeenAt.toISOString()).toBe(at(0).toISOString());
    expect(v2!.lastSeenAt.toISOString()).toBe(at(60).toISOString());
  });

  it('keeps acceptance when a restarted verifier reports its counter from zero', async () => {
    await recordCheckIn(db.pool, {
      verifierId: 'r1',
      anchorVersion: 2,
      trustedKeyIds: [NEW],
      validCounts: { [NEW]: 5 },
      at: at(0),
    });
    await recordCheckIn(db.pool, {
      verifierId: 'r1',
      anchorVersion: 2,
      trustedKeyIds: [NEW],
      validCounts: { [NEW]: 0 },
      at: at(10),
    });
    expect((await verifiersThatAccepted(db.pool, NEW)).map((v) => v.verifierId)).toContain('r1');
    expect((await getVerifier(db.pool, 'r1'))!.validCounts).toEqual({ [NEW]: 0 });
  });
});
