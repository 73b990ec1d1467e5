import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  b64urlDecode,
  checkManifestSignature,
  isJsonObject,
  parseJson,
  softwareSigner,
  verifyManifest,
} from '../../src/manifest';
import { inTransaction } from '../../src/store/db';
import {
  countManifests,
  getManifest,
  importManifests,
  insertManifest,
  pageManifests,
  setStatus,
  statsByKey,
  successorOf,
} from '../../src/store/manifests';
import { appendRevocations } from '../../src/store/revocations';
import { syntheticManifests } from '../../src/synthetic/manifests';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { sdkVectors, syntheticRevocation } from './fixtures';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const signer = softwareSigner(b64urlDecode(sdkVectors.key.seed_b64url));
const now = new Date('2026-06-05T10:00:00Z');

async function collect(n: number, seed: number): Promise<string[]> {
  const out: string[] = [];
  for await (const text of syntheticManifests(n, signer, { now, seed })) out.push(text);
  return out;
}

/** A manifest text that a JSON.parse/JSON.stringify round trip, or jsonb, would change. */
function numberHeavy(id: string, extra = ''): string {
  return (
    `{"manifest_id":"${id}",  "agent_id": "spiffe://t/agent/n", "issued_at": "2026-01-01T00:00:00Z",` +
    ` "expires_at": "2099-01-01T00:00:00Z", "data_scope": {"z": 1e16, "a": 1.0, "big": 12345678901234567890,` +
    ` "neg": -0.0, "tiny": 2.5e-05}${extra}, "signature": {"key_id": "${'c'.repeat(64)}"}}`
  );
}

