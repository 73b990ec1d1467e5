import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateTrustAnchor } from '../../src/manifest';
import {
  currentTrustAnchor,
  publishTrustAnchor,
  type TrustAnchorInput,
  trustAnchorVersion,
} from '../../src/store/trust-anchors';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { newKey, oldKey, overlapAnchor } from './fixtures';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('trust anchor store', () => {
  it('publishes monotonic, immutable versions; republishing the same content is a no-op', async () => {
    expect(await currentTrustAnchor(db.pool, 'default')).toBeNull();
    const single: TrustAnchorInput = {
      activeKeyId: oldKey.keyId,
      keys: [
        {
          keyId: oldKey.keyId,
          publicKey: oldKey.publicKey,
          validFrom: '2026-01-01T00:00:00Z',
          status: 'active',
        },
      ],
    };
    const v1 = await publishTrustAnchor(db.pool, 'default', single);
    expect(v1).toMatchObject({ version: 1, published: true });
    expect(v1.document).toMatchObject({ version: 1, active_key_id: `sha256:${oldKey.keyId}` });
    expect(validateTrustAnchor(JSON.parse(v1.text))).toEqual(v1.document);
    expect(v1.etag).toMatch(/^"v1-[0-9a-f]{32}"$/);

    const retry = await publishTrustAnchor(db.pool, 'default', single);
    expect(retry).toMatchObject({ version: 1, published: false, etag: v1.etag });

    const v2 = await publishTrustAnchor(db.pool, 'default', overlapAnchor());
    expect(v2.version).toBe(2);
    expect(v2.document.keys.map((k) => k.status)).toEqual(['retiring', 'active']);
    expect(v2.document.keys[0]!.valid_until).toBe('2026-06-06T10:00:00Z');
    expect((await currentTrustAnchor(db.pool, 'default'))!.version).toBe(2);
    expect((await trustAnchorVersion(db.pool, 'default', 1))!.text).toBe(v1.text);
    expect(await currentTrustAnchor(db.pool, 'other-identity')).toBeNull();

    await expect(db.pool.query("UPDATE trust_anchors SET text = '{}'")).rejects.toThrow(/append-only/);
    await expect(db.pool.query('DELETE FROM trust_anchors')).rejects.toThrow(/append-only/);
  });

  it('refuses a bad key before writing anything', async () => {
    await expect(
      publishTrustAnchor(db.pool, 'bad', {
        activeKeyId: newKey.keyId,
        keys: [{ keyId: oldKey.keyId, publicKey: newKey.publicKey, validFrom: '2026-01-01T00:00:00Z' }],
      }),
    ).rejects.toThrow(/keys\[0\]\.key_id/);
    expect(await currentTrustAnchor(db.pool, 'bad')).toBeNull();
  });

  it('gives concurrent publishers distinct consecutive versions', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        publishTrustAnchor(db.pool, 'concurrent', {
          activeKeyId: newKey.keyId,
          keys: [
            { keyId: newKey.keyId, publicKey: newKey.publicKey, validFrom: `2026-06-0${i + 1}T00:00:00Z` },
          ],
        }),
      ),
    );
    expect(results.map((r) => r.version).sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
