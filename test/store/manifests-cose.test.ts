/**
 * v0.2 manifests in the store (migration 040): the envelope bytes are the copy of record, index
 * columns come from the payload and the protected header, and the copy never changes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { examineEnvelope } from '../../src/manifest';
import {
  getManifest,
  importManifests,
  insertManifest,
  pageManifests,
  statsByVersion,
} from '../../src/store/manifests';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { sdkVectors } from './fixtures';

const VECTORS = join(import.meta.dirname, '../fixtures/vectors');
const cose = JSON.parse(readFileSync(join(VECTORS, 'reference-sdk-cose-shared.json'), 'utf8')) as {
  key: { key_id: string };
  vectors: { envelope_hex: string }[];
};
const envelopes = cose.vectors.map((v) => Uint8Array.from(Buffer.from(v.envelope_hex, 'hex')));
const upstream12 = JSON.parse(
  readFileSync(join(VECTORS, 'agent-manifest-upstream', 'AM-VEC-COSE-012.json'), 'utf8'),
).envelope_hex as string;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

// The store's mechanics, with the SDK's vectors (keys rotor's registry does not hold): stored
// unverified. The verified import has its own tests (test/store/strict-import.test.ts).
describe('manifest store: v0.2 envelopes beside v0.1 texts', () => {
  it('imports envelopes byte for byte with their index columns, next to v0.1 texts', async () => {
    const items = [
      ...envelopes.map((envelope, i) => ({ envelope, source: `cose:${i}` })),
      ...sdkVectors.manifests.slice(0, 2).map((m, i) => ({ text: m.signed_json, source: `json:${i}` })),
    ];
    const r = await importManifests(db.pool, items, { verify: 'none' });
    expect(r).toEqual({ imported: envelopes.length + 2, duplicates: 0, rejected: [] });
    for (const env of envelopes) {
      const e = examineEnvelope(env);
      const stored = await getManifest(db.pool, e.manifestId);
      expect(stored).toMatchObject({
        version: '0.2',
        text: null,
        keyId: cose.key.key_id,
        agentId: e.manifest.get('agent_id'),
        status: 'active',
      });
      expect(Buffer.from(stored!.envelope!).equals(Buffer.from(env))).toBe(true);
      expect(stored!.issuedAt!.toISOString()).toBe(
        new Date(e.manifest.get('issued_at') as string).toISOString(),
      );
    }
    const stats = await statsByVersion(db.pool);
    expect(stats).toEqual([
      { version: '0.1', status: 'active', count: 2 },
      { version: '0.2', status: 'active', count: envelopes.length },
    ]);
    const page = await pageManifests(db.pool, { version: '0.2', limit: 100 });
    expect(page.map((p) => p.version)).toEqual(envelopes.map(() => '0.2'));
  });

  it('the same envelope again is a duplicate; other bytes under the same manifest_id are refused', async () => {
    const again = await importManifests(db.pool, [{ envelope: envelopes[0]!, source: 'again' }], {
      verify: 'none',
    });
    expect(again).toEqual({ imported: 0, duplicates: 1, rejected: [] });
    // Same payload and headers, a different (unverified) signature: another copy, never stored over.
    const other = Uint8Array.from(envelopes[0]!);
    other[other.length - 1]! ^= 1;
    const r = await importManifests(db.pool, [{ envelope: other, source: 'other.cbor' }], { verify: 'none' });
    expect(r.rejected).toEqual([
      {
        source: 'other.cbor',
        reason: expect.stringMatching(/is already in the store with a different copy/),
      },
    ]);
    await expect(insertManifest(db.pool, { envelope: other })).rejects.toThrow(/different copy/);
  });

  it('refuses an envelope the v0.2 rules refuse, with the reason', async () => {
    const r = await importManifests(
      db.pool,
      [
        { envelope: Uint8Array.from(Buffer.from(upstream12, 'hex')), source: 'v12.cbor' },
        { envelope: new Uint8Array([0x84, 0x01]), source: 'junk.cbor' },
      ],
      { verify: 'none' },
    );
    expect(r.imported).toBe(0);
    expect(r.rejected[0]).toMatchObject({
      source: 'v12.cbor',
      reason: expect.stringMatching(/payload version "0\.1"/),
    });
    expect(r.rejected[1]).toMatchObject({
      source: 'junk.cbor',
      reason: expect.stringMatching(/junk\.cbor: COSE envelope: declares 4 items/),
    });
  });

  it('the copy of record is immutable and a row holds exactly one form', async () => {
    const id = examineEnvelope(envelopes[1]!).manifestId;
    await expect(
      db.pool.query(`UPDATE manifests SET envelope = '\\x00'::bytea WHERE manifest_id = $1`, [id]),
    ).rejects.toThrow(/copy of record is immutable/);
    await expect(
      db.pool.query(
        `INSERT INTO manifests (manifest_id, text, envelope, version) VALUES ('x-both', '{}', '\\x00'::bytea, '0.2')`,
      ),
    ).rejects.toThrow(/manifests_one_copy_of_record/);
    await db.pool.query(`UPDATE manifests SET status = 'superseded' WHERE manifest_id = $1`, [id]);
    expect((await getManifest(db.pool, id))!.status).toBe('superseded');
  });
});
