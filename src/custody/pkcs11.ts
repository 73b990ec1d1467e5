/**
 * The PKCS#11 custodian: Ed25519 key pairs are generated on the token (CKM_EC_EDWARDS_KEY_PAIR_GEN),
 * the private half token-resident, sensitive and non-extractable, and every signature is made on
 * the token (CKM_EDDSA). Nothing here ever asks the token for a private value.
 */
import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { Pkcs11Config } from '../config';

export type { Pkcs11Config };

import { EnvironmentError, RotorError } from '../errors';
import { keyIdOf } from '../manifest/keys';
import type { Signer } from '../manifest/signer';
import {
  type CustodianHealth,
  checkKeyLabel,
  type GeneratedKey,
  type KeyCustodian,
  type KeyDescription,
  type TokenFacts,
} from './custodian';
import { formatPkcs11Handle, parsePkcs11Handle } from './pkcs11-handle';
import {
  acquireModule,
  ckrName,
  type Handle,
  loginOnce,
  type ModuleLease,
  nativeReason,
} from './pkcs11-module';
import { SessionPool } from './session-pool';

// PKCS#11 3.0 values that pkcs11js 2.1.7 does not export.
export const CKK_EC_EDWARDS = 0x40;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
/** DER PrintableString "edwards25519": the curve named in CKA_EC_PARAMS. */
const ED25519_PARAMS = Buffer.from('130c656477617264733235353139', 'hex');

const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

const VANISHED = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);
/** The session or the login behind it is gone, though the token may still be there (an HSM restart). */
const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
]);
const TOKEN_GONE = new Set([
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
]);

export async function openPkcs11Custodian(config: Pkcs11Config): Promise<Pkcs11Custodian> {
  const lease = acquireModule(config.modulePath);
  const opened: Handle[] = [];
  try {
    const slot = findSlot(lease, config.tokenLabel);
    const slotKey = slot.toString('hex');
    const token = tokenFacts(lease.p11.C_GetTokenInfo(slot));
    for (let i = 0; i < config.sessions; i++) {
      try {
        opened.push(lease.p11.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION));
      } catch (err) {
        throw new EnvironmentError(
          `pkcs11 custodian (token ${token.label}): cannot open session ${i + 1} of ${config.sessions} (${nativeReason(err)}): lower ROTOR_PKCS11_SESSIONS`,
          'ENV_PKCS11_SESSION',
        );
      }
    }
    const logout = loginOnce(lease, slotKey, opened[0]!, config.pin, token.label);
    return new Pkcs11Custodian(lease, slot, token, opened, logout, config.pin);
  } catch (err) {
    for (const session of opened) closeQuietly(lease, session);
    lease.release();
    throw err;
  }
}

function findSlot(lease: ModuleLease, tokenLabel: string): Handle {
  const present: string[] = [];
  const matches: Handle[] = [];
  for (const slot of lease.p11.C_GetSlotList(true)) {
    const label = lease.p11.C_GetTokenInfo(slot).label.trim();
    if (label === tokenLabel) matches.push(slot);
    else if (label) present.push(label);
  }
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    throw new EnvironmentError(
      `pkcs11 custodian: ${matches.length} tokens in ${lease.modulePath} are labelled ${tokenLabel}: relabel all but one`,
      'ENV_PKCS11_TOKEN_AMBIGUOUS',
    );
  }
  const others = present.length ? `tokens present: ${present.join(', ')}` : 'no initialised tokens';
  throw new EnvironmentError(
    `pkcs11 custodian: no token labelled ${tokenLabel} in ${lease.modulePath} (${others}): check ROTOR_PKCS11_TOKEN_LABEL` +
      (lease.modulePath.includes('softhsm') ? ' and SOFTHSM2_CONF' : ''),
    'ENV_PKCS11_TOKEN_ABSENT',
  );
}

function tokenFacts(info: pkcs11js.TokenInfo): TokenFacts {
  return {
    label: info.label.trim(),
    model: info.model.trim(),
    serial: info.serialNumber.trim(),
    manufacturer: info.manufacturerID.trim(),
  };
}

function closeQuietly(lease: ModuleLease, session: Handle): void {
  try {
    lease.p11.C_CloseSession(session);
  } catch {
    // A session that cannot be closed is gone already (token removed, module finalized).
  }
}

