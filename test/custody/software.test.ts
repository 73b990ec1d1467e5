import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { custodyConfig } from '../../src/config';
import { openCustodian } from '../../src/custody/index';
import { openSoftwareCustodian, type SoftwareCustodian } from '../../src/custody/software';
import { b64urlDecode, ed25519Verify, keyIdOf, publicKeyFromSeed } from '../../src/manifest/keys';
import { uniqueLabel } from './helpers';

describe('software custodian', () => {
  let dir: string;
  let custodian: SoftwareCustodian;

  beforeAll(async () => {
    dir = join(mkdtempSync(join(tmpdir(), 'rotor-soft-')), 'keys');
    custodian = await openSoftwareCustodian({ dir });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps one 0600 seed file per key, in the format manifest keygen writes', async () => {
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const key = await custodian.generate(uniqueLabel());
    const file = custodian.seedFile(key.keyId);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const seed = b64urlDecode(readFileSync(file, 'utf8'));
    expect(seed).toHaveLength(32);
    expect(publicKeyFromSeed(seed)).toEqual(key.publicKey);
    expect(key.keyId).toBe(keyIdOf(key.publicKey));
    expect(key.handle).toBe(key.keyId);
  });

  it('signs as a software key; signatures verify', async () => {
    const key = await custodian.generate(uniqueLabel());
    const signer = await custodian.signer(key.handle);
    expect(signer).toMatchObject({ keyId: key.keyId, keyType: 'software' });
    const message = randomBytes(300);
    expect(ed25519Verify(key.publicKey, message, await signer.sign(message))).toBe(true);
  });

  it('describes itself plainly as not an HSM', async () => {
    const key = await custodian.generate(uniqueLabel());
    const d = await custodian.describe(key.handle);
    expect(d).toMatchObject({
      kind: 'software',
      isHsm: false,
      generatedOnDevice: false,
      neverExtractable: false,
      alwaysSensitive: false,
      extractable: true,
      seedFile: custodian.seedFile(key.keyId),
    });
    expect(d.summary).toMatch(/^software key: NOT an HSM/);
    expect(d.summary).toContain('for demos and local development only');
    const health = await custodian.health();
    expect(health).toMatchObject({ ok: true, kind: 'software', folder: dir });
    expect(health.detail).toContain('not an HSM');
  });

  it('finds a key by label and refuses a duplicate label', async () => {
    const label = uniqueLabel();
    const key = await custodian.generate(label);
    expect(await custodian.lookup(label)).toEqual(key);
    await expect(custodian.generate(label)).rejects.toThrow(
      `software custodian (folder ${dir}): a key labelled ${label} already exists (key_id ${key.keyId})`,
    );
    await expect(custodian.generate('')).rejects.toThrow(/must be 1 to 128 printable characters/);
  });

  it('destroy() removes the seed; signing afterwards fails naming the key_id; destroying twice is fine', async () => {
    const key = await custodian.generate(uniqueLabel());
    await custodian.destroy(key.handle);
    expect(existsSync(custodian.seedFile(key.keyId))).toBe(false);
    await expect(custodian.signer(key.handle)).rejects.toThrow(
      `software custodian (folder ${dir}): key ${key.keyId} is not in the folder (destroyed or never created)`,
    );
    await custodian.destroy(key.handle);
  });

  it('refuses a seed file that others can read, and a handle that is not a key_id', async () => {
    const key = await custodian.generate(uniqueLabel());
    chmodSync(custodian.seedFile(key.keyId), 0o644);
    await expect(custodian.signer(key.handle)).rejects.toThrow(
      `seed file ${custodian.seedFile(key.keyId)} of key ${key.keyId} is readable by others (mode 0644)`,
    );
    await expect(custodian.signer('../../etc/passwd')).rejects.toThrow(/is not a software key handle/);
  });

  it('is configured from the environment', async () => {
    expect(custodyConfig({}).kind).toBe('software');
    expect(custodyConfig({ ROTOR_CUSTODIAN: 'pkcs11' }).kind).toBe('pkcs11');
    expect(() => custodyConfig({ ROTOR_CUSTODIAN: 'vault' }).kind).toThrow(
      "ROTOR_CUSTODIAN must be one of pkcs11, software, got 'vault'",
    );
    expect(custodyConfig({}).softwareKeyDir).toBe(join(process.cwd(), '.rotor/keys'));
    const other = join(dir, 'nested');
    const c = await openCustodian('software', custodyConfig({ ROTOR_SOFTWARE_KEY_DIR: other }));
    expect(c.kind).toBe('software');
    const key = await c.generate(uniqueLabel());
    expect(existsSync(join(other, `${key.keyId}.key`))).toBe(true);
    await c.close();
    await expect(openCustodian('pkcs11', custodyConfig({}))).rejects.toThrow(
      /ROTOR_PKCS11_TOKEN_LABEL is not set/,
    );
  });
});
