/**
 * Each identity's anchor root key sets (TUF's root role): numbered, append-only. The keys
 * themselves are rows of the key registry with role `root`; this table says which of them form
 * set N and how many must sign.
 */
import { RotorError, UsageError } from '../errors';
import { type KeyRecord, requireKey } from './keys';
import { atomically, type Queryable } from './queryable';

export interface StoredRootSet {
  identity: string;
  rootVersion: number;
  threshold: number;
  keys: KeyRecord[];
  createdAt: Date;
}

interface RootRow {
  identity: string;
  root_version: number;
  threshold: number;
  key_ids: string[];
  created_at: Date;
}

async function toStored(q: Queryable, row: RootRow): Promise<StoredRootSet> {
  const keys: KeyRecord[] = [];
  for (const id of row.key_ids) keys.push(await requireKey(q, id));
  return {
    identity: row.identity,
    rootVersion: row.root_version,
    threshold: row.threshold,
    keys,
    createdAt: row.created_at,
  };
}

export async function currentRootSet(q: Queryable, identity: string): Promise<StoredRootSet | null> {
  const { rows } = await q.query<RootRow>(
    'SELECT * FROM anchor_roots WHERE identity = $1 ORDER BY root_version DESC LIMIT 1',
    [identity],
  );
  return rows[0] ? toStored(q, rows[0]) : null;
}

export async function rootSetVersion(
  q: Queryable,
  identity: string,
  rootVersion: number,
): Promise<StoredRootSet | null> {
  const { rows } = await q.query<RootRow>(
    'SELECT * FROM anchor_roots WHERE identity = $1 AND root_version = $2',
    [identity, rootVersion],
  );
  return rows[0] ? toStored(q, rows[0]) : null;
}

/** Records the next root set of `identity`: its keys must be registered root keys of the identity. */
export async function addRootSet(
  q: Queryable,
  identity: string,
  threshold: number,
  keyIds: string[],
): Promise<StoredRootSet> {
  if (keyIds.length === 0) throw new UsageError(`identity ${identity}: a root set needs at least one key`);
  if (new Set(keyIds).size !== keyIds.length)
    throw new UsageError(`identity ${identity}: a root set lists a key twice`);
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > keyIds.length) {
    throw new UsageError(
      `identity ${identity}: root threshold ${threshold} must be between 1 and ${keyIds.length} (the number of root keys)`,
      'ROOT_THRESHOLD',
    );
  }
  return atomically(q, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('rotor.anchor_roots:' || $1, 0))", [
      identity,
    ]);
    for (const id of keyIds) {
      const key = await requireKey(client, id);
      if (key.role !== 'root' || key.identity !== identity) {
        throw new RotorError(
          `key ${id} is a ${key.role} key of identity ${key.identity}, not a root key of ${identity}`,
          'ROOT_KEY_ROLE',
        );
      }
    }
    const { rows } = await client.query<RootRow>(
      `INSERT INTO anchor_roots (identity, root_version, threshold, key_ids)
       SELECT $1, COALESCE(max(root_version), 0) + 1, $2, $3 FROM anchor_roots WHERE identity = $1
       RETURNING *`,
      [identity, threshold, keyIds],
    );
    return toStored(client, rows[0]!);
  });
}
