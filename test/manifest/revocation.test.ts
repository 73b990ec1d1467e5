import { describe, expect, it } from 'vitest';
import {
  crlLines,
  parseTimestamp,
  publicKeyFromSeed,
  pythonIsoformat,
  readCrl,
  signRevocation,
  softwareSigner,
  verifyRevocationLine,
} from '../../src/manifest/index';
import type { Loose } from './vectors';
import { shared, testSigner, testTrustedKeys } from './vectors';

const input = {
  manifestId: 'm-1',
  reason: 'Key rotation',
  revokedBy: 'spiffe://trust.acme.co/security-team',
};

describe('revoked_at and Python isoformat (DOMAIN fact 7)', () => {
  it.each([
    ['2026-06-05T10:00:00Z', '2026-06-05T10:00:00+00:00'],
    ['2026-06-05T10:00:00.000000Z', '2026-06-05T10:00:00+00:00'],
    ['2026-06-05T10:00:00.5Z', '2026-06-05T10:00:00.500000+00:00'],
    ['2026-06-05T10:00:00.123456-05:30', '2026-06-05T10:00:00.123456-05:30'],
    ['2026-06-05T10:00:00+00:00', '2026-06-05T10:00:00+00:00'],
    ['2024-02-29T23:59:59.000001+14:00', '2024-02-29T23:59:59.000001+14:00'],
  ])('%s signs as %s', (text, iso) => {
    const ts = parseTimestamp(text);
    if (typeof ts === 'string') throw new Error(ts);
    expect(pythonIsoformat(ts)).toBe(iso);
  });

  it.each([
    '2026-06-05 10:00:00Z',
    '2026-06-05T10:00:00',
    '2026-02-30T00:00:00Z',
    '2026-06-05T24:00:00Z',
    '2026-06-05T10:00:60Z',
    '2026-06-05T10:00:00.1234567Z',
  ])('refuses %s rather than guess how Python reads it', (text) => {
    expect(typeof parseTimestamp(text)).toBe('string');
  });

  it('a Date keeps its milliseconds as microseconds', async () => {
    const { line } = await signRevocation(
      { ...input, revokedAt: new Date('2026-06-05T10:00:00.250Z') },
      testSigner,
    );
    expect(JSON.parse(line).revoked_at).toBe('2026-06-05T10:00:00.250000Z');
    expect(verifyRevocationLine(line, testTrustedKeys()).ok).toBe(true);
  });
});

describe('signRevocation / verifyRevocationLine', () => {
  it('round-trips, with the record as written', async () => {
    const { line, record } = await signRevocation(
      { ...input, revokedAt: '2026-06-05T10:35:00Z' },
      testSigner,
    );
    const verdict = verifyRevocationLine(line, testTrustedKeys());
    expect(verdict).toEqual({ ok: true, record });
    expect(Object.keys(JSON.parse(line))).toEqual([
      'manifest_id',
      'revoked_at',
      'reason',
      'revoked_by',
      'revocation_signature',
      'signer_key_id',
    ]);
  });

  it('a record signed over "Z" instead of "+00:00" is rejected (the mistake DOMAIN fact 7 warns about)', async () => {
    const { line } = await signRevocation({ ...input, revokedAt: '2026-06-05T10:35:00Z' }, testSigner);
    const rec = JSON.parse(line);
    // Re-sign the wrong pre-image by hand: the canonical form with the Z spelling.
    const wrong = Buffer.from(
      `{"manifest_id":"m-1","reason":"Key rotation","revoked_at":"2026-06-05T10:35:00Z","revoked_by":"${input.revokedBy}"}`,
    );
    rec.revocation_signature = Buffer.from(await testSigner.sign(wrong)).toString('base64url');
    const verdict = verifyRevocationLine(JSON.stringify(rec), testTrustedKeys());
    expect(verdict).toEqual({ ok: false, reason: expect.stringMatching(/does not verify/) });
  });

  it.each([
    ['tampered reason', (r: Loose) => (r.reason = 'other'), /does not verify/],
    ['tampered revoked_at', (r: Loose) => (r.revoked_at = '2026-06-05T10:35:01Z'), /does not verify/],
    ['null signature', (r: Loose) => (r.revocation_signature = null), /unsigned/],
    ['empty signature', (r: Loose) => (r.revocation_signature = ''), /unsigned/],
    ['untrusted signer', (r: Loose) => (r.signer_key_id = 'ab'.repeat(32)), /not a trusted key/],
    ['non-string manifest_id', (r: Loose) => (r.manifest_id = 5), /manifest_id is not a string/],
    ['missing revoked_by', (r: Loose) => delete r.revoked_by, /revoked_by is missing/],
    ['bad timestamp', (r: Loose) => (r.revoked_at = 'yesterday'), /revoked_at/],
    [
      'standard base64 signature',
      (r: Loose) => (r.revocation_signature = r.revocation_signature.replace(/[-_]/g, '+')),
      /base64url/,
    ],
    [
      'truncated signature',
      (r: Loose) => (r.revocation_signature = r.revocation_signature.slice(0, 80)),
      /64 bytes/,
    ],
  ])('%s is rejected with a reason', async (_name, fn, reason) => {
    const { line } = await signRevocation({ ...input, revokedAt: '2026-06-05T10:35:00Z' }, testSigner);
    const rec = JSON.parse(line);
    fn(rec);
    const verdict = verifyRevocationLine(JSON.stringify(rec), testTrustedKeys());
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(reason);
  });

  it('a record without signer_key_id is accepted when a trusted key verifies it (as the SDK loader does)', async () => {
    const { line } = await signRevocation({ ...input, revokedAt: '2026-06-05T10:35:00Z' }, testSigner);
    const rec = JSON.parse(line);
    delete rec.signer_key_id;
    const other = publicKeyFromSeed(new Uint8Array(32).fill(3));
    const keys = new Map([[softwareSigner(new Uint8Array(32).fill(3)).keyId, other], ...testTrustedKeys()]);
    expect(verifyRevocationLine(JSON.stringify(rec), keys).ok).toBe(true);
  });
});

describe('readCrl', () => {
  it('numbers lines from 1, skips blank lines, and reports each rejected line', async () => {
    const good = shared.revocations[0]!.jsonl_line;
    const text = `\n${good}\r\n   \n{"manifest_id":"x"}\n[1]\n`;
    const report = await readCrl(text, testTrustedKeys());
    expect(report.accepted).toHaveLength(1);
    expect(report.rejected).toEqual([
      { line: 4, reason: 'revoked_at is missing' },
      { line: 5, reason: 'not a JSON object' },
    ]);
  });

  it('streams a chunked byte source and rejects invalid UTF-8 per line', async () => {
    const good = Buffer.from(`${shared.revocations[1]!.jsonl_line}\n`, 'utf8');
    async function* chunks() {
      yield good.subarray(0, 17);
      yield Buffer.concat([good.subarray(17), Buffer.from([0xff, 0xfe, 0x0a])]);
      yield Buffer.from(shared.revocations[2]!.jsonl_line);
    }
    const report = await readCrl(crlLines(chunks()), testTrustedKeys());
    expect(report.accepted.map((r) => r.manifestId)).toEqual([
      '0190b6e0-0001-7000-8000-000000000001',
      '0190b6e0-0002-7000-8000-000000000002',
    ]);
    expect(report.rejected).toEqual([{ line: 2, reason: 'not valid UTF-8' }]);
  });
});
