/**
 * The key registry: one row per signing key, its custody, and its lifecycle state. Every state
 * change goes through `transitionKey`, which checks it against one table (`assertTransition`).
 * Each function takes a Queryable so activities can run it inside their own transaction.
 */
import { RotorError, UsageError } from '../errors';
import { keyIdOf } from '../manifest/keys';
import { isUniqueViolation, type Queryable } from './queryable';

export type KeyState = 'pending' | 'active' | 'retiring' | 'retired' | 'destroyed' | 'quarantined';
export type KeyCustodyKind = 'pkcs11' | 'software';
/** signing: signs manifests; root: signs trust anchors; revocation: signs CRL records (ADR-0007). */
export type KeyRole = 'signing' | 'root' | 'revocation';

export const KEY_STATES: readonly KeyState[] = [
  'pending',
  'active',
  'retiring',
  'retired',
  'destroyed',
  'quarantined',
];

/**
 * The legal moves, and why:
 * - pending → active: the new key takes over signing. pending → quarantined: rolled back before use.
 * - active → retiring: the overlap window, old and new both trusted.
 * - active → retired: a compromise rotation has no overlap; the old key stops at once.
 * - active → quarantined: a new key rolled back after it was activated.
 * - retiring → retired: overlap over, old manifests revoked.
 * - retiring → active: rollback restores the old key (only possible before its manifests are revoked).
 * - retired → destroyed, quarantined → destroyed: the private key is removed, the public key archived.
 * Not allowed: retiring → destroyed (a key is destroyed only after its retirement is on record, so
 * the audit shows the revocation happened first), retired → active (its manifests are revoked:
 * rollback is no longer possible), and anything out of destroyed (terminal).
 */
const LEGAL: Record<KeyState, readonly KeyState[]> = {
  pending: ['active', 'quarantined'],
  active: ['retiring', 'retired', 'quarantined'],
  retiring: ['retired', 'active'],
  retired: ['destroyed'],
  quarantined: ['destroyed'],
  destroyed: [],
};

export function isLegalTransition(from: KeyState, to: KeyState): boolean {
  return LEGAL[from].includes(to);
}

/** Throws unless `from → to` is a legal move. A move to the current state is not a move (see transitionKey). */
export function assertTransition(from: KeyState, to: KeyState, keyId?: string): void {
  if (!KEY_STATES.includes(to))
    throw new UsageError(`'${to}' is not a key state (${KEY_STATES.join(', ')})`, 'KEY_STATE');
  if (isLegalTransition(from, to)) return;
  const allowed = LEGAL[from].length ? LEGAL[from].join(' or ') : 'nothing (terminal)';
  throw new RotorError(
    `${keyId ? `key ${keyId}: ` : ''}illegal key transition ${from} → ${to} (from ${from} only to ${allowed})`,
    'KEY_TRANSITION_ILLEGAL',
  );
}

export interface KeyRecord {
  keyId: string;
  identity: string;
  publicKey: Uint8Array;
  algorithm: 'Ed25519';
  custodian: KeyCustodyKind;
  handle: string;
  state: KeyState;
  role: KeyRole;
  /** The custodian's describe() at registration: where and how the private key lives. */
  description: Record<string, unknown> | null;
  createdAt: Date;
  /** When the key last entered each state (null: never). */
  activatedAt: Date | null;
  retiringAt: Date | null;
  retiredAt: Date | null;
  destroyedAt: Date | null;
  quarantinedAt: Date | null;
  /** How long the archived public key is kept; null: no limit set. */
  retentionUntil: Date | null;
}

export interface KeyTransition {
  keyId: string;
  from: KeyState | null;
  to: KeyState;
  at: Date;
}

interface KeyRow {
  key_id: string;
  identity: string;
  public_key: Buffer;
  algorithm: 'Ed25519';
  custodian: KeyCustodyKind;
  handle: string;
  state: KeyState;
  role: KeyRole;
  description: Record<string, unknown> | null;
  created_at: Date;
  activated_at: Date | null;
  retiring_at: Date | null;
  retired_at: Date | null;
  destroyed_at: Date | null;
  quarantined_at: Date | null;
  retention_until: Date | null;
}

