// Its own file (its own process): these tests close every session of the process on the token,
// log it out and finalise the module under a live custodian, which no other suite may see.
//
// What an HSM restart does to a long-lived worker: its sessions die and the token forgets the
// login. The custodian must log in again by itself, so signing resumes without a worker restart.
// And a keygen that crashed between C_GenerateKeyPair and setting CKA_ID leaves a pair found by
// label but not by id: the retry must finish or clean up that pair, not fail on every attempt.
import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ActivityDeps } from '../../src/activities/deps';
import { keygenActivities, newKeyLabel } from '../../src/activities/keygen';
import {
  CKK_EC_EDWARDS,
  CKM_EC_EDWARDS_KEY_PAIR_GEN,
  openPkcs11Custodian,
  type Pkcs11Custodian,
} from '../../src/custody/pkcs11';
import { ed25519Verify, keyIdOf } from '../../src/manifest/keys';
import { getKey } from '../../src/store/keys';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { tokenConfig, uniqueLabel } from './helpers';

const ED25519_PARAMS = Buffer.from('130c656477617264733235353139', 'hex');

/**
 * Another handle on the same PKCS#11 library in this process, as other code in a worker (or the
 * HSM's own restart) would hold: it shares the library's state, so what it does to the token's
 * sessions and login happens to the custodian's too.
 */
function otherHandle(): { p11: pkcs11js.PKCS11; slot: pkcs11js.Handle; done(): void } {
  const t = inject('softhsm');
  const p11 = new pkcs11js.PKCS11();
  p11.load(t.modulePath!);
  try {
    p11.C_Initialize();
  } catch (err) {
    if ((err as Error).message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
  }
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === t.label)!;
  return { p11, slot, done: () => p11.close() };
}

async function signsWith(custodian: Pkcs11Custodian, handle: string, publicKey: Uint8Array): Promise<void> {
  const signer = await custodian.signer(handle);
  const message = randomBytes(64);
  const signature = await signer.sign(message);
  expect(ed25519Verify(publicKey, message, signature)).toBe(true);
}

describe.skipIf(!inject('softhsm').available)('SoftHSM: the PKCS#11 custodian recovers a lost login', () => {
  it('C_CloseAllSessions from another handle: the live signer logs in again and keeps signing', async () => {
    const custodian = await openPkcs11Custodian(tokenConfig({ sessions: 3 }));
    try {
      const key = await custodian.generate(uniqueLabel('close-all'));
      const signer = await custodian.signer(key.handle);
      const before = randomBytes(32);
      expect(ed25519Verify(key.publicKey, before, await signer.sign(before))).toBe(true);

      const other = otherHandle();
      other.p11.C_CloseAllSessions(other.slot);
      other.done();

      // Many signatures at once, as a re-sign batch makes them: every dead session is replaced.
      const messages = Array.from({ length: 40 }, () => randomBytes(48));
      const signatures = await Promise.all(messages.map((m) => signer.sign(m)));
      for (const [i, m] of messages.entries()) {
        expect(ed25519Verify(key.publicKey, m, signatures[i]!)).toBe(true);
      }
      const health = await custodian.health();
      expect(health.detail).toContain('logged in');
      expect(health.ok).toBe(true);
    } finally {
      await custodian.close();
    }
  });

  it('the token logged out under a live signer (C_Logout from another handle): signing resumes', async () => {
    const custodian = await openPkcs11Custodian(tokenConfig({ sessions: 2 }));
    try {
      const key = await custodian.generate(uniqueLabel('logout'));
      const signer = await custodian.signer(key.handle);
      await signer.sign(randomBytes(8));

      const other = otherHandle();
      const session = other.p11.C_OpenSession(
        other.slot,
        pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
      );
      other.p11.C_Logout(session);
      other.p11.C_CloseSession(session);
      other.done();

      const message = randomBytes(100);
      expect(ed25519Verify(key.publicKey, message, await signer.sign(message))).toBe(true);
      // A new signer (a new activity attempt) finds the private key again: it was only out of sight.
      await signsWith(custodian, key.handle, key.publicKey);
    } finally {
      await custodian.close();
    }
  });

  it('the module finalised under a live custodian: it initialises again and signs with the right key', async () => {
    const custodian = await openPkcs11Custodian(tokenConfig({ sessions: 2 }));
    try {
      // Two keys, so a signer still holding a stale object handle could sign with the wrong one.
      const first = await custodian.generate(uniqueLabel('fin-a'));
      const second = await custodian.generate(uniqueLabel('fin-b'));
      const signerA = await custodian.signer(first.handle);
      const signerB = await custodian.signer(second.handle);
      await signerA.sign(randomBytes(8));
      await signerB.sign(randomBytes(8));

      const other = otherHandle();
      other.p11.C_Finalize();
      other.done();

      for (const [signer, key] of [
        [signerB, second],
        [signerA, first],
      ] as const) {
        const message = randomBytes(77);
        const signature = await signer.sign(message);
        expect(ed25519Verify(key.publicKey, message, signature)).toBe(true);
      }
      expect((await custodian.health()).ok).toBe(true);
    } finally {
      await custodian.close();
    }
  });

  it('a token that is really gone still fails with one line naming it', async () => {
    const custodian = await openPkcs11Custodian(tokenConfig({ sessions: 1 }));
    const key = await custodian.generate(uniqueLabel('gone'));
    const signer = await custodian.signer(key.handle);
    await custodian.close();
    await expect(signer.sign(randomBytes(8))).rejects.toThrow(
      /^pkcs11 custodian \(token [^)]+\): the custodian is closed$/,
    );
  });
});

