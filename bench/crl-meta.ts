/**
 * What signing the CRL's header costs the worker (issue 12 point 2): the first digest of a process
 * reads the whole served CRL from one snapshot and hashes it (src/store/crl-meta.ts); after each
 * revoke batch only the batch's lines are read and the hash state carried on; then one JWS is
 * signed. Here: a fresh database with N records, the full digest, then `--runs` batches of
 * `--batch` records appended and the digest after each, and the header signed and stored (a
 * software revocation key) through the same function the activities call.
 *
 *   node --import tsx bench/crl-meta.ts [--records 100000] [--runs 3] [--batch 500]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { signCrlHeaders } from '../src/activities/crl-meta';
import { initIdentity } from '../src/activities/identity';
import { loadConfig } from '../src/config';
import { openSoftwareCustodian } from '../src/custody';
import { crlDigest } from '../src/store/crl-meta';
import { connect } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { databaseUrlFor } from '../test/helpers/db-admin';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const n = i === -1 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a whole number >= 1`);
  return n;
}

const records = arg('records', 100_000);
const runs = arg('runs', 3);
const batch = arg('batch', 500);
const name = `rotor_bench_crlmeta_${randomBytes(3).toString('hex')}`;
const url = databaseUrlFor(loadConfig().databaseUrl, name);
const admin = await connect(loadConfig().databaseUrl, 1);
await admin.query(`CREATE DATABASE ${name}`);
const pool = await connect(url, 2);
const dir = mkdtempSync(join(tmpdir(), 'rotor-bench-crlmeta-'));
const custodian = await openSoftwareCustodian({ dir });
try {
  await migrate(pool);
  await initIdentity(pool, custodian, 'bench', 'bench', { crlMetaLifetimeSeconds: 3600 });
  const keyId = 'ab'.repeat(32);
  // Lines of a realistic size (~420 bytes); their signatures are not checked by the digest.
  const append = (from: number, count: number) =>
    pool.query(
      `INSERT INTO revocations (manifest_id, line, signer_key_id, revoked_at)
       SELECT id, json_build_object('manifest_id', id, 'revoked_at', '2026-06-05T10:00:00Z',
                'reason', 'Key rotation - old key_id=' || $3, 'revoked_by', 'spiffe://trust.example/security-team',
                'revocation_signature', repeat('A', 86), 'signer_key_id', $3)::text, $3, '2026-06-05T10:00:00Z'
         FROM (SELECT '0190b6e4-0000-7000-8000-' || lpad(g::text, 12, '0') AS id FROM generate_series($1::int, $2::int) g) s`,
      [from, from + count - 1, keyId],
    );
  await append(1, records);
  const { rows } = await pool.query<{ n: string }>('SELECT sum(length(line) + 1) AS n FROM revocations');
  const bytes = Number(rows[0]!.n);
  let t = performance.now();
  const full = await crlDigest(pool);
  const fullMs = performance.now() - t;
  if (full.records !== records) throw new Error(`digest read ${full.records} records, expected ${records}`);
  const incremental: number[] = [];
  let total = records;
  for (let i = 0; i < runs; i++) {
    await append(total + 1, batch);
    total += batch;
    t = performance.now();
    const d = await crlDigest(pool);
    incremental.push(performance.now() - t);
    if (d.records !== total) throw new Error(`digest read ${d.records} records, expected ${total}`);
  }
  t = performance.now();
  const [signed] = await signCrlHeaders(pool, async () => custodian, { lifetimeSeconds: 3600 });
  const signMs = performance.now() - t;
  if (!signed?.signed || signed.records !== total) throw new Error('the header was not signed');
  console.log(
    JSON.stringify({
      records,
      body_mib: Math.round((bytes / 1024 / 1024) * 10) / 10,
      full_digest_ms: Math.round(fullMs),
      batch,
      digest_after_batch_ms: incremental.map(Math.round),
      sign_and_store_ms: Math.round(signMs),
      cores: cpus().length,
      load_1m: Math.round(loadavg()[0]! * 10) / 10,
    }),
  );
} finally {
  await custodian.close();
  rmSync(dir, { recursive: true, force: true });
  await pool.end();
  await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.end();
}