function toRecord(row: KeyRow): KeyRecord {
  return {
    keyId: row.key_id,
    identity: row.identity,
    publicKey: new Uint8Array(row.public_key),
    algorithm: row.algorithm,
    custodian: row.custodian,
    handle: row.handle,
    state: row.state,
    role: row.role,
    description: row.description,
    createdAt: row.created_at,
    activatedAt: row.activated_at,
    retiringAt: row.retiring_at,
    retiredAt: row.retired_at,
    destroyedAt: row.destroyed_at,
    quarantinedAt: row.quarantined_at,
    retentionUntil: row.retention_until,
  };
}

export interface NewKey {
  identity: string;
  keyId: string;
  publicKey: Uint8Array;
  custodian: KeyCustodyKind;
  handle: string;
  state: 'pending' | 'active';
  /** Default `signing`. */
  role?: KeyRole;
  description?: Record<string, unknown> | object;
}

/**
 * Registers a key. Registering the same key again with the same identity, custody and handle
 * returns the existing row (a retried activity); anything else under a known key_id is an error.
 */
export async function registerKey(q: Queryable, key: NewKey): Promise<KeyRecord> {
  if (keyIdOf(key.publicKey) !== key.keyId) {
    throw new RotorError(
      `key ${key.keyId}: the public key's SHA-256 is ${keyIdOf(key.publicKey)}, so it cannot be registered under that key_id`,
      'KEY_ID_MISMATCH',
    );
  }
  if (!key.identity) throw new UsageError(`key ${key.keyId}: identity must not be empty`, 'KEY_IDENTITY');
  if (key.state !== 'pending' && key.state !== 'active') {
    throw new UsageError(
      `key ${key.keyId}: a key is registered pending or active, not ${key.state}`,
      'KEY_STATE',
    );
  }
  let rows: KeyRow[];
  try {
    ({ rows } = await q.query<KeyRow>(
      `WITH inserted AS (
         INSERT INTO signing_keys (key_id, identity, public_key, custodian, handle, state, description, activated_at, role)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 = 'active' THEN now() END, $8)
         ON CONFLICT (key_id) DO NOTHING
         RETURNING *
       ), logged AS (
         INSERT INTO signing_key_transitions (key_id, from_state, to_state, at)
         SELECT key_id, NULL, state, created_at FROM inserted
       )
       SELECT * FROM inserted`,
      [
        key.keyId,
        key.identity,
        Buffer.from(key.publicKey),
        key.custodian,
        key.handle,
        key.state,
        key.description === undefined ? null : JSON.stringify(key.description),
        key.role ?? 'signing',
      ],
    ));
  } catch (err) {
    if (isUniqueViolation(err)) throw await alreadyActive(q, key.identity, key.keyId, key.role);
    throw err;
  }
  if (rows[0]) return toRecord(rows[0]);
  const existing = await requireKey(q, key.keyId);
  const same =
    existing.identity === key.identity &&
    existing.custodian === key.custodian &&
    existing.handle === key.handle &&
    existing.role === (key.role ?? 'signing');
  if (!same) {
    throw new RotorError(
      `key ${key.keyId} is already registered (identity ${existing.identity}, ${existing.custodian} custody, state ${existing.state})`,
      'KEY_ALREADY_REGISTERED',
    );
  }
  return existing;
}

export interface TransitionOptions {
  /** When it happened; default: the database's now(). */
  at?: Date;
  /** Until when the archived public key is kept (set it when destroying). */
  retentionUntil?: Date;
}

/**
 * Moves a key to `to`. A move to the state the key is already in changes nothing and returns the
 * row, so a retried activity is safe; an illegal move throws without writing.
 */
