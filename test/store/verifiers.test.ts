import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkVerifierCredential,
  countVerifiers,
  gateVerifiers,
  getVerifier,
  recordCheckIn,
  registerVerifier,
  retireVerifier,
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
    // Unregistered verifiers count while they check in: v4 has gone quiet.
    const gate = await gateVerifiers(db.pool, { ...window, identity: 'default', keyId: NEW });
    expect(ids(gate)).toEqual(['v1', 'v2', 'v3']);
    expect(gate.map((v) => [v.verifierId, v.anchorVersion, v.accepted])).toEqual([
      ['v1', 1, false],
      ['v2', 2, true],
      ['v3', 2, false],
    ]);
    expect(await gateVerifiers(db.pool, { ...window, identity: 'other' })).toEqual([]);

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
    const gate = await gateVerifiers(db.pool, {
      withinSeconds: 300,
      now: at(20),
      identity: 'default',
      keyId: NEW,
    });
    expect(gate.find((v) => v.verifierId === 'r1')?.accepted).toBe(true);
    expect((await getVerifier(db.pool, 'r1'))!.validCounts).toEqual({ [NEW]: 0 });
  });

  it('a registered verifier stays in the gate while silent, until it is retired; its credential is stored hashed', async () => {
    const reg = await registerVerifier(db.pool, { verifierId: 'quiet-1', identity: 'payments' });
    expect(reg.credential).toMatch(/^rvc_[A-Za-z0-9_-]{43}$/);
    const { rows } = await db.pool.query<{ row: string }>(
      "SELECT row_to_json(v)::text AS row FROM verifiers v WHERE verifier_id = 'quiet-1'",
    );
    expect(rows[0]!.row).not.toContain(reg.credential.slice(4));
    // Never checked in, and long past any liveness window: still "behind" (anchor version 0).
    const later = { withinSeconds: 300, now: new Date(Date.now() + 86_400_000), identity: 'payments' };
    expect(
      (await gateVerifiers(db.pool, later)).map((v) => [v.verifierId, v.anchorVersion, v.checkedIn]),
    ).toEqual([['quiet-1', 0, false]]);
    expect(await checkVerifierCredential(db.pool, 'quiet-1', reg.credential)).toEqual({
      kind: 'registered',
      identity: 'payments',
    });
    expect(await checkVerifierCredential(db.pool, 'quiet-1', 'rvc_not-it')).toMatchObject({
      kind: 'refused',
    });
    expect(await checkVerifierCredential(db.pool, 'never-registered', reg.credential)).toEqual({
      kind: 'legacy',
    });
    // Another identity cannot take it over by registering the same id.
    await expect(registerVerifier(db.pool, { verifierId: 'quiet-1', identity: 'billing' })).rejects.toThrow(
      'verifier quiet-1 is registered for identity payments, not billing: retire it and register a new id',
    );
    await expect(retireVerifier(db.pool, 'quiet-1', ' ')).rejects.toThrow(
      'retiring a verifier needs a reason',
    );
    const retired = await retireVerifier(db.pool, 'quiet-1', 'host decommissioned (CHG-7)');
    expect(retired.retiredReason).toBe('host decommissioned (CHG-7)');
    expect(await gateVerifiers(db.pool, later)).toEqual([]);
    expect(await checkVerifierCredential(db.pool, 'quiet-1', reg.credential)).toEqual({
      kind: 'refused',
      reason: 'verifier quiet-1 is retired',
    });
    await expect(retireVerifier(db.pool, 'quiet-1', 'again')).rejects.toThrow(/already retired/);
    await expect(retireVerifier(db.pool, 'nobody', 'x')).rejects.toThrow('no verifier nobody');
  });
});