export class Pkcs11Custodian implements KeyCustodian {
  readonly kind = 'pkcs11' as const;
  private readonly pool: SessionPool;
  private closing: Promise<void> | undefined;
  /** A session opened by the last re-login: it holds the login while dead pool sessions are replaced. */
  private anchor: Handle | undefined;
  private relogging: Promise<boolean> | undefined;
  /**
   * Kept for logging in again after the token dropped the login. A #private field: util.inspect
   * and JSON never show it, so no dump of the custodian reveals the PIN.
   */
  readonly #pin: string;
  /**
   * Bumped whenever the module was initialised again: object handles are numbered afresh then, so
   * an old handle may name another object, and signers must look their key up again.
   */
  private generation = 0;
  /** Bumped whenever a lost login was restored: an attempt that started before it may retry. */
  private loginEpoch = 0;

  constructor(
    private readonly lease: ModuleLease,
    private slot: Handle,
    readonly token: TokenFacts,
    sessions: Handle[],
    private readonly logout: () => void,
    pin: string,
  ) {
    this.#pin = pin;
    this.pool = new SessionPool(
      sessions,
      () => new RotorError(`${this.where}: the custodian is closed`, 'PKCS11_CLOSED'),
      (old) => {
        // Open before closing: closing a process's last session on a token logs it out.
        const fresh = this.p11.C_OpenSession(
          this.slot,
          pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION,
        );
        closeQuietly(this.lease, old);
        return fresh;
      },
    );
  }

  private get p11(): pkcs11js.PKCS11 {
    return this.lease.p11;
  }

  private get where(): string {
    return `pkcs11 custodian (token ${this.token.label})`;
  }

  /** Sessions ever busy at the same moment (for tests and benchmarks). */
  get peakSessionsInUse(): number {
    return this.pool.peakInUse;
  }