describe.skipIf(!inject('softhsm').available)(
  'SoftHSM: keygen after a crash between C_GenerateKeyPair and CKA_ID',
  () => {
    let db: TestDatabase;
    let custodian: Pkcs11Custodian;
    let deps: ActivityDeps;

    beforeAll(async () => {
      db = await createTestDatabase();
      custodian = await openPkcs11Custodian(tokenConfig({ sessions: 2 }));
      deps = {
        pool: db.pool,
        custodian: async () => custodian,
        settings: { revokedBy: 'urn:test' },
      };
    });
    afterAll(async () => {
      await custodian?.close();
      await db?.drop();
    });

    /**
     * The token's state when the worker died right after C_GenerateKeyPair: both halves carry the
     * run's label and the provisional 16-byte CKA_ID that keeps them together (pkcs11.ts generate()).
     * `finishPublic` is a death between the two C_SetAttributeValue calls.
     */
    function halfMadePair(label: string, opts: { finishPublic?: boolean; dropPublic?: boolean } = {}) {
      const other = otherHandle();
      const session = other.p11.C_OpenSession(
        other.slot,
        pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
      );
      try {
        const provisional = randomBytes(16);
        const common = [
          { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_ID, value: provisional },
        ];
        const pair = other.p11.C_GenerateKeyPair(
          session,
          { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
          [
            ...common,
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
            { type: pkcs11js.CKA_EC_PARAMS, value: ED25519_PARAMS },
            { type: pkcs11js.CKA_VERIFY, value: true },
            { type: pkcs11js.CKA_PRIVATE, value: false },
          ],
          [
            ...common,
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
            { type: pkcs11js.CKA_PRIVATE, value: true },
            { type: pkcs11js.CKA_SENSITIVE, value: true },
            { type: pkcs11js.CKA_EXTRACTABLE, value: false },
            { type: pkcs11js.CKA_SIGN, value: true },
          ],
        );
        const point = other.p11.C_GetAttributeValue(session, pair.publicKey, [
          { type: pkcs11js.CKA_EC_POINT },
        ])[0]!.value as Buffer;
        const keyId = keyIdOf(new Uint8Array(point.subarray(point.length - 32)));
        if (opts.finishPublic) {
          other.p11.C_SetAttributeValue(session, pair.publicKey, [
            { type: pkcs11js.CKA_ID, value: Buffer.from(keyId, 'hex') },
          ]);
        }
        if (opts.dropPublic) other.p11.C_DestroyObject(session, pair.publicKey);
        return keyId;
      } finally {
        other.p11.C_CloseSession(session);
        other.done();
      }
    }

    function objectsLabelled(label: string): number {
      const other = otherHandle();
      const session = other.p11.C_OpenSession(other.slot, pkcs11js.CKF_SERIAL_SESSION);
      try {
        other.p11.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
        const found = other.p11.C_FindObjects(session, 16);
        other.p11.C_FindObjectsFinal(session);
        return found.length;
      } finally {
        other.p11.C_CloseSession(session);
        other.done();
      }
    }

    async function retryKeygen(identity: string, runId: string) {
      return keygenActivities(deps).generateKey({
        workflowId: `wf-${runId}`,
        runId,
        identity,
        custodian: 'pkcs11',
      });
    }

    it('neither half has its CKA_ID: the retry finishes the pair and registers that key', async () => {
      const runId = randomBytes(6).toString('hex');
      const keyId = halfMadePair(newKeyLabel('crash-a', runId));
      const info = await retryKeygen('crash-a', runId);
      expect(info.keyId).toBe(keyId);
      expect((await getKey(db.pool, keyId))?.state).toBe('pending');
      const described = await custodian.describe(info.handle);
      expect(described.generatedOnDevice).toBe(true);
      await signsWith(
        custodian,
        info.handle,
        (await custodian.lookup(newKeyLabel('crash-a', runId)))!.publicKey,
      );
      expect(objectsLabelled(newKeyLabel('crash-a', runId))).toBe(2);
    });

    it('the public half has its CKA_ID, the private half not: the retry finishes the pair', async () => {
      const runId = randomBytes(6).toString('hex');
      const keyId = halfMadePair(newKeyLabel('crash-b', runId), { finishPublic: true });
      const info = await retryKeygen('crash-b', runId);
      expect(info.keyId).toBe(keyId);
      const key = (await custodian.lookup(newKeyLabel('crash-b', runId)))!;
      await signsWith(custodian, info.handle, key.publicKey);
      expect(objectsLabelled(newKeyLabel('crash-b', runId))).toBe(2);
    });

    it('a private half without its public half: the retry cleans it up and makes a whole new pair', async () => {
      const runId = randomBytes(6).toString('hex');
      const orphan = halfMadePair(newKeyLabel('crash-c', runId), { dropPublic: true });
      const info = await retryKeygen('crash-c', runId);
      expect(info.keyId).not.toBe(orphan);
      const key = (await custodian.lookup(newKeyLabel('crash-c', runId)))!;
      expect(key.keyId).toBe(info.keyId);
      await signsWith(custodian, info.handle, key.publicKey);
      // The orphan is gone: one public and one private object under the label.
      expect(objectsLabelled(newKeyLabel('crash-c', runId))).toBe(2);
    });
  },
);
