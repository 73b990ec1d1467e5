/**
 * Bytes a verifier downloads while a revocation is published, full list against deltas (issue 15).
 * A real `rotor serve` over a fresh Postgres database; signed records are appended in batches
 * (one transaction each) and, every `--poll-every` records, two verifiers poll the CRL:
 *
 *   before: the full list whenever its ETag changed (GET with If-None-Match), which is what every
 *           verifier did before deltas; the body is counted, not parsed.
 *   after:  rotor's ReferenceVerifier refreshing by deltas (`?since=<CRL-Head>`), verifying every
 *           record's signature as it arrives; at the end it must hold exactly the records served.
 *
 * `--poll-every K` stands for a poll interval: at R revocations/s a 30 s poll sees K = 30·R new
 * records. `--existing N` puts N records in the CRL before the revocation (earlier rotations), of
 * which `--expired` have manifests past expires_at, compacted (`rotor crl compact`) before the run.
 *
 *   node --import tsx bench/crl-delta.ts [--records 100000] [--poll-every 10000] [--batch 1000]
 *                                        [--existing 0] [--expired 0] [--json]
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { loadConfig } from '../src/config';
import { type Signer, signRevocation, softwareSigner } from '../src/manifest';
import { connect, type Pool } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { appendRevocations, compactCrl, crlHead, type RevocationInput } from '../src/store/revocations';
import { publishTrustAnchor } from '../src/store/trust-anchors';
import { ReferenceVerifier } from '../src/verifier/reference-verifier';
import { pinnedRootOf, testAnchorSigning } from '../test/helpers/anchor-signing';
import { databaseUrlFor } from '../test/helpers/db-admin';
import { startRotorServe } from '../test/helpers/rotor-serve';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const n = i === -1 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number`);
  return n;
}

const records = arg('records', 100_000);
const pollEvery = Math.max(1, arg('poll-every', 10_000));
const batch = arg('batch', 1000);
const existing = arg('existing', 0);
const expired = Math.min(arg('expired', 0), existing);
const json = process.argv.includes('--json');
const CRL = '/.well-known/agent-manifest/revocation';

const key = softwareSigner(randomBytes(32));
const rootKey = softwareSigner(randomBytes(32));

async function signed(prefix: string, from: number, count: number, by: Signer): Promise<RevocationInput[]> {
  const revokedAt = new Date();
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const manifestId = `0190b6e8-${prefix}-7000-8000-${String(from + i).padStart(12, '0')}`;
      const { line, record } = await signRevocation(
        {
          manifestId,
          reason: `Key rotation - old key_id=${'ab'.repeat(32)}`,
          revokedBy: 'spiffe://trust.example/security-team',
          revokedAt,
        },
        by,
      );
      return { manifestId, line, signerKeyId: by.keyId, revokedAt: record.revokedAt };
    }),
  );
}

/** The pre-delta verifier's traffic: the whole list whenever the ETag moved. */
class FullListPoller {
  bytes = 0;
  requests = 0;
  #etag: string | undefined;
  constructor(readonly url: string) {}
  async poll(): Promise<void> {
    this.requests++;
    const res = await fetch(this.url, { headers: this.#etag ? { 'If-None-Match': this.#etag } : {} });
    if (res.status === 304) return;
    if (res.status !== 200) throw new Error(`GET ${this.url} answered ${res.status}`);
    this.#etag = res.headers.get('etag') ?? undefined;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
      this.bytes += chunk.byteLength;
  }
}

const name = `rotor_bench_crldelta_${randomBytes(3).toString('hex')}`;
const url = databaseUrlFor(loadConfig().databaseUrl, name);
const admin = await connect(loadConfig().databaseUrl, 1);
await admin.query(`CREATE DATABASE ${name}`);
const pool: Pool = await connect(url, 4);
const loadBefore = loadavg();
try {
  await migrate(pool);
  await publishTrustAnchor(
    pool,
    'default',
    {
      activeKeyId: key.keyId,
      keys: [{ keyId: key.keyId, publicKey: key.publicKey, validFrom: '2026-01-01T00:00:00Z' }],
    },
    testAnchorSigning([rootKey]),
  );
  // Earlier rotations' records; `expired` of them name manifests past expires_at (+ the margin).
  for (let i = 0; i < existing; i += 10_000) {
    const part = await signed('0001', i, Math.min(10_000, existing - i), key);
    await appendRevocations(pool, part);
  }
  if (expired > 0) {
    await pool.query(
      `INSERT INTO manifests (manifest_id, key_id, expires_at, status, text)
       SELECT manifest_id, $2, now() - interval '2 days', 'revoked', '{}'
         FROM revocations ORDER BY seq LIMIT $1`,
      [expired, key.keyId],
    );
    await compactCrl(pool, { actor: 'bench' });
  }
  const serve = await startRotorServe(url, { ROTOR_CHECKIN_TOKEN: 'bench', ROTOR_LOG_LEVEL: 'warn' });
  try {
    let clockMs = Date.now();
    const after = new ReferenceVerifier({
      id: 'bench-delta',
      baseUrl: serve.baseUrl,
      checkInToken: 'bench',
      root: pinnedRootOf([rootKey]),
      now: () => new Date(clockMs),
      maxCrlBytes: 2 ** 31 - 1,
    });
    const before = new FullListPoller(`${serve.baseUrl}${CRL}`);
    let afterSeconds = 0;
    const poll = async () => {
      clockMs += 31_000; // past the CRL's max-age: every poll goes to the server
      await before.poll();
      const t = performance.now();
      await after.refresh();
      afterSeconds += (performance.now() - t) / 1000;
    };
    await poll(); // both start holding the CRL as it was before the revocation
    const start = {
      before: before.bytes,
      after: after.crlTraffic.bytes,
      afterRequests: after.crlTraffic.requests,
    };
    const beforeRequests0 = before.requests;
    const t0 = performance.now();
    let sinceLastPoll = 0;
    for (let done = 0; done < records; ) {
      // A batch never crosses a poll boundary: polls fall exactly every `pollEvery` records.
      const n = Math.min(batch, records - done, pollEvery - sinceLastPoll);
      await appendRevocations(pool, await signed('0002', done, n, key));
      done += n;
      sinceLastPoll += n;
      if (sinceLastPoll >= pollEvery || done === records) {
        sinceLastPoll = 0;
        await poll();
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const head = await crlHead(pool);
    if (after.revokedCount !== head.served || after.crlRejectedCount !== 0 || after.crlHead !== head.head) {
      throw new Error(
        `the delta verifier holds ${after.revokedCount} records (${after.crlRejectedCount} rejected) at head ${after.crlHead}; the CRL serves ${head.served} at ${head.head}`,
      );
    }
    const newBytes = Number(
      (
        await pool.query<{ b: string }>(
          `SELECT sum(octet_length(line) + 1) AS b FROM revocations WHERE manifest_id LIKE '0190b6e8-0002-%'`,
        )
      ).rows[0]!.b,
    );
    const result = {
      records,
      existing,
      compacted: head.compacted,
      served: head.served,
      pollEvery,
      polls: before.requests - beforeRequests0,
      beforeBytes: before.bytes - start.before,
      afterBytes: after.crlTraffic.bytes - start.after,
      afterRequests: after.crlTraffic.requests - start.afterRequests,
      newRecordBytes: newBytes,
      ratio: Number(((before.bytes - start.before) / (after.crlTraffic.bytes - start.after)).toFixed(1)),
      afterVerifySeconds: Number(afterSeconds.toFixed(1)),
      seconds: Number(seconds.toFixed(1)),
      cpus: cpus().length,
      loadavgBefore: loadBefore.map((l) => Number(l.toFixed(2))),
      loadavgAfter: loadavg().map((l) => Number(l.toFixed(2))),
    };
    if (json) console.log(JSON.stringify(result));
    else {
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      console.log(
        `${records} revoked (CRL held ${existing}, ${head.compacted} compacted), a poll every ${pollEvery} records: ` +
          `${result.polls} polls; before ${mib(result.beforeBytes)} MiB, after ${mib(result.afterBytes)} MiB ` +
          `(the new records are ${mib(newBytes)} MiB), ${result.ratio}x less; load ${result.loadavgBefore.join('/')} -> ${result.loadavgAfter.join('/')}`,
      );
    }
  } finally {
    await serve.stop();
  }
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
