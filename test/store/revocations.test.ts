import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crlDigest, storeCrlMeta } from '../../src/store/crl-meta';
import { inTransaction } from '../../src/store/db';
import {
  appendRevocations,
  countRevocations,
  crlHeaderPath,
  getRevocation,
  publishCrlToFile,
  type RevocationInput,
  streamRevocationLines,
} from '../../src/store/revocations';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { sdkRevocation, syntheticRevocation } from './fixtures';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('revocation store', () => {
  it('stores the SDK line byte for byte and is idempotent per manifest_id', async () => {
    const record = sdkRevocation();
    expect(await appendRevocations(db.pool, [record])).toEqual({ inserted: 1, existing: 0 });
    const stored = await getRevocation(db.pool, record.manifestId);
    expect(stored?.line).toBe(record.line);

    // A second record for the same manifest_id never replaces the first.
    const other = syntheticRevocation(record.manifestId, 'a different reason');
    expect(await appendRevocations(db.pool, [other, record])).toEqual({ inserted: 0, existing: 2 });
    expect((await getRevocation(db.pool, record.manifestId))?.line).toBe(record.line);
    expect(await countRevocations(db.pool)).toBe(1);
  });

  it('refuses a record whose columns disagree with its line, writing nothing', async () => {
    const good = syntheticRevocation('0190b6e0-0000-7000-8000-00000000aaaa');
    const bad: RevocationInput = {
      ...syntheticRevocation('0190b6e0-0000-7000-8000-00000000bbbb'),
      signerKeyId: 'ff'.repeat(32),
    };
    await expect(appendRevocations(db.pool, [good, bad])).rejects.toThrow(/record 1 .*signer_key_id/);
    await expect(appendRevocations(db.pool, [{ ...good, line: `${good.line}\n{}` }])).rejects.toThrow(
      /line break/,
    );
    expect(await getRevocation(db.pool, good.manifestId)).toBeNull();
  });

  it('rolls back with the caller', async () => {
    const r = syntheticRevocation('0190b6e0-0000-7000-8000-00000000cccc');
    await expect(
      inTransaction(db.pool, async (c) => {
        await appendRevocations(c, [r]);
        throw new Error('caller fails');
      }),
    ).rejects.toThrow('caller fails');
    expect(await getRevocation(db.pool, r.manifestId)).toBeNull();
  });

  it('streams every line in publication order and publishes the same bytes to a file', async () => {
    const before = await countRevocations(db.pool);
    const batch = Array.from({ length: 4321 }, (_, i) =>
      syntheticRevocation(`0190b6e1-0000-7000-8000-${String(i).padStart(12, '0')}`),
    );
    expect(await appendRevocations(db.pool, batch)).toEqual({ inserted: 4321, existing: 0 });
    expect(await countRevocations(db.pool)).toBe(before + 4321);
    const lines: string[] = [];
    for await (const line of streamRevocationLines(db.pool)) lines.push(line);
    expect(lines.length).toBe(before + 4321);
    expect(lines.slice(before)).toEqual(batch.map((r) => r.line));

    const dir = await mkdtemp(join(tmpdir(), 'rotor-crl-'));
    try {
      const path = join(dir, 'revocation');
      const result = await publishCrlToFile(db.pool, path);
      expect(result.records).toBe(lines.length);
      const text = await readFile(path, 'utf8');
      expect(text).toBe(`${lines.join('\n')}\n`);
      expect(result.bytes).toBe(Buffer.byteLength(text));
      expect(await readdir(dir)).toEqual(['revocation']);
      await expect(publishCrlToFile(db.pool, join(dir, 'missing', 'revocation'))).rejects.toThrow(
        /cannot publish the CRL to .*missing/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("writes the identity's signed header for exactly the body beside the file, and never one for another body", async () => {
    const identity = 'static-host';
    const dir = await mkdtemp(join(tmpdir(), 'rotor-crl-header-'));
    const path = join(dir, 'revocation');
    const header = (seq: number, records: number, sha256: string, jws: string) =>
      storeCrlMeta(db.pool, {
        identity,
        seq,
        records,
        sha256,
        issuedAt: new Date(),
        nextUpdate: new Date(Date.now() + 3_600_000),
        signerKeyId: 'a'.repeat(64),
        jws,
      });
    try {
      // No header was ever signed for the identity (no revocation key): the body alone.
      expect((await publishCrlToFile(db.pool, path, { identity })).header).toBe('none');
      expect(await readdir(dir)).toEqual(['revocation']);

      // The header the worker signed for the current body: copied beside it byte for byte.
      const digest = await crlDigest(db.pool);
      await header(digest.seq, digest.records, digest.sha256, '{"jws":"for the body at its head"}');
      const written = await publishCrlToFile(db.pool, path, { identity });
      expect(written).toMatchObject({ header: 'written', head: digest.seq, records: digest.records });
      expect(await readFile(crlHeaderPath(path), 'utf8')).toBe('{"jws":"for the body at its head"}');
      expect(crlHeaderPath(path)).toBe(join(dir, 'revocation.meta.jws'));

      // A record no header describes yet: the body moves on, the header beside it stays as it was.
      await appendRevocations(db.pool, [syntheticRevocation('0190b6e1-0000-7000-8000-00000000beef')]);
      const behind = await publishCrlToFile(db.pool, path, { identity });
      expect(behind).toMatchObject({ header: 'behind', records: digest.records + 1 });
      expect(behind.head).toBeGreaterThan(digest.seq);
      expect(await readFile(crlHeaderPath(path), 'utf8')).toBe('{"jws":"for the body at its head"}');
      const body = await readFile(path, 'utf8');

      // A stored header that does not describe the body read: nothing is published.
      await header(behind.head, behind.records, 'f'.repeat(64), '{"jws":"for another body"}');
      await expect(publishCrlToFile(db.pool, path, { identity })).rejects.toThrow(
        new RegExp(
          `^the signed CRL header of static-host at seq ${behind.head} describes ${behind.records} records \\(sha256 ffffffffffffffff…\\), not the ${behind.records} written \\(sha256 [0-9a-f]{16}…\\): nothing published$`,
        ),
      );
      expect(await readFile(path, 'utf8')).toBe(body);
      expect(await readFile(crlHeaderPath(path), 'utf8')).toBe('{"jws":"for the body at its head"}');
      expect((await readdir(dir)).sort()).toEqual(['revocation', 'revocation.meta.jws']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
