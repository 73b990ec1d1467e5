/**
 * The hot read paths under load: the trust anchor and per-id CRL lookups, served by a real
 * `rotor serve` process (its own core) and driven by autocannon from this one. Each case runs at
 * 2,000 requests/s with 8 connections (the goal: p99 under 5 ms there), then flat out with 32
 * connections to find the ceiling.
 *
 *   node --import tsx bench/http-load.ts [--seconds 5] [--records 100000]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config';
import { softwareSigner } from '../src/manifest';
import { connect } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { publishTrustAnchor } from '../src/store/trust-anchors';
import { databaseUrlFor } from '../test/helpers/db-admin';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const seconds = arg('seconds', 5);
const records = arg('records', 100_000);
const name = `rotor_bench_http_${randomBytes(3).toString('hex')}`;
const url = databaseUrlFor(loadConfig().databaseUrl, name);
const admin = await connect(loadConfig().databaseUrl, 1);
await admin.query(`CREATE DATABASE ${name}`);
const pool = await connect(url, 2);
const server = { kill: (_: NodeJS.Signals) => {} } as { kill(signal: NodeJS.Signals): void };
try {
  await migrate(pool);
  const a = softwareSigner(randomBytes(32));
  const b = softwareSigner(randomBytes(32));
  await publishTrustAnchor(pool, 'default', {
    activeKeyId: b.keyId,
    keys: [
      { keyId: a.keyId, publicKey: a.publicKey, validFrom: '2026-01-01T00:00:00Z', status: 'retiring' },
      { keyId: b.keyId, publicKey: b.publicKey, validFrom: '2026-06-05T10:00:00Z', status: 'active' },
    ],
  });
  // Lines in the FileCRL shape, made in SQL: the lookup cost does not depend on the signature.
  await pool.query(
    `INSERT INTO revocations (manifest_id, line, signer_key_id, revoked_at)
     SELECT id, json_build_object('manifest_id', id, 'revoked_at', '2026-06-05T10:00:00Z',
              'reason', 'Key rotation - old key_id=' || $2, 'revoked_by', 'spiffe://trust.example/security-team',
              'revocation_signature', repeat('A', 86), 'signer_key_id', $2)::text, $2, '2026-06-05T10:00:00Z'
       FROM (SELECT '0190b6e3-0000-7000-8000-' || lpad(g::text, 12, '0') AS id FROM generate_series(1, $1) g) s`,
    [records, b.keyId],
  );
  await pool.query('ANALYZE revocations');

  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('../bin/rotor-dev.mjs', import.meta.url)), 'serve'],
    {
      env: { ...process.env, DATABASE_URL: url, ROTOR_HTTP_PORT: '0', ROTOR_METRICS_PORT: '0' },
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  server.kill = (signal) => child.kill(signal);
  const first = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once('line', resolve),
  );
  const base = (JSON.parse(first) as { listening: string }).listening;

  const randomId = () =>
    `0190b6e3-0000-7000-8000-${String(1 + Math.floor(Math.random() * records)).padStart(12, '0')}`;
  const cases: Array<{ name: string; path: string; random?: boolean }> = [
    { name: 'trust anchor', path: '/.well-known/agent-manifest/trust-anchor' },
    { name: 'CRL lookup by id', path: '/.well-known/agent-manifest/revocation/', random: true },
    { name: 'revocation-status?manifest_id=', path: '/revocation-status?manifest_id=', random: true },
  ];
  // Warm-up, not measured: JIT, the server's pool filling up to its 10 connections.
  await autocannon({ url: base + cases[1]!.path + randomId(), connections: 16, duration: 1 });
  await autocannon({ url: base + cases[0]!.path, connections: 16, duration: 1 });
  console.log(
    `load average before: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} on ${cpus().length} cores`,
  );
  console.log(`rotor serve in its own process; ${records} CRL records; ${seconds} s per run`);
  console.log(
    '| endpoint | offered load | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-2xx | errors |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of cases) {
    for (const rate of [2000, undefined]) {
      const result = await autocannon({
        url: base,
        connections: rate ? 8 : 32,
        duration: seconds,
        // autocannon's limiter sends each connection's per-second quota back to back, and its
        // coordinated-omission correction assumes a 1 ms interval at these rates, inventing
        // samples; the latencies recorded here are the measured ones.
        ...(rate ? { overallRate: rate, ignoreCoordinatedOmission: true } : {}),
        requests: [
          {
            method: 'GET',
            path: c.path,
            ...(c.random
              ? { setupRequest: (req: { path?: string }) => ({ ...req, path: c.path + randomId() }) }
              : {}),
          },
        ],
      });
      const l = result.latency;
      console.log(
        `| ${c.name} | ${rate ? `${rate}/s` : 'flat out'} | ${Math.round(result.requests.average)} | ${l.p50} | ${l.p99} | ` +
          `${l.p99_9} | ${l.max} | ${result.non2xx} | ${result.errors} |`,
      );
    }
  }
} finally {
  server.kill('SIGTERM');
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
