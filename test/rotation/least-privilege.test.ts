/**
 * Issue 12, point 6: no component runs as the database owner. A whole rotation runs with the
 * worker's activities as `rotor_worker` and `rotor serve` as `rotor_serve` (migration 085), and
 * each role is refused what it has no business doing: serve cannot publish an anchor or append a
 * revocation, the worker cannot delete, truncate or change the schema.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/store/db';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

describe('least-privilege database roles (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;
  const pools: Pool[] = [];
  const as = (role: string) => {
    const url = new URL(env.db.url);
    url.username = role;
    const pool = createPool(url.toString(), 1);
    pools.push(pool);
    return pool;
  };

  beforeAll(async () => {
    env = await createRotationEnv('software', { identity: 'least-privilege', leastPrivilege: true });
  });
  afterAll(async () => {
    for (const p of pools) await p.end();
    await env?.close();
  });

  it('a rotation completes with the worker as rotor_worker and rotor serve as rotor_serve', async () => {
    const signer = await env.initIdentity('least-privilege');
    await env.seed('least-privilege', signer, 20);
    const handle = await env.start('least-privilege', 'personnel', { minKeyAgeDays: 0 });
    expect((await env.finish(handle)).phase).toBe('completed');
    // rotor serve, as rotor_serve, answers the anchor, the CRL and a check-in.
    const anchor = await fetch(`${env.baseUrl}/.well-known/agent-manifest/trust-anchor`);
    expect(anchor.status).toBe(200);
    const crl = await fetch(`${env.baseUrl}/.well-known/agent-manifest/revocation`);
    expect(crl.status).toBe(200);
    expect((await crl.text()).trim().split('\n')).toHaveLength(20);
    // The CRL's signed header: written by the worker as rotor_worker, served as rotor_serve.
    const meta = await fetch(
      `${env.baseUrl}/.well-known/agent-manifest/revocation.meta.jws?seq=${crl.headers.get('crl-head')}`,
    );
    expect(meta.status).toBe(200);
    const version = ((await anchor.json()) as { version: number }).version;
    const checkIn = await fetch(`${env.baseUrl}/v1/verifiers/lp-1/check-in`, {
      method: 'POST',
      headers: { Authorization: 'Bearer test-checkin-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ anchor_version: version, trusted_key_ids: [], valid_counts: {} }),
    });
    expect(checkIn.status).toBe(200);
  });

  it('refuses each role what it must never do', async () => {
    const serve = as('rotor_serve');
    const worker = as('rotor_worker');
    const denied = async (pool: Pool, sql: string) =>
      expect(pool.query(sql)).rejects.toThrow(
        /^(permission denied for (table|schema)|must be owner of table) /,
      );
    await denied(
      serve,
      "INSERT INTO trust_anchors (identity, version, text, etag, active_key_id) VALUES ('x', 99, '{}', 'e', 'k')",
    );
    await denied(
      serve,
      "INSERT INTO revocations (manifest_id, line, signer_key_id, revoked_at) VALUES ('m', 'l', 'k', 't')",
    );
    await denied(serve, "UPDATE signing_keys SET state = 'active'");
    // serve holds no keys and never writes a CRL header: it only serves what the worker signed.
    await denied(serve, "UPDATE crl_meta SET next_update = now() + interval '1 year'");
    await denied(
      serve,
      "INSERT INTO audit_log (id, recorded_at, actor, action, details, prev_hash, hash) VALUES (999, now(), 'a', 'b', '{}', 'p', 'h')",
    );
    await denied(worker, 'DELETE FROM manifests');
    await denied(worker, 'TRUNCATE audit_log');
    await denied(worker, 'DROP TABLE audit_checkpoints');
    await denied(worker, 'CREATE TABLE sneaky (x int)');
  });

  it("rotor db migrate gives the roles the operator's passwords without printing them", async () => {
    const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));
    const secret = 'worker-pw-Zq81';
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [ROTOR, 'db', 'migrate'],
        { env: { ...process.env, DATABASE_URL: env.db.url, ROTOR_WORKER_DB_PASSWORD: secret } },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
      );
    });
    try {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('set the password of rotor_worker from ROTOR_WORKER_DB_PASSWORD');
      expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
      const { rows } = await env.db.pool.query<{ set: boolean }>(
        "SELECT rolpassword IS NOT NULL AS set FROM pg_authid WHERE rolname = 'rotor_worker'",
      );
      expect(rows[0]!.set).toBe(true);
    } finally {
      // The roles are the cluster's: leave them as the other tests expect (trust, no password).
      await env.db.pool.query('ALTER ROLE rotor_worker PASSWORD NULL');
    }
  });
});