export async function transitionKey(
  q: Queryable,
  keyId: string,
  to: KeyState,
  opts: TransitionOptions = {},
): Promise<KeyRecord> {
  // A concurrent move between the read and the guarded update is re-checked against the new state.
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await requireKey(q, keyId);
    if (current.state === to) return current;
    assertTransition(current.state, to, keyId);
    let rows: KeyRow[];
    try {
      ({ rows } = await q.query<KeyRow>(
        `WITH moved AS (
           UPDATE signing_keys SET
             state = $2,
             activated_at = CASE WHEN $2 = 'active' THEN COALESCE($3::timestamptz, now()) ELSE activated_at END,
             retiring_at = CASE WHEN $2 = 'retiring' THEN COALESCE($3::timestamptz, now())
                                WHEN $2 = 'active' THEN NULL ELSE retiring_at END,
             retired_at = CASE WHEN $2 = 'retired' THEN COALESCE($3::timestamptz, now()) ELSE retired_at END,
             destroyed_at = CASE WHEN $2 = 'destroyed' THEN COALESCE($3::timestamptz, now()) ELSE destroyed_at END,
             quarantined_at = CASE WHEN $2 = 'quarantined' THEN COALESCE($3::timestamptz, now()) ELSE quarantined_at END,
             retention_until = COALESCE($5::timestamptz, retention_until)
           WHERE key_id = $1 AND state = $4
           RETURNING *
         ), logged AS (
           INSERT INTO signing_key_transitions (key_id, from_state, to_state, at)
           SELECT key_id, $4, $2, COALESCE($3::timestamptz, now()) FROM moved
         )
         SELECT * FROM moved`,
        [keyId, to, opts.at ?? null, current.state, opts.retentionUntil ?? null],
      ));
    } catch (err) {
      if (isUniqueViolation(err)) throw await alreadyActive(q, current.identity, keyId, current.role);
      throw err;
    }
    if (rows[0]) return toRecord(rows[0]);
  }
  throw new RotorError(
    `key ${keyId}: its state kept changing underneath; try again`,
    'KEY_TRANSITION_CONTENDED',
  );
}

async function alreadyActive(
  q: Queryable,
  identity: string,
  keyId: string,
  role: KeyRole = 'signing',
): Promise<RotorError> {
  const other = role === 'root' ? undefined : await activeKey(q, identity, role);
  const what = role === 'signing' ? 'an active key' : `an active ${role} key`;
  return new RotorError(
    `key ${keyId} cannot become active: identity ${identity} already has ${what}${other ? ` (${other.keyId})` : ''}`,
    'KEY_ACTIVE_EXISTS',
  );
}

export async function getKey(q: Queryable, keyId: string): Promise<KeyRecord | undefined> {
  const { rows } = await q.query<KeyRow>('SELECT * FROM signing_keys WHERE key_id = $1', [keyId]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function requireKey(q: Queryable, keyId: string): Promise<KeyRecord> {
  const key = await getKey(q, keyId);
  if (!key) throw new RotorError(`key ${keyId} is not in the key registry`, 'KEY_UNKNOWN');
  return key;
}

/**
 * The identity's active signing key (or, given a role, its active revocation key); a partial
 * unique index guarantees there is at most one. Root keys come in sets: see `activeRootKeys`.
 */
export async function activeKey(
  q: Queryable,
  identity: string,
  role: 'signing' | 'revocation' = 'signing',
): Promise<KeyRecord | undefined> {
  const { rows } = await q.query<KeyRow>(
    "SELECT * FROM signing_keys WHERE identity = $1 AND state = 'active' AND role = $2",
    [identity, role],
  );
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function listKeys(
  q: Queryable,
  filter: { identity?: string; state?: KeyState; role?: KeyRole } = {},
): Promise<KeyRecord[]> {
  const { rows } = await q.query<KeyRow>(
    `SELECT * FROM signing_keys
     WHERE ($1::text IS NULL OR identity = $1) AND ($2::text IS NULL OR state = $2)
       AND ($3::text IS NULL OR role = $3)
     ORDER BY identity, created_at, key_id`,
    [filter.identity ?? null, filter.state ?? null, filter.role ?? null],
  );
  return rows.map(toRecord);
}

/** Every state change of a key, oldest first (registration is the first, from null). */
export async function keyTransitions(q: Queryable, keyId: string): Promise<KeyTransition[]> {
  const { rows } = await q.query<{
    key_id: string;
    from_state: KeyState | null;
    to_state: KeyState;
    at: Date;
  }>('SELECT key_id, from_state, to_state, at FROM signing_key_transitions WHERE key_id = $1 ORDER BY id', [
    keyId,
  ]);
  return rows.map((r) => ({ keyId: r.key_id, from: r.from_state, to: r.to_state, at: r.at }));
}