// The store's mechanics, with the SDK's vectors (keys rotor's registry does not hold): stored
// unverified. The verified import has its own tests (test/store/strict-import.test.ts).
describe('manifest store', () => {
  it('imports mixed good and bad records, naming each bad one by its source', async () => {
    const good = await collect(3, 1);
    const items = [
      { text: good[0]!, source: 'batch.jsonl:1' },
      { text: '{"manifest_id": "x", ', source: 'batch.jsonl:2' },
      { text: good[1]!, source: 'batch.jsonl:3' },
      { text: '{"agent_id": "spiffe://t/agent/no-id"}', source: 'batch.jsonl:4' },
      { text: numberHeavy('bad-time').replace('2026-01-01T00:00:00Z', 'yesterday'), source: 'batch.jsonl:5' },
      { text: good[1]!, source: 'batch.jsonl:6' },
      { text: good[2]!, source: 'batch.jsonl:7' },
      { text: '[1, 2]', source: 'batch.jsonl:8' },
    ];
    const result = await importManifests(db.pool, items, { verify: 'none' });
    expect(result.imported).toBe(3);
    expect(result.duplicates).toBe(1);
    expect(result.rejected.map((r) => r.source)).toEqual([
      'batch.jsonl:2',
      'batch.jsonl:4',
      'batch.jsonl:5',
      'batch.jsonl:8',
    ]);
    expect(result.rejected[0]!.reason).toMatch(/^batch\.jsonl:2: .*line 1/);
    expect(result.rejected[1]!.reason).toMatch(/manifest_id/);
    expect(result.rejected[2]!.reason).toMatch(/issued_at/);
    for (const r of result.rejected) expect(r.reason).not.toMatch(/\n|\s{2}at /);

    // Importing the same manifests again is a no-op; the same id with other text is refused.
    const again = await importManifests(db.pool, items.slice(0, 1), { verify: 'none' });
    expect(again).toEqual({ imported: 0, duplicates: 1, rejected: [] });
    const altered = good[0]!.replace('"version": "0.1"', '"version": "0.1" ');
    const conflict = await importManifests(db.pool, [{ text: altered, source: 'other.jsonl:9' }], {
      verify: 'none',
    });
    expect(conflict.rejected).toEqual([
      { source: 'other.jsonl:9', reason: expect.stringMatching(/never overwritten/) },
    ]);
    const id = JSON.parse(good[0]!).manifest_id;
    expect((await getManifest(db.pool, id))!.text).toBe(good[0]);
  });

  it('keeps every byte of the text: number forms, spacing, key order', async () => {
    const text = numberHeavy('0190b6e0-0000-7000-8000-0000000000aa');
    expect(await importManifests(db.pool, [{ text, source: 'n.json' }], { verify: 'none' })).toMatchObject({
      imported: 1,
    });
    const stored = await getManifest(db.pool, '0190b6e0-0000-7000-8000-0000000000aa');
    expect(stored!.text).toBe(text);
    expect(stored!.text).toContain('1e16');
    expect(stored!.text).toContain('"a": 1.0');
    expect(stored!.text).toContain('12345678901234567890');
    expect(stored!.keyId).toBe('c'.repeat(64));
    expect(stored!.issuedAt!.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    const page = await pageManifests(db.pool, { keyId: 'c'.repeat(64), limit: 10 });
    expect(page).toEqual([
      {
        manifestId: '0190b6e0-0000-7000-8000-0000000000aa',
        storedAt: expect.any(Date),
        version: '0.1',
        text,
        envelope: null,
        keyId: 'c'.repeat(64),
      },
    ]);
    // The SDK vectors' signed manifests round-trip and still verify from the stored text.
    const sdk = sdkVectors.manifests.map((m, i) => ({ text: m.signed_json, source: `sdk:${i}` }));
    expect((await importManifests(db.pool, sdk, { verify: 'none' })).imported).toBe(sdk.length);
    const trusted = new Map([[signer.keyId, signer.publicKey]]);
    for (const m of sdkVectors.manifests) {
      const back = await getManifest(db.pool, JSON.parse(m.signed_json).manifest_id);
      expect(back!.text).toBe(m.signed_json);
      const root = parseJson(back!.text!);
      expect(isJsonObject(root) && checkManifestSignature(root, trusted).ok).toBe(true);
    }
  });

  it('pages by manifest_id (keyset), counts and reports stats by key and status', async () => {
    const texts = await collect(57, 2);
    await importManifests(
      db.pool,
      texts.map((text, i) => ({ text, source: `seed:${i}` })),
    );
    const all = await countManifests(db.pool, { keyId: signer.keyId, status: 'active' });
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await pageManifests(db.pool, {
        keyId: signer.keyId,
        status: 'active',
        afterManifestId: after,
        limit: 10,
      });
      if (page.length === 0) break;
      seen.push(...page.map((p) => p.manifestId));
      after = page[page.length - 1]!.manifestId;
    }
    expect(seen.length).toBe(all);
    expect([...seen].sort()).toEqual(seen);
    expect(new Set(seen).size).toBe(seen.length);

    const toRetire = seen.slice(0, 5);
    expect(await setStatus(db.pool, toRetire, 'superseded')).toBe(5);
    expect(await setStatus(db.pool, toRetire, 'superseded')).toBe(0);
    expect(await countManifests(db.pool, { keyId: signer.keyId, status: 'active' })).toBe(all - 5);
    const stats = await statsByKey(db.pool);
    expect(stats).toContainEqual({ keyId: signer.keyId, status: 'superseded', count: 5 });
    expect(stats).toContainEqual({ keyId: signer.keyId, status: 'active', count: all - 5 });
  });

  it('allows one twin per manifest and is idempotent for the same twin', async () => {
    const pred = '0190b6e0-0000-7000-8000-0000000000b0';
    await insertManifest(db.pool, { text: numberHeavy(pred) });
    const twinText = numberHeavy(
      '0190b6e0-0000-7000-8000-0000000000b1',
      `, "previous_manifest_id": "${pred}"`,
    );
    expect(await insertManifest(db.pool, { text: twinText })).toEqual({
      inserted: true,
      manifestId: '0190b6e0-0000-7000-8000-0000000000b1',
      previousManifestId: pred,
    });
    expect((await insertManifest(db.pool, { text: twinText })).inserted).toBe(false);
    expect((await successorOf(db.pool, pred))!.manifestId).toBe('0190b6e0-0000-7000-8000-0000000000b1');

    const second = numberHeavy('0190b6e0-0000-7000-8000-0000000000b2');
    // A failed insert inside the caller's transaction leaves that transaction usable.
    await inTransaction(db.pool, async (c) => {
      await expect(insertManifest(c, { text: second, previousManifestId: pred })).rejects.toMatchObject({
        code: 'MANIFEST_TWIN_EXISTS',
      });
      await c.query('SELECT 1');
    });
    await expect(insertManifest(db.pool, { text: twinText.replace('1e16', '1E16') })).rejects.toMatchObject({
      code: 'MANIFEST_CONFLICT',
    });
    await expect(
      db.pool.query("UPDATE manifests SET text = '{}' WHERE manifest_id = $1", [pred]),
    ).rejects.toThrow(/immutable/);
  });

  it('a status change runs no immutability check; an UPDATE naming the copy of record does', async () => {
    // Migration 086: the check is a per-row PL/pgSQL trigger, and a rotation changes the status of
    // every manifest it touches twice. Postgres counts the function's calls in this transaction.
    const id = '0190b6e0-0000-7000-8000-0000000000d0';
    expect((await insertManifest(db.pool, { text: numberHeavy(id) })).inserted).toBe(true);
    await inTransaction(db.pool, async (c) => {
      await c.query("SET LOCAL track_functions = 'pl'");
      const calls = async () => {
        const { rows } = await c.query<{ n: string }>(
          "SELECT coalesce(pg_stat_get_xact_function_calls('manifests_text_is_immutable'::regproc), 0) AS n",
        );
        return Number(rows[0]!.n);
      };
      expect(await setStatus(c, [id], 'superseded')).toBe(1);
      expect(await calls()).toBe(0);
      // Naming the text (unchanged) runs the check, which lets an unchanged copy through.
      await c.query('UPDATE manifests SET text = text WHERE manifest_id = $1', [id]);
      expect(await calls()).toBe(1);
    });
    expect((await getManifest(db.pool, id))!.status).toBe('superseded');
  });

  it('imports a manifest the CRL already names as revoked', async () => {
    const id = '0190b6e0-0000-7000-8000-0000000000c0';
    await appendRevocations(db.pool, [syntheticRevocation(id)]);
    await importManifests(db.pool, [{ text: numberHeavy(id), source: 'r.json' }], { verify: 'none' });
    expect((await getManifest(db.pool, id))!.status).toBe('revoked');
  });

  it('generates synthetic manifests that verify and vary', async () => {
    const texts = await collect(40, 3);
    const trusted = new Map([[signer.keyId, signer.publicKey]]);
    for (const t of texts) expect(verifyManifest(t, { trustedKeys: trusted, now }).result).toBe('VALID');
    expect(texts.some((t) => t.includes('"attestation"'))).toBe(true);
    expect(texts.some((t) => t.includes('"transparency_log_entry"'))).toBe(true);
    expect(texts.some((t) => /\d{20}/.test(t))).toBe(true);
    expect(new Set(texts.map((t) => JSON.parse(t).agent_id)).size).toBeGreaterThan(10);
  });
});
