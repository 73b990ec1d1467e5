import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RotorError } from '../../src/errors';
import { keyIdOf, publicKeyFromSeed } from '../../src/manifest/keys';
import { inTransaction } from '../../src/store/db';
import {
  activeKey,
  assertTransition,
  getKey,
  isLegalTransition,
  KEY_STATES,
  type KeyState,
  keyTransitions,
  listKeys,
  registerKey,
  requireKey,
  transitionKey,
} from '../../src/store/keys';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { uniqueLabel } from './helpers';

const LEGAL: Array<[KeyState, KeyState]> = [
  ['pending', 'active'],
  ['pending', 'quarantined'],
  ['active', 'retiring'],
  ['active', 'retired'],
  ['active', 'quarantined'],
  ['retiring', 'retired'],
  ['retiring', 'active'],
  ['retired', 'destroyed'],
  ['quarantined', 'destroyed'],
];

/** A path from registration (pending) to each state, through legal moves. */
const PATH_TO: Record<KeyState, KeyState[]> = {
  pending: [],
  active: ['active'],
  retiring: ['active', 'retiring'],
  retired: ['active', 'retiring', 'retired'],
  destroyed: ['active', 'retiring', 'retired', 'destroyed'],
  quarantined: ['quarantined'],
};

function freshKey() {
  const publicKey = publicKeyFromSeed(randomBytes(32));
  return { publicKey, keyId: keyIdOf(publicKey) };
}

