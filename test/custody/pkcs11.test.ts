import { execFile } from 'node:child_process';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { promisify } from 'node:util';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CKK_EC_EDWARDS, openPkcs11Custodian, type Pkcs11Custodian } from '../../src/custody/pkcs11';
import { formatPkcs11Handle } from '../../src/custody/pkcs11-handle';
import { acquireModule, type ModuleLease } from '../../src/custody/pkcs11-module';
import { ed25519Verify, keyIdOf } from '../../src/manifest/keys';
import { getKey, registerKey, transitionKey } from '../../src/store/keys';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { tokenConfig, tokenEnv, uniqueLabel } from './helpers';

const execFileAsync = promisify(execFile);
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function nodeVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  return verify(null, message, key, signature);
}

describe.skipIf(!inject('softhsm').available)('SoftHSM: PKCS#11 custodian', () => {
  let custodian: Pkcs11Custodian;
  let lease: ModuleLease;
  let session: Buffer;
  let db: TestDatabase;

  beforeAll(async () => {
    custodian = await openPkcs11Custodian(tokenConfig({ sessions: 4 }));
    // An independent session on the same module, to read what is on the token without the custodian.
    lease = acquireModule(tokenConfig().modulePath);
    const slot = lease.p11
      .C_GetSlotList(true)
      .find((s) => lease.p11.C_GetTokenInfo(s).label.trim() === inject('softhsm').label)!;
    session = lease.p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    db = await createTestDatabase();
  });

  afterAll(async () => {
    lease?.p11.C_CloseSession(session);
    lease?.release();
    await custodian?.close();
    await db?.drop();
  });

  function objects(keyId: string, cls: number): Buffer[] {
    lease.p11.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: cls },
      { type: pkcs11js.CKA_ID, value: Buffer.from(keyId, 'hex') },
    ]);
    try {
      return lease.p11.C_FindObjects(session, 10);
    } finally {
      lease.p11.C_FindObjectsFinal(session);
    }
  }

  it('generates the key pair on the token with a sensitive, non-extractable private half', async () => {
    const label = uniqueLabel();
    const key = await custodian.generate(label);
    expect(key.publicKey).toHaveLength(32);
    expect(key.keyId).toBe(keyIdOf(key.publicKey));
    expect(key.handle).toBe(formatPkcs11Handle({ tokenLabel: inject('softhsm').label!, keyId: key.keyId }));

    const [priv, ...morePriv] = objects(key.keyId, pkcs11js.CKO_PRIVATE_KEY);
    expect(priv).toBeDefined();
    expect(morePriv).toHaveLength(0);
    const attrs = lease.p11.C_GetAttributeValue(session, priv!, [
      { type: pkcs11js.CKA_TOKEN },
      { type: pkcs11js.CKA_PRIVATE },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_LOCAL },
      { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
      { type: pkcs11js.CKA_SIGN },
      { type: pkcs11js.CKA_KEY_TYPE },
      { type: pkcs11js.CKA_LABEL },
    ]);
    const [
      token,
      priv_,
      sensitive,
      extractable,
      local,
      neverExtractable,
      alwaysSensitive,
      sign,
      keyType,
      lbl,
    ] = attrs.map((a) => a.value);
    expect(
      [token, priv_, sensitive, local, neverExtractable, alwaysSensitive, sign].map((v) => v![0]),
    ).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(extractable![0]).toBe(0);
    expect(Number(keyType!.readBigUInt64LE(0))).toBe(CKK_EC_EDWARDS);
    expect(lbl!.toString()).toBe(label);

    // The public half's CKA_EC_POINT is the key the custodian reported.
    const [pub] = objects(key.keyId, pkcs11js.CKO_PUBLIC_KEY);
    const [point] = lease.p11.C_GetAttributeValue(session, pub!, [{ type: pkcs11js.CKA_EC_POINT }]);
    expect(point!.value.subarray(2)).toEqual(Buffer.from(key.publicKey));

    const description = await custodian.describe(key.handle);
    expect(description).toMatchObject({
      kind: 'pkcs11',
      keyId: key.keyId,
      label,
      isHsm: true,
      generatedOnDevice: true,
      neverExtractable: true,
      alwaysSensitive: true,
      sensitive: true,
      extractable: false,
    });
    const info = lease.p11.C_GetTokenInfo(lease.p11.C_GetSessionInfo(session).slotID);
    expect(description.token).toEqual({
      label: info.label.trim(),
      model: info.model.trim(),
      serial: info.serialNumber.trim(),
      manufacturer: info.manufacturerID.trim(),
    });
    expect(description.summary).toContain('generated on HSM');
    expect(description.summary).toContain(info.serialNumber.trim());
  });

  it('refuses to reveal the private value: reading CKA_VALUE fails', async () => {
    const key = await custodian.generate(uniqueLabel());
    const [priv] = objects(key.keyId, pkcs11js.CKO_PRIVATE_KEY);
    expect(() => lease.p11.C_GetAttributeValue(session, priv!, [{ type: pkcs11js.CKA_VALUE }])).toThrow(
      /CKR_ATTRIBUTE_SENSITIVE/,
    );
  });

  it('signs inside the HSM: signatures verify with the interop core and with node:crypto', async () => {
    const key = await custodian.generate(uniqueLabel());
    const signer = await custodian.signer(key.handle);
    expect(signer).toMatchObject({ keyId: key.keyId, keyType: 'hsm' });
    expect(signer.publicKey).toEqual(key.publicKey);
    for (const size of [0, 1, 600, 70_000]) {
      const message = randomBytes(size);
      const signature = await signer.sign(message);
      expect(signature).toHaveLength(64);
      expect(ed25519Verify(key.publicKey, message, signature)).toBe(true);
      expect(nodeVerify(key.publicKey, message, signature)).toBe(true);
      // Ed25519 is deterministic: the same message gives the same bytes.
      expect(await signer.sign(message)).toEqual(signature);
      const tampered = Buffer.concat([message, Buffer.from([0])]);
      expect(ed25519Verify(key.publicKey, tampered, signature)).toBe(false);
    }
  });

  it('finds a key again by label, and refuses to make a second key under the same label', async () => {
    const label = uniqueLabel();
    const key = await custodian.generate(label);
    expect(await custodian.lookup(label)).toEqual(key);
    expect(await custodian.lookup(uniqueLabel())).toBeUndefined();
    await expect(custodian.generate(label)).rejects.toThrow(
      new RegExp(
        `pkcs11 custodian \\(token ${inject('softhsm').label}\\): a key labelled ${label} already exists \\(key_id ${key.keyId}\\)`,
      ),
    );
    // A second custodian (its own sessions, the same process login) signs with the stored handle.
    const other = await openPkcs11Custodian(tokenConfig({ sessions: 1 }));
    try {
      const message = randomBytes(100);
      const signature = await (await other.signer(key.handle)).sign(message);
      expect(ed25519Verify(key.publicKey, message, signature)).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('destroy() removes the private key; later signing fails naming the key_id; the registry keeps the public key', async () => {
    const key = await custodian.generate(uniqueLabel());
    await registerKey(db.pool, {
      identity: uniqueLabel('identity'),
      keyId: key.keyId,
      publicKey: key.publicKey,
      custodian: 'pkcs11',
      handle: key.handle,
      state: 'active',
      description: await custodian.describe(key.handle),
    });
    const signer = await custodian.signer(key.handle);
    await signer.sign(randomBytes(10));

    await custodian.destroy(key.handle);
    expect(objects(key.keyId, pkcs11js.CKO_PRIVATE_KEY)).toHaveLength(0);
    expect(objects(key.keyId, pkcs11js.CKO_PUBLIC_KEY)).toHaveLength(0);
    const gone = `pkcs11 custodian (token ${inject('softhsm').label}): key ${key.keyId} is not on the token (destroyed or never created)`;
    await expect(signer.sign(randomBytes(10))).rejects.toThrow(gone);
    await expect(custodian.signer(key.handle)).rejects.toThrow(gone);
    await expect(custodian.describe(key.handle)).rejects.toThrow(gone);
    // Destroying again is a no-op: a retried decommission step succeeds.
    await custodian.destroy(key.handle);

    for (const state of ['retiring', 'retired', 'destroyed'] as const)
      await transitionKey(db.pool, key.keyId, state);
    const archived = await getKey(db.pool, key.keyId);
    expect(archived).toMatchObject({ state: 'destroyed', publicKey: key.publicKey, custodian: 'pkcs11' });
    expect(archived!.destroyedAt).toBeInstanceOf(Date);
  });

  it('runs concurrent signers across the session pool, and every signature is valid', async () => {
    const keys = await Promise.all([custodian.generate(uniqueLabel()), custodian.generate(uniqueLabel())]);
    const signers = await Promise.all(keys.map((k) => custodian.signer(k.handle)));
    const jobs = Array.from({ length: 200 }, (_, i) => {
      const signer = signers[i % 2]!;
      const message = randomBytes(64 + i);
      return signer.sign(message).then((signature) => ({ signer, message, signature }));
    });
    const results = await Promise.all(jobs);
    for (const { signer, message, signature } of results) {
      expect(ed25519Verify(signer.publicKey, message, signature)).toBe(true);
    }
    // 200 signatures queued on 4 sessions: all four were busy at once at some point.
    expect(custodian.peakSessionsInUse).toBe(4);
  });

  it('reports health with the token and the mechanisms rotor needs', async () => {
    const health = await custodian.health();
    expect(health).toMatchObject({
      ok: true,
      kind: 'pkcs11',
      token: { label: inject('softhsm').label, model: expect.stringMatching(/SoftHSM/) },
      mechanisms: { eddsa: true, ecEdwardsKeyPairGen: true },
      sessions: { size: 4 },
    });
    expect(health.detail).toContain('EDDSA and EC-EDWARDS-KEY-PAIR-GEN listed');
  });

  it('names the key_id when a key vanishes under a live signer (destroyed by another process)', async () => {
    const key = await custodian.generate(uniqueLabel());
    const signer = await custodian.signer(key.handle);
    await signer.sign(randomBytes(8));
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import', 'tsx', 'test/custody/fixtures/destroy-key.ts', key.handle],
      { env: { ...process.env, ...tokenEnv() } },
    );
    expect(stdout).toContain('destroyed');
    await expect(signer.sign(randomBytes(8))).rejects.toThrow(`key ${key.keyId} is not on the token`);
  });

  it('names the key_id for a key that never existed, and refuses a handle of another token', async () => {
    const keyId = randomBytes(32).toString('hex');
    const handle = formatPkcs11Handle({ tokenLabel: inject('softhsm').label!, keyId });
    await expect(custodian.signer(handle)).rejects.toThrow(
      `key ${keyId} is not on the token (destroyed or never created)`,
    );
    const elsewhere = formatPkcs11Handle({ tokenLabel: 'some-other-token', keyId });
    await expect(custodian.signer(elsewhere)).rejects.toThrow(
      `key ${keyId} lives on token some-other-token, not on this one`,
    );
    await expect(custodian.signer('not-a-handle')).rejects.toThrow(/is not a pkcs11 custodian key handle/);
  });
});