  async generate(label: string): Promise<GeneratedKey> {
    checkKeyLabel(label);
    return this.run('generate a key labelled', label, async (session) => {
      const existing = this.findByLabel(session, label);
      if (existing) {
        throw new RotorError(
          `${this.where}: a key labelled ${label} already exists (key_id ${existing.keyId}): choose another label or use lookup()`,
          'PKCS11_LABEL_TAKEN',
        );
      }
      // The key_id is known only once the public key exists; a random id keeps the pair together until then.
      const provisionalId = randomBytes(16);
      const common = [
        { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: provisionalId },
      ];
      const pair = await this.p11.C_GenerateKeyPairAsync(
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
          { type: pkcs11js.CKA_DERIVE, value: false },
        ],
      );
      try {
        const publicKey = this.readPublicKey(session, pair.publicKey);
        const keyId = keyIdOf(publicKey);
        const id = Buffer.from(keyId, 'hex');
        for (const object of [pair.publicKey, pair.privateKey]) {
          this.p11.C_SetAttributeValue(session, object, [{ type: pkcs11js.CKA_ID, value: id }]);
        }
        return { handle: this.handleFor(keyId), publicKey, keyId, label };
      } catch (err) {
        for (const object of [pair.publicKey, pair.privateKey]) {
          try {
            this.p11.C_DestroyObject(session, object);
          } catch {
            // Best-effort cleanup of a half-made pair; the error that made it half-made is rethrown below.
          }
        }
        throw err;
      }
    });
  }

  async lookup(label: string): Promise<GeneratedKey | undefined> {
    checkKeyLabel(label);
    return this.run('look up the key labelled', label, (session) => this.findByLabel(session, label));
  }

  async signer(handle: string): Promise<Signer> {
    const keyId = this.keyIdOf(handle);
    const { privateKey, publicKey } = await this.run('open a signer for key', keyId, (session) => {
      const objects = this.findKeyObjects(session, keyId);
      if (!objects.privateKey) throw this.notOnToken(keyId);
      if (!objects.publicKey) {
        throw new RotorError(
          `${this.where}: key ${keyId} has no public key object on the token, so rotor cannot check what it signs with`,
          'PKCS11_PUBLIC_KEY_MISSING',
        );
      }
      const publicKey = this.readPublicKey(session, objects.publicKey);
      if (keyIdOf(publicKey) !== keyId) {
        throw new RotorError(
          `${this.where}: the object with CKA_ID ${keyId} holds the public key of ${keyIdOf(publicKey)}`,
          'PKCS11_KEY_MISMATCH',
        );
      }
      return { privateKey: objects.privateKey, publicKey };
    });
    let object = privateKey;
    let generation = this.generation;
    return {
      keyId,
      keyType: 'hsm',
      publicKey,
      sign: (message: Uint8Array) =>
        this.run('sign with key', keyId, async (session) => {
          if (generation !== this.generation) {
            // The module was initialised again: the old handle may now name a different object.
            const found = this.findKeyObjects(session, keyId).privateKey;
            if (!found) throw this.notOnToken(keyId);
            object = found;
            generation = this.generation;
          }
          try {
            this.p11.C_SignInit(session, { mechanism: CKM_EDDSA }, object);
          } catch (err) {
            if (!VANISHED.has(ckrName(err) ?? '')) throw err;
            // Object handles may be renumbered when another process changes the token; find it again.
            const found = this.findKeyObjects(session, keyId).privateKey;
            if (!found) throw this.notOnToken(keyId);
            object = found;
            this.p11.C_SignInit(session, { mechanism: CKM_EDDSA }, object);
          }
          const signature = await this.p11.C_SignAsync(session, messageBuffer(message), Buffer.alloc(64));
          return new Uint8Array(signature);
        }),
    };
  }

  async destroy(handle: string): Promise<void> {
    const keyId = this.keyIdOf(handle);
    await this.run('destroy key', keyId, (session) => {
      for (const object of this.findObjects(session, [
        { type: pkcs11js.CKA_ID, value: Buffer.from(keyId, 'hex') },
      ])) {
        this.p11.C_DestroyObject(session, object);
      }
    });
  }

  async describe(handle: string): Promise<KeyDescription> {
    const keyId = this.keyIdOf(handle);
    return this.run('describe key', keyId, (session) => {
      const { privateKey } = this.findKeyObjects(session, keyId);
      if (!privateKey) throw this.notOnToken(keyId);
      const attrs = this.p11.C_GetAttributeValue(session, privateKey, [
        { type: pkcs11js.CKA_LOCAL },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
        { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_LABEL },
      ]);
      const flag = (i: number) => attrs[i]?.value?.[0] === 1;
      const facts = {
        generatedOnDevice: flag(0),
        neverExtractable: flag(1),
        alwaysSensitive: flag(2),
        sensitive: flag(3),
        extractable: flag(4),
      };
      return {
        kind: 'pkcs11',
        keyId,
        handle,
        label: attrs[5]?.value?.toString('utf8'),
        isHsm: true,
        ...facts,
        token: { ...this.token },
        summary: this.summarise(facts),
      };
    });
  }

  async health(): Promise<CustodianHealth> {
    const base = { kind: 'pkcs11' as const, token: { ...this.token }, sessions: this.pool.stats() };
    try {
      const info = tokenFacts(this.p11.C_GetTokenInfo(this.slot));
      const mechanisms = this.p11.C_GetMechanismList(this.slot);
      const listed = {
        eddsa: mechanisms.includes(CKM_EDDSA),
        ecEdwardsKeyPairGen: mechanisms.includes(CKM_EC_EDWARDS_KEY_PAIR_GEN),
      };
      const state = await this.run(
        'check a session on',
        'the token',
        (session) => this.p11.C_GetSessionInfo(session).state,
      );
      const loggedIn = state === CKS_RW_USER_FUNCTIONS || state === CKS_RO_USER_FUNCTIONS;
      const problems = [
        ...(loggedIn ? [] : ['not logged in']),
        ...(listed.eddsa ? [] : ['EDDSA not listed']),
        ...(listed.ecEdwardsKeyPairGen ? [] : ['EC-EDWARDS-KEY-PAIR-GEN not listed']),
      ];
      const ok = problems.length === 0;
      const what = `token ${info.label} (${info.model}, serial ${info.serial}), ${this.pool.size} sessions`;
      return {
        ...base,
        ok,
        token: info,
        mechanisms: listed,
        sessions: this.pool.stats(),
        detail: ok
          ? `${what}: logged in; EDDSA and EC-EDWARDS-KEY-PAIR-GEN listed`
          : `${what}: ${problems.join('; ')}`,
      };
    } catch (err) {
      return {
        ...base,
        ok: false,
        detail: `${this.where}: ${err instanceof RotorError ? err.message : nativeReason(err)}`,
      };
    }
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      await this.pool.drain();
      for (const session of this.pool.sessions) closeQuietly(this.lease, session);
      if (this.anchor) closeQuietly(this.lease, this.anchor);
      this.logout();
      this.lease.release();
    })();
    return this.closing;
  }

  private summarise(facts: {
    generatedOnDevice: boolean;
    neverExtractable: boolean;
    alwaysSensitive: boolean;
    extractable: boolean;
  }): string {
    const token = `token ${this.token.label} (${this.token.manufacturer} ${this.token.model}, serial ${this.token.serial})`;
    const origin = facts.generatedOnDevice ? 'generated on' : 'imported into (not generated on)';
    const exposure =
      facts.neverExtractable && facts.alwaysSensitive && !facts.extractable
        ? 'has never been extractable or readable'
        : 'has been or is extractable or readable outside the token';
    const software = /softhsm/i.test(this.token.model)
      ? '; SoftHSM2 is a software token, a PKCS#11 boundary but not tamper-resistant hardware'
      : '';
    return `Ed25519 private key ${origin} HSM ${token}; it ${exposure}${software}`;
  }

  private handleFor(keyId: string): string {
    return formatPkcs11Handle({ tokenLabel: this.token.label, keyId });
  }

  /** The key_id a handle names, refusing handles that belong to another token. */
  private keyIdOf(handle: string): string {
    const ref = parsePkcs11Handle(handle);
    if (ref.tokenLabel !== this.token.label) {
      throw new RotorError(
        `${this.where}: key ${ref.keyId} lives on token ${ref.tokenLabel}, not on this one: point ROTOR_PKCS11_TOKEN_LABEL at ${ref.tokenLabel}`,
        'PKCS11_WRONG_TOKEN',
      );
    }
    return ref.keyId;
  }

  private notOnToken(keyId: string): RotorError {
    return new RotorError(
      `${this.where}: key ${keyId} is not on the token (destroyed or never created)`,
      'KEY_NOT_IN_CUSTODY',
    );
  }

  /**
   * Runs `fn` on a pooled session and turns PKCS#11 failures into one-line errors naming the key.
   * When the token dropped the sessions or the login under a live custodian (an HSM restart,
   * C_CloseAllSessions or C_Finalize by other code in the process), it logs in again and retries,
   * at most once per pooled session plus one: each dead session is replaced as it fails.
   */
  private async run<T>(action: string, subject: string, fn: (session: Handle) => T | Promise<T>): Promise<T> {
    const attempts = this.pool.size + 2;
    for (let attempt = 1; ; attempt++) {
      const epoch = this.loginEpoch;
      try {
        return await this.pool.use(fn);
      } catch (err) {
        if (attempt < attempts && !this.closing && (await this.recoverable(err, epoch))) continue;
        throw this.translate(err, action, subject);
      }
    }
  }

  /** Whether `err` came from a lost session or login that is now restored, so a retry may work. */
  private async recoverable(err: unknown, epoch: number): Promise<boolean> {
    const name = ckrName(err);
    const lost = name !== undefined && SESSION_LOST.has(name);
    // Logged out, private objects are invisible: a key "not on the token" may only be out of sight.
    const unseen =
      (name !== undefined && VANISHED.has(name)) ||
      (err instanceof RotorError && err.code === 'KEY_NOT_IN_CUSTODY');
    if (!lost && !unseen) return false;
    // A failed re-login is judged by the epoch check below: the caller retries or reports the original error.
    await this.relogin().catch(() => false);
    // Restored by this call or by a concurrent one since the attempt began.
    return lost || this.loginEpoch !== epoch;
  }

  /** One re-login at a time; resolves true when the login had been lost and was restored. */
  private relogin(): Promise<boolean> {
    this.relogging ??= Promise.resolve()
      .then(() => this.reloginNow())
      .finally(() => {
        this.relogging = undefined;
      });
    return this.relogging;
  }

  private reloginNow(): boolean {
    let session: Handle;
    let reinitialised = false;
    try {
      session = this.openSession();
    } catch (err) {
      if (ckrName(err) !== 'CKR_CRYPTOKI_NOT_INITIALIZED') throw err;
      // The module was finalised under us: initialise it again and find the token's slot anew.
      try {
        this.p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      } catch (e) {
        if (ckrName(e) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e;
      }
      this.slot = findSlot(this.lease, this.token.label);
      session = this.openSession();
      reinitialised = true;
    }
    let restored = reinitialised;
    const state = this.p11.C_GetSessionInfo(session).state;
    if (state !== CKS_RW_USER_FUNCTIONS && state !== CKS_RO_USER_FUNCTIONS) {
      try {
        this.p11.C_Login(session, pkcs11js.CKU_USER, this.#pin);
      } catch (err) {
        if (ckrName(err) !== 'CKR_USER_ALREADY_LOGGED_IN') {
          closeQuietly(this.lease, session);
          throw err;
        }
      }
      restored = true;
    }
    // The new session becomes the anchor before the old one closes: closing a process's last
    // session on a token would log it out again.
    const old = this.anchor;
    this.anchor = session;
    if (old !== undefined) closeQuietly(this.lease, old);
    if (restored) this.loginEpoch++;
    if (reinitialised) {
      this.generation++;
      this.pool.reset(() => this.openSession());
    }
    return restored;
  }

  private openSession(): Handle {
    return this.p11.C_OpenSession(this.slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION);
  }

  private translate(err: unknown, action: string, subject: string): Error {
    if (err instanceof RotorError) return err;
    const name = ckrName(err);
    if (name && VANISHED.has(name)) return this.notOnToken(subject);
    if (name && TOKEN_GONE.has(name)) {
      return new EnvironmentError(
        `${this.where}: cannot ${action} ${subject}: the token or its session is gone (${name})`,
        'ENV_PKCS11_TOKEN_GONE',
      );
    }
    if (name === 'CKR_MECHANISM_INVALID' || name === 'CKR_DOMAIN_PARAMS_INVALID') {
      return new EnvironmentError(
        `${this.where}: cannot ${action} ${subject}: the token does not support Ed25519 (${name})`,
        'ENV_PKCS11_NO_ED25519',
      );
    }
    return new RotorError(
      `${this.where}: cannot ${action} ${subject} (${nativeReason(err)})`,
      'PKCS11_FAILED',
    );
  }

  private findObjects(session: Handle, template: pkcs11js.Template): Handle[] {
    this.p11.C_FindObjectsInit(session, template);
    try {
      return this.p11.C_FindObjects(session, 64);
    } finally {
      this.p11.C_FindObjectsFinal(session);
    }
  }

  private findKeyObjects(session: Handle, keyId: string): { privateKey?: Handle; publicKey?: Handle } {
    const id = Buffer.from(keyId, 'hex');
    const [privateKey] = this.findObjects(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: id },
    ]);
    const [publicKey] = this.findObjects(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_ID, value: id },
    ]);
    return { privateKey, publicKey };
  }

  /**
   * The key pair labelled `label`, completing or removing one that a crashed generate() left
   * half-made: generate() gives both halves a provisional 16-byte CKA_ID, then sets the key_id on
   * the public half and then on the private half. Dying in between leaves a pair found by label
   * but not by id; this finishes it (the public key is there, so the key_id is known), and
   * destroys a private half whose public half is missing (it can never be used: nothing knows its
   * key_id, and no manifest was ever signed by it).
   */
  private findByLabel(session: Handle, label: string): GeneratedKey | undefined {
    const found = this.findObjects(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    if (found.length > 1) {
      throw new RotorError(
        `${this.where}: ${found.length} keys are labelled ${label}`,
        'PKCS11_LABEL_AMBIGUOUS',
      );
    }
    const privates = this.findObjects(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    const halfMade = privates.filter((object) => this.objectId(session, object).length !== 32);
    if (!found[0]) {
      for (const object of halfMade) this.p11.C_DestroyObject(session, object);
      return undefined;
    }
    const publicKey = this.readPublicKey(session, found[0]);
    const keyId = keyIdOf(publicKey);
    const id = Buffer.from(keyId, 'hex');
    const publicId = this.objectId(session, found[0]);
    if (!publicId.equals(id)) {
      this.p11.C_SetAttributeValue(session, found[0], [{ type: pkcs11js.CKA_ID, value: id }]);
    }
    for (const object of halfMade) {
      const privateId = this.objectId(session, object);
      // Only the private half of this pair: it still carries the pair's provisional id.
      if (privateId.equals(publicId) || publicId.equals(id)) {
        this.p11.C_SetAttributeValue(session, object, [{ type: pkcs11js.CKA_ID, value: id }]);
      }
    }
    return { handle: this.handleFor(keyId), publicKey, keyId, label };
  }

  private objectId(session: Handle, object: Handle): Buffer {
    const [attr] = this.p11.C_GetAttributeValue(session, object, [{ type: pkcs11js.CKA_ID }]);
    return attr?.value ?? Buffer.alloc(0);
  }

  /** CKA_EC_POINT, which tokens return DER-wrapped (04 20 ‖ key) or, some of them, raw. */
  private readPublicKey(session: Handle, object: Handle): Uint8Array {
    const [point] = this.p11.C_GetAttributeValue(session, object, [{ type: pkcs11js.CKA_EC_POINT }]);
    const value = point?.value ?? Buffer.alloc(0);
    if (value.length === 34 && value[0] === 0x04 && value[1] === 0x20)
      return new Uint8Array(value.subarray(2));
    if (value.length === 32) return new Uint8Array(value);
    throw new RotorError(
      `${this.where}: CKA_EC_POINT of ${value.length} bytes is not an Ed25519 public key`,
      'PKCS11_BAD_PUBLIC_KEY',
    );
  }
}

/**
 * A copy of the message for the worker thread. An empty Buffer reaches the module as a NULL data
 * pointer, which SoftHSM refuses (CKR_ARGUMENTS_BAD); an empty view into real memory does not.
 */
function messageBuffer(message: Uint8Array): Buffer {
  return message.length === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.from(message);
}
