/**
 * The software custodian, for the demo and local development only: one file per key in a folder,
 * holding the base64url raw 32-byte seed (the format `manifest keygen` writes), mode 0600, plus a
 * small public sidecar with the label. `describe()` says plainly that this is not an HSM, so a
 * preflight under a production policy can refuse it.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { RotorError, UsageError } from '../errors';
import {
  b64urlDecode,
  b64urlEncode,
  KeyFormatError,
  keyIdOf,
  publicKeyFromSeed,
  softwareSigner,
} from '../manifest/keys';
import type { Signer } from '../manifest/signer';
import {
  type CustodianHealth,
  checkKeyLabel,
  type GeneratedKey,
  type KeyCustodian,
  type KeyDescription,
} from './custodian';

export { DEFAULT_SOFTWARE_KEY_DIR } from '../config';

interface Sidecar {
  key_id: string;
  label: string;
  public_key: string;
  created_at: string;
}

const KEY_ID = /^[0-9a-f]{64}$/;

export async function openSoftwareCustodian(options: { dir: string }): Promise<SoftwareCustodian> {
  const dir = resolve(options.dir);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new UsageError(
      `software custodian: cannot create key folder ${dir} (${(err as NodeJS.ErrnoException).code ?? err}): set ROTOR_SOFTWARE_KEY_DIR`,
      'SOFTWARE_KEY_DIR',
    );
  }
  return new SoftwareCustodian(dir);
}

export class SoftwareCustodian implements KeyCustodian {
  readonly kind = 'software' as const;

  constructor(readonly dir: string) {}

  private get where(): string {
    return `software custodian (folder ${this.dir})`;
  }

  seedFile(keyId: string): string {
    return join(this.dir, `${keyId}.key`);
  }

  private sidecarFile(keyId: string): string {
    return join(this.dir, `${keyId}.json`);
  }

  async generate(label: string): Promise<GeneratedKey> {
    checkKeyLabel(label);
    const existing = await this.lookup(label);
    if (existing) {
      throw new RotorError(
        `${this.where}: a key labelled ${label} already exists (key_id ${existing.keyId}): choose another label or use lookup()`,
        'SOFTWARE_LABEL_TAKEN',
      );
    }
    const seed = randomBytes(32);
    try {
      const publicKey = publicKeyFromSeed(seed);
      const keyId = keyIdOf(publicKey);
      // 'wx': never overwrite a seed file, whatever is in the folder.
      await writeFile(this.seedFile(keyId), b64urlEncode(seed), { mode: 0o600, flag: 'wx' });
      const sidecar: Sidecar = {
        key_id: keyId,
        label,
        public_key: b64urlEncode(publicKey),
        created_at: new Date().toISOString(),
      };
      await writeFile(this.sidecarFile(keyId), `${JSON.stringify(sidecar, null, 2)}\n`, { mode: 0o600 });
      return { handle: keyId, publicKey, keyId, label };
    } finally {
      seed.fill(0);
    }
  }

  async lookup(label: string): Promise<GeneratedKey | undefined> {
    checkKeyLabel(label);
    for (const name of await readdir(this.dir)) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue;
      const sidecar = await this.readSidecar(name.slice(0, 64));
      if (sidecar?.label === label && (await exists(this.seedFile(sidecar.key_id)))) {
        const publicKey = b64urlDecode(sidecar.public_key, `${name} public_key`);
        return { handle: sidecar.key_id, publicKey, keyId: sidecar.key_id, label };
      }
    }
    return undefined;
  }

  async signer(handle: string): Promise<Signer> {
    const keyId = this.keyIdOf(handle);
    const file = this.seedFile(keyId);
    const mode = await this.modeOf(keyId);
    if (mode & 0o077) {
      throw new RotorError(
        `${this.where}: seed file ${file} of key ${keyId} is readable by others (mode ${octal(mode)}): chmod 600 ${file}`,
        'SOFTWARE_SEED_EXPOSED',
      );
    }
    const text = (await readFile(file, 'utf8')).trim();
    let seed: Uint8Array;
    try {
      seed = b64urlDecode(text, `seed file ${file}`);
      if (seed.length !== 32)
        throw new KeyFormatError(`seed file ${file} holds ${seed.length} bytes, not 32`);
    } catch (err) {
      // The message names the file and what is wrong with it, never the seed.
      throw new RotorError(`${this.where}: key ${keyId}: ${(err as Error).message}`, 'SOFTWARE_SEED_INVALID');
    }
    const signer = softwareSigner(seed);
    seed.fill(0);
    if (signer.keyId !== keyId) {
      throw new RotorError(
        `${this.where}: seed file ${file} holds key ${signer.keyId}, not ${keyId}`,
        'SOFTWARE_KEY_MISMATCH',
      );
    }
    return signer;
  }

  async destroy(handle: string): Promise<void> {
    const keyId = this.keyIdOf(handle);
    const file = this.seedFile(keyId);
    try {
      // Overwrite before unlinking so the seed does not linger in the file's old blocks on simple filesystems.
      const fh = await open(file, 'r+');
      try {
        const { size } = await fh.stat();
        await fh.write(Buffer.alloc(size), 0, size, 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await rm(file, { force: true });
    await rm(this.sidecarFile(keyId), { force: true });
  }

  async describe(handle: string): Promise<KeyDescription> {
    const keyId = this.keyIdOf(handle);
    const mode = await this.modeOf(keyId);
    const sidecar = await this.readSidecar(keyId);
    const file = this.seedFile(keyId);
    return {
      kind: 'software',
      keyId,
      handle,
      label: sidecar?.label,
      isHsm: false,
      generatedOnDevice: false,
      neverExtractable: false,
      alwaysSensitive: false,
      sensitive: false,
      extractable: true,
      seedFile: file,
      summary:
        `software key: NOT an HSM. The private seed is a plain file (${file}, mode ${octal(mode)}) that anyone ` +
        'with access to this machine or its backups can copy; for demos and local development only',
    };
  }

  async health(): Promise<CustodianHealth> {
    try {
      await access(this.dir, constants.R_OK | constants.W_OK | constants.X_OK);
      const { mode } = await stat(this.dir);
      const shared = mode & 0o077 ? `; folder mode ${octal(mode & 0o777)} lets others list it` : '';
      return {
        ok: true,
        kind: 'software',
        folder: this.dir,
        detail: `software keys in ${this.dir} (not an HSM; demo and development only)${shared}`,
      };
    } catch (err) {
      return {
        ok: false,
        kind: 'software',
        folder: this.dir,
        detail: `${this.where}: folder is not usable (${(err as NodeJS.ErrnoException).code ?? err})`,
      };
    }
  }

  async close(): Promise<void> {}

  private keyIdOf(handle: string): string {
    if (!KEY_ID.test(handle)) {
      throw new UsageError(
        `${this.where}: '${handle.slice(0, 80)}' is not a software key handle (a 64-hex key_id)`,
        'SOFTWARE_HANDLE_INVALID',
      );
    }
    return handle;
  }

  private async modeOf(keyId: string): Promise<number> {
    try {
      return (await stat(this.seedFile(keyId))).mode & 0o777;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new RotorError(
          `${this.where}: key ${keyId} is not in the folder (destroyed or never created)`,
          'KEY_NOT_IN_CUSTODY',
        );
      }
      throw err;
    }
  }

  private async readSidecar(keyId: string): Promise<Sidecar | undefined> {
    try {
      const parsed = JSON.parse(await readFile(this.sidecarFile(keyId), 'utf8')) as Sidecar;
      return parsed.key_id === keyId ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

const octal = (mode: number) => `0${mode.toString(8)}`;
