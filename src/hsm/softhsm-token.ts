/**
 * Throwaway SoftHSM2 tokens: a temp folder with its own softhsm2.conf, so tests and benchmarks
 * never touch root-owned token state. SoftHSM2's library reads SOFTHSM2_CONF from the process's
 * environment at C_Initialize, and rotor's custodian never sets it (src/custody/index.ts): the
 * entry point that makes a token for its own process (test/global-setup.ts, bench/hsm-sign.ts,
 * bench/rotation-resign.ts) sets it to `confPath` once, before any custodian is opened; a child
 * process gets it in `env`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_SOFTHSM_MODULE } from '../config';
import { EnvironmentError } from '../errors';

const execFileAsync = promisify(execFile);

export const SOFTHSM_UTIL = 'softhsm2-util';

export interface SoftHsmAvailability {
  available: boolean;
  modulePath: string;
  /** Why not, in one line naming the fix. */
  reason?: string;
}

export async function softHsmAvailability(modulePath = DEFAULT_SOFTHSM_MODULE): Promise<SoftHsmAvailability> {
  if (!existsSync(modulePath)) {
    return {
      available: false,
      modulePath,
      reason: `SoftHSM2 PKCS#11 module not found at ${modulePath}: apt-get install softhsm2`,
    };
  }
  try {
    await execFileAsync(SOFTHSM_UTIL, ['--version']);
  } catch {
    return {
      available: false,
      modulePath,
      reason: `${SOFTHSM_UTIL} is not on PATH: apt-get install softhsm2`,
    };
  }
  return { available: true, modulePath };
}

export interface SoftHsmToken {
  dir: string;
  confPath: string;
  label: string;
  pin: string;
  soPin: string;
  modulePath: string;
  /** Environment for a process that uses this token through rotor's PKCS#11 custodian. */
  env: Record<string, string>;
  remove(): void;
}

export interface CreateTokenOptions {
  label?: string;
  /** Reuse a folder (several tokens under one conf); default: a new temp folder. */
  dir?: string;
  modulePath?: string;
}

export async function createSoftHsmToken(options: CreateTokenOptions = {}): Promise<SoftHsmToken> {
  const modulePath = options.modulePath ?? DEFAULT_SOFTHSM_MODULE;
  const availability = await softHsmAvailability(modulePath);
  if (!availability.available) throw new EnvironmentError(availability.reason!, 'ENV_SOFTHSM_MISSING');
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'rotor-softhsm-'));
  const tokenDir = join(dir, 'tokens');
  mkdirSync(tokenDir, { recursive: true });
  const confPath = join(dir, 'softhsm2.conf');
  writeFileSync(
    confPath,
    `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const label = options.label ?? `rotor-${randomBytes(4).toString('hex')}`;
  const pin = randomBytes(8).toString('hex');
  const soPin = randomBytes(8).toString('hex');
  try {
    await execFileAsync(
      SOFTHSM_UTIL,
      ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin, '--module', modulePath],
      // softhsm2-util reads the conf from its environment: this process's, passed on with
      // SOFTHSM2_CONF pointing at the new token's folder. Nothing is read from it here
      // (test/foundation/configuration.test.ts allows this one spread).
      { env: { ...process.env, SOFTHSM2_CONF: confPath } },
    );
  } catch (err) {
    const stderr = ((err as { stderr?: string }).stderr ?? '').trim();
    if (!options.dir) rmSync(dir, { recursive: true, force: true });
    // The PINs are in the argv, never in the message.
    throw new EnvironmentError(
      `softhsm2-util could not initialise token ${label}: ${stderr}`,
      'ENV_SOFTHSM_INIT',
    );
  }
  return {
    dir,
    confPath,
    label,
    pin,
    soPin,
    modulePath,
    env: {
      SOFTHSM2_CONF: confPath,
      ROTOR_PKCS11_MODULE: modulePath,
      ROTOR_PKCS11_TOKEN_LABEL: label,
      ROTOR_PKCS11_PIN: pin,
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
