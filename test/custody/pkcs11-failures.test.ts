// Its own file (its own process): the first test needs a process not yet logged in to the token,
// so that the token itself judges the wrong PIN.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { custodyConfig } from '../../src/config';
import { openCustodian } from '../../src/custody/index';
import { openPkcs11Custodian } from '../../src/custody/pkcs11';
import { formatPkcs11Handle } from '../../src/custody/pkcs11-handle';
import { EnvironmentError, RotorError, UsageError } from '../../src/errors';
import { ed25519Verify } from '../../src/manifest/keys';
import { createTestDatabase } from '../helpers/db';
import { captureOutput, tokenConfig, tokenEnv, uniqueLabel } from './helpers';

const execFileAsync = promisify(execFile);
const WRONG_PIN = `wrong-${randomBytes(6).toString('hex')}`;

describe.skipIf(!inject('softhsm').available)('SoftHSM: PKCS#11 custodian failures', () => {
  const pin = inject('softhsm').pin!;
  const label = inject('softhsm').label!;
  /** Every message and every captured line of output, checked for PINs at the end. */
  const seen: string[] = [];

  async function failure(fn: () => Promise<unknown>): Promise<Error> {
    const { error, text } = await captureOutput(fn);
    seen.push(text);
    expect(error).toBeInstanceOf(RotorError);
    const err = error as RotorError;
    seen.push(err.message, String(err.stack), inspect(err));
    // One line, naming the custodian.
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(/^pkcs11 custodian/);
    return err;
  }

  it('a wrong PIN is refused by the token, with a message that names the token and the fix', async () => {
    const err = await failure(() => openPkcs11Custodian(tokenConfig({ pin: WRONG_PIN })));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe(
      `pkcs11 custodian (token ${label}): the token refused the PIN (CKR_PIN_INCORRECT): check ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE`,
    );
  });

  it('a wrong PIN is refused even while this process is logged in to the token', async () => {
    const good = await openPkcs11Custodian(tokenConfig());
    try {
      const err = await failure(() => openPkcs11Custodian(tokenConfig({ pin: WRONG_PIN })));
      expect(err.message).toContain(
        `(token ${label}): the PIN differs from the one this process logged in with`,
      );
      // The good custodian is unharmed.
      expect((await good.health()).ok).toBe(true);
    } finally {
      await good.close();
    }
  });

  it('a missing module is an environment error naming the path', async () => {
    const err = await failure(() =>
      openPkcs11Custodian(tokenConfig({ modulePath: '/nonexistent/libpkcs11.so' })),
    );
    expect(err).toBeInstanceOf(EnvironmentError);
    expect(err.message).toBe(
      'pkcs11 custodian: PKCS#11 module /nonexistent/libpkcs11.so does not exist: install it or set ROTOR_PKCS11_MODULE',
    );
  });

  it('a file that is not a PKCS#11 library is an environment error naming it', async () => {
    const notALibrary = join(mkdtempSync(join(tmpdir(), 'rotor-p11-')), 'libfake.so');
    writeFileSync(notALibrary, 'not an ELF file');
    const err = await failure(() => openPkcs11Custodian(tokenConfig({ modulePath: notALibrary })));
    expect(err).toBeInstanceOf(EnvironmentError);
    expect(err.message).toContain(`cannot load PKCS#11 module ${notALibrary}`);
  });

  it('an absent token is an environment error naming the label and the tokens present', async () => {
    const err = await failure(() => openPkcs11Custodian(tokenConfig({ tokenLabel: 'no-such-token' })));
    expect(err).toBeInstanceOf(EnvironmentError);
    expect(err.message).toContain('no token labelled no-such-token in');
    expect(err.message).toContain(`tokens present: ${label}`);
  });

  it('a vanished key is an error naming the custodian, the token and the key_id', async () => {
    const custodian = await openCustodian('pkcs11', custodyConfig({ ...process.env, ...tokenEnv() }));
    try {
      const key = await custodian.generate(uniqueLabel());
      await custodian.destroy(key.handle);
      const err = await failure(() => custodian.signer(key.handle));
      expect(err.message).toBe(
        `pkcs11 custodian (token ${label}): key ${key.keyId} is not on the token (destroyed or never created)`,
      );
      const missing = randomBytes(32).toString('hex');
      const err2 = await failure(() =>
        custodian.describe(formatPkcs11Handle({ tokenLabel: label, keyId: missing })),
      );
      expect(err2.message).toContain(`key ${missing} is not on the token`);
      // Nothing about the custodian object itself reveals the PIN either.
      seen.push(inspect(custodian, { depth: 5 }), JSON.stringify(await custodian.health()));
    } finally {
      await custodian.close();
    }
  });

  it('a single-session custodian stays logged in and usable after a failed operation', async () => {
    // The only custodian open in this process: its one session carries the login.
    const custodian = await openPkcs11Custodian(tokenConfig({ sessions: 1 }));
    try {
      const doomed = await custodian.generate(uniqueLabel());
      const doomedSigner = await custodian.signer(doomed.handle);
      await custodian.destroy(doomed.handle);
      await failure(() => doomedSigner.sign(randomBytes(8)));
      const key = await custodian.generate(uniqueLabel());
      const message = randomBytes(32);
      const signature = await (await custodian.signer(key.handle)).sign(message);
      expect(ed25519Verify(key.publicKey, message, signature)).toBe(true);
      expect((await custodian.health()).ok).toBe(true);
    } finally {
      await custodian.close();
    }
  });

  it('the CLI reports a wrong PIN in one line on stderr, exit 2, without the PIN', async () => {
    const db = await createTestDatabase();
    const result = await execFileAsync(
      process.execPath,
      ['bin/rotor-dev.mjs', 'key', 'init', '--identity', uniqueLabel('cli'), '--custodian', 'pkcs11'],
      {
        env: { ...process.env, ...tokenEnv(), ROTOR_PKCS11_PIN: WRONG_PIN, DATABASE_URL: db.url },
      },
    ).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    await db.drop();
    seen.push(result.stdout, result.stderr);
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      `rotor: pkcs11 custodian (token ${label}): the token refused the PIN (CKR_PIN_INCORRECT): check ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE`,
    );
  });

  it('no error, stack or captured output above contains the PIN or the wrong PIN', () => {
    expect(seen.length).toBeGreaterThan(10);
    for (const text of seen) {
      expect(text).not.toContain(pin);
      expect(text).not.toContain(WRONG_PIN);
    }
  });
});