describe('key registry', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function keyIn(state: KeyState, identity = uniqueLabel('id')) {
    const { publicKey, keyId } = freshKey();
    await registerKey(db.pool, {
      identity,
      keyId,
      publicKey,
      custodian: 'software',
      handle: keyId,
      state: 'pending',
    });
    for (const step of PATH_TO[state]) await transitionKey(db.pool, keyId, step);
    return requireKey(db.pool, keyId);
  }

  it('registers a key with its public key, custody and description', async () => {
    const { publicKey, keyId } = freshKey();
    const identity = uniqueLabel('id');
    const record = await registerKey(db.pool, {
      identity,
      keyId,
      publicKey,
      custodian: 'pkcs11',
      handle: `pkcs11:token=t;id=x`,
      state: 'active',
      description: { isHsm: true, summary: 'on a token' },
    });
    expect(record).toMatchObject({
      keyId,
      identity,
      publicKey,
      algorithm: 'Ed25519',
      custodian: 'pkcs11',
      state: 'active',
      description: { isHsm: true, summary: 'on a token' },
      retiringAt: null,
      retentionUntil: null,
    });
    expect(record.activatedAt).toBeInstanceOf(Date);
    expect(await getKey(db.pool, keyId)).toEqual(record);
    expect((await activeKey(db.pool, identity))?.keyId).toBe(keyId);
    expect(await listKeys(db.pool, { identity })).toEqual([record]);
  });

  it('refuses a key_id that is not the hash of the public key', async () => {
    const { publicKey } = freshKey();
    const wrong = freshKey().keyId;
    await expect(
      registerKey(db.pool, {
        identity: 'x',
        keyId: wrong,
        publicKey,
        custodian: 'software',
        handle: wrong,
        state: 'pending',
      }),
    ).rejects.toThrow(`key ${wrong}: the public key's SHA-256 is ${keyIdOf(publicKey)}`);
    expect(await getKey(db.pool, wrong)).toBeUndefined();
  });

  it('treats a repeated registration as a no-op and a conflicting one as an error', async () => {
    const { publicKey, keyId } = freshKey();
    const key = {
      identity: uniqueLabel('id'),
      keyId,
      publicKey,
      custodian: 'software' as const,
      handle: keyId,
    };
    const first = await registerKey(db.pool, { ...key, state: 'pending' });
    expect(await registerKey(db.pool, { ...key, state: 'pending' })).toEqual(first);
    await expect(
      registerKey(db.pool, { ...key, identity: 'someone-else', state: 'pending' }),
    ).rejects.toThrow(
      `key ${keyId} is already registered (identity ${key.identity}, software custody, state pending)`,
    );
  });

  it.each(LEGAL)('allows %s → %s and stamps the time', async (from, to) => {
    const key = await keyIn(from);
    const at = new Date('2026-06-05T10:00:00Z');
    const moved = await transitionKey(db.pool, key.keyId, to, { at });
    expect(moved.state).toBe(to);
    const stamp = {
      active: 'activatedAt',
      retiring: 'retiringAt',
      retired: 'retiredAt',
      destroyed: 'destroyedAt',
      quarantined: 'quarantinedAt',
    } as const;
    expect(moved[stamp[to as keyof typeof stamp]]).toEqual(at);
    const history = await keyTransitions(db.pool, key.keyId);
    expect(history.at(-1)).toMatchObject({ from, to, at });
  });

  it('refuses every move the table does not list, without writing', async () => {
    let checked = 0;
    for (const from of KEY_STATES) {
      for (const to of KEY_STATES) {
        const legal = LEGAL.some(([f, t]) => f === from && t === to);
        expect(isLegalTransition(from, to)).toBe(legal);
        if (legal || from === to) continue;
        expect(() => assertTransition(from, to, 'k')).toThrow(
          `key k: illegal key transition ${from} → ${to}`,
        );
        checked++;
      }
    }
    expect(checked).toBe(KEY_STATES.length * (KEY_STATES.length - 1) - LEGAL.length);

    // And through the database, for the moves that matter most.
    for (const [from, to] of [
      ['pending', 'retired'],
      ['retiring', 'destroyed'],
      ['retired', 'active'],
      ['destroyed', 'active'],
      ['quarantined', 'active'],
    ] as Array<[KeyState, KeyState]>) {
      const key = await keyIn(from);
      const before = await keyTransitions(db.pool, key.keyId);
      const err = await transitionKey(db.pool, key.keyId, to).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RotorError);
      expect((err as Error).message).toMatch(
        new RegExp(`^key ${key.keyId}: illegal key transition ${from} → ${to}`),
      );
      expect(await requireKey(db.pool, key.keyId)).toEqual(key);
      expect(await keyTransitions(db.pool, key.keyId)).toEqual(before);
    }
  });

  it('makes a move to the current state an idempotent no-op', async () => {
    const key = await keyIn('retiring');
    const again = await transitionKey(db.pool, key.keyId, 'retiring', {
      at: new Date('2030-01-01T00:00:00Z'),
    });
    expect(again).toEqual(key);
    expect((await keyTransitions(db.pool, key.keyId)).map((t) => t.to)).toEqual([
      'pending',
      'active',
      'retiring',
    ]);
  });

  it('keeps at most one active key per identity', async () => {
    const identity = uniqueLabel('id');
    const old = await keyIn('active', identity);
    const next = await keyIn('pending', identity);
    await expect(transitionKey(db.pool, next.keyId, 'active')).rejects.toThrow(
      `key ${next.keyId} cannot become active: identity ${identity} already has an active key (${old.keyId})`,
    );
    const { publicKey, keyId } = freshKey();
    await expect(
      registerKey(db.pool, {
        identity,
        keyId,
        publicKey,
        custodian: 'software',
        handle: keyId,
        state: 'active',
      }),
    ).rejects.toThrow(`identity ${identity} already has an active key (${old.keyId})`);
    expect((await requireKey(db.pool, next.keyId)).state).toBe('pending');
  });

  it('walks a rotation and its rollback: the old key comes back once the new one is quarantined', async () => {
    const identity = uniqueLabel('id');
    const old = await keyIn('active', identity);
    const next = await keyIn('pending', identity);
    await inTransaction(db.pool, async (client) => {
      await transitionKey(client, old.keyId, 'retiring');
      await transitionKey(client, next.keyId, 'active');
    });
    expect((await activeKey(db.pool, identity))?.keyId).toBe(next.keyId);
    // Rollback: the old key cannot be active beside the new one.
    await expect(transitionKey(db.pool, old.keyId, 'active')).rejects.toThrow(/already has an active key/);
    await inTransaction(db.pool, async (client) => {
      await transitionKey(client, next.keyId, 'quarantined');
      await transitionKey(client, old.keyId, 'active');
    });
    const restored = await requireKey(db.pool, old.keyId);
    expect(restored).toMatchObject({ state: 'active', retiringAt: null });
    const retention = new Date('2027-06-05T00:00:00Z');
    const gone = await transitionKey(db.pool, next.keyId, 'destroyed', { retentionUntil: retention });
    expect(gone).toMatchObject({ state: 'destroyed', retentionUntil: retention, publicKey: next.publicKey });
    expect((await keyTransitions(db.pool, next.keyId)).map((t) => `${t.from}→${t.to}`)).toEqual([
      'null→pending',
      'pending→active',
      'active→quarantined',
      'quarantined→destroyed',
    ]);
  });

  it("runs inside the caller's transaction: a rollback leaves nothing behind", async () => {
    const { publicKey, keyId } = freshKey();
    await expect(
      inTransaction(db.pool, async (client) => {
        await registerKey(client, {
          identity: 'tx',
          keyId,
          publicKey,
          custodian: 'software',
          handle: keyId,
          state: 'pending',
        });
        expect(await getKey(client, keyId)).toBeDefined();
        throw new Error('caller aborts');
      }),
    ).rejects.toThrow('caller aborts');
    expect(await getKey(db.pool, keyId)).toBeUndefined();
    await expect(requireKey(db.pool, keyId)).rejects.toThrow(`key ${keyId} is not in the key registry`);
  });

  it('settles concurrent moves of one key: one writes, the other sees the new state', async () => {
    const key = await keyIn('active');
    const results = await Promise.allSettled([
      transitionKey(db.pool, key.keyId, 'retiring'),
      transitionKey(db.pool, key.keyId, 'retiring'),
      transitionKey(db.pool, key.keyId, 'retiring'),
    ]);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect((await keyTransitions(db.pool, key.keyId)).filter((t) => t.to === 'retiring')).toHaveLength(1);
  });
});
