/**
 * rotor's reference verifier refreshing the CRL incrementally from a real `rotor serve` over
 * Postgres: one full list, then deltas after its CRL-Head; each record downloaded once however
 * revocations interleave; the full list again when compaction passed its position; a delta with
 * a record that does not verify refused whole; and a compacted record's manifest refused as
 * expired, never VALID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Signer, signManifest, signRevocation, softwareSigner } from '../../src/manifest';
import { insertManifest } from '../../src/store/manifests';
import { appendRevocations, compactCrl, crlHead, type RevocationInput } from '../../src/store/revocations';
import { publishTrustAnchor } from '../../src/store/trust-anchors';
import { ReferenceVerifier } from '../../src/verifier/reference-verifier';
import { pinnedRootOf, testAnchorSigning } from '../helpers/anchor-signing';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { type RotorServe, startRotorServe } from '../helpers/rotor-serve';
import { validUnsigned } from '../manifest/vectors';

const TOKEN = 'check-in-token-for-tests';
const DAY = 24 * 3600 * 1000;
const keyA = softwareSigner(new Uint8Array(32).fill(31));
const stranger = softwareSigner(new Uint8Array(32).fill(32));
const rootKey = softwareSigner(new Uint8Array(32).fill(33));
const root = pinnedRootOf([rootKey]);

let db: TestDatabase;
let serve: RotorServe;
// The verifiers' clock: real time, moved past the CRL's 30 s max-age between refreshes.
let clockMs = Date.now();
const now = () => new Date(clockMs);

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
let seq = 0;
async function manifest(expiresAtMs: number): Promise<{ id: string; text: string }> {
  seq++;
  const id = `0190b6e6-0000-7000-8000-${seq.toString(16).padStart(12, '0')}`;
  const unsigned = JSON.stringify(
    validUnsigned({
      manifest_id: id,
      agent_id: `spiffe://trust.example/agent/d${seq}`,
      issued_at: iso(Date.now() - 60 * DAY),
      expires_at: iso(expiresAtMs),
    }),
  );
  const { text } = await signManifest(unsigned, keyA, { signedAt: new Date(Date.now() - 30 * DAY) });
  await insertManifest(db.pool, { text });
  return { id, text };
}

async function revocation(manifestId: string, by: Signer = keyA): Promise<RevocationInput> {
  const { line, record } = await signRevocation(
    { manifestId, reason: 'test', revokedBy: 'spiffe://trust.example/security-team', revokedAt: new Date() },
    by,
  );
  return { manifestId, line, signerKeyId: by.keyId, revokedAt: record.revokedAt };
}

function verifier(id: string, incrementalCrl = true): ReferenceVerifier {
  return new ReferenceVerifier({
    id,
    baseUrl: serve.baseUrl,
    checkInToken: TOKEN,
    root,
    now,
    incrementalCrl,
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  await publishTrustAnchor(
    db.pool,
    'default',
    {
      activeKeyId: keyA.keyId,
      keys: [{ keyId: keyA.keyId, publicKey: keyA.publicKey, validFrom: '2026-01-01T00:00:00Z' }],
    },
    testAnchorSigning([rootKey]),
  );
  serve = await startRotorServe(db.url, { ROTOR_CHECKIN_TOKEN: TOKEN });
});

afterAll(async () => {
  await serve?.stop();
  await db?.drop();
});

describe('incremental CRL refresh', () => {
  it('downloads each record once while revocations commit concurrently', async () => {
    const v = verifier('delta');
    const full = verifier('full-each-time', false);
    await v.refresh();
    await full.refresh();
    expect(v.crlHead).toBe(0);

    // Four writers, each committing batches of signed records with a pause inside the
    // transaction, while both verifiers poll.
    const ids = Array.from({ length: 4 }, (_, w) =>
      Array.from({ length: 5 }, (_, b) =>
        Array.from(
          { length: 15 },
          (_, i) => `0190b6e7-0000-7000-8000-${String(w * 1000 + b * 100 + i).padStart(12, '0')}`,
        ),
      ),
    );
    const lines: string[] = [];
    let writing = true;
    const writers = Promise.all(
      ids.map(async (batches) => {
        for (const batch of batches) {
          const records = await Promise.all(batch.map((id) => revocation(id)));
          lines.push(...records.map((r) => r.line));
          const client = await db.pool.connect();
          try {
            await client.query('BEGIN');
            await appendRevocations(client, records);
            await client.query('SELECT pg_sleep(0.01)');
            await client.query('COMMIT');
          } finally {
            client.release();
          }
        }
      }),
    ).finally(() => {
      writing = false;
    });
    let polls = 0;
    while (writing || polls === 0) {
      clockMs += 31_000;
      await v.refresh();
      await full.refresh();
      polls++;
    }
    await writers;
    clockMs += 31_000;
    await v.refresh();
    await full.refresh();

    expect(v.revokedCount).toBe(300);
    expect(full.revokedCount).toBe(300);
    expect(v.crlRejectedCount).toBe(0);
    expect(v.crlHead).toBe((await crlHead(db.pool)).head);
    // Every record came down exactly once (its line and newline), however the commits interleaved.
    const recordBytes = lines.reduce((sum, l) => sum + Buffer.byteLength(l) + 1, 0);
    expect(v.crlTraffic.bytes).toBe(recordBytes);
    expect(v.crlTraffic.requests).toBe(polls + 2);
    expect(full.crlTraffic.bytes).toBeGreaterThan(recordBytes);
  });

  it('falls back to the full list after compaction; an expired, compacted manifest is EXPIRED, never VALID', async () => {
    const expired = await manifest(Date.now() - 2 * DAY);
    const inForce = await manifest(Date.now() + 30 * DAY);
    const v = verifier('compaction');
    await v.refresh();
    const held = v.revokedCount;
    await appendRevocations(db.pool, [await revocation(expired.id), await revocation(inForce.id)]);
    clockMs += 31_000;
    await v.refresh();
    expect(v.revokedCount).toBe(held + 2);
    expect(v.verify(expired.text).result).toBe('REVOKED');
    expect(v.verify(inForce.text).result).toBe('REVOKED');

    const compaction = await compactCrl(db.pool, { actor: 'test' });
    expect(compaction.compacted).toBe(1);
    const before = v.crlTraffic.requests;
    clockMs += 31_000;
    await v.refresh();
    // The delta answered 410, and the full list followed in the same refresh.
    expect(v.crlTraffic.requests).toBe(before + 2);
    expect(v.crlHead).toBe(compaction.horizon);
    expect(v.revokedCount).toBe(held + 1);
    // The record is gone from what the verifier holds; its own expiry check refuses the manifest.
    expect(v.verify(expired.text)).toMatchObject({ result: 'EXPIRED', keyId: keyA.keyId });
    expect(v.verify(inForce.text).result).toBe('REVOKED');
  });

  it('refuses a delta holding a record that does not verify, whole, then reads the full list', async () => {
    const forgedFor = await manifest(Date.now() + 30 * DAY);
    const genuineFor = await manifest(Date.now() + 30 * DAY);
    const v = verifier('refusal');
    await v.refresh();
    const head = v.crlHead;
    const held = v.revokedCount;
    expect(v.verify(genuineFor.text).result).toBe('VALID');

    // One record signed by a key the anchor does not list, one genuine, in one delta.
    await appendRevocations(db.pool, [
      await revocation(forgedFor.id, stranger),
      await revocation(genuineFor.id),
    ]);
    clockMs += 31_000;
    await expect(v.refresh()).rejects.toThrow(/refused whole, 1 of 2 records do not verify/);
    // Nothing of it was taken: not even the genuine record, and the position stays.
    expect(v.crlHead).toBe(head);
    expect(v.revokedCount).toBe(held);
    expect(v.verify(genuineFor.text).result).toBe('VALID');

    // The next refresh reads the full list, where each line stands or falls alone.
    await v.refresh();
    expect(v.crlHead).toBe((await crlHead(db.pool)).head);
    expect(v.crlRejectedCount).toBe(1);
    expect(v.revokedCount).toBe(held + 1);
    expect(v.verify(genuineFor.text).result).toBe('REVOKED');
    expect(v.verify(forgedFor.text).result).toBe('VALID');
  });
});
