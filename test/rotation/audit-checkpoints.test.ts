/**
 * Issue 12, point 6: the audit log's head is checkpointed at every rotation phase by the
 * identity's anchor root keys. A database superuser who rewrites an entry AND recomputes every
 * later hash (and the head) leaves a chain that verifies; the signed checkpoints do not, and
 * `rotor audit verify --root` names where. Real rotation: dev server, Postgres, software custody.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64urlEncode, parseJson } from '../../src/manifest';
import { signCheckpoint } from '../../src/manifest/audit-checkpoint';
import { softwareSigner } from '../../src/manifest/keys';
import { entryHash, recordCheckpoint, verifyAuditChain, verifyCheckpoints } from '../../src/store/audit';
import { runRotor } from '../helpers/cli';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

describe('signed audit checkpoints (Temporal + Postgres, software custody)', () => {
  let env: RotationEnv;

  beforeAll(async () => {
    env = await createRotationEnv('software');
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a consistent rewrite of the chain passes the chain check and fails the checkpoints', async () => {
    const signer = await env.initIdentity('audit-cp');
    await env.seed('audit-cp', signer, 10);
    const handle = await env.start('audit-cp', 'personnel', { minKeyAgeDays: 0 });
    expect((await env.finish(handle)).phase).toBe('completed');
    const root = await env.rootOf('audit-cp');
    const pinned = root.keys.map((k) => b64urlEncode(k.publicKey));

    const before = await verifyCheckpoints(env.db.pool, root, 'audit-cp');
    expect(before).toMatchObject({ ok: true, problems: [] });
    // One per rotation phase at least: preflight, keygen, re-sign, publish-anchor, adoption, revoke, decommission.
    expect(before.checkpoints).toBeGreaterThanOrEqual(7);
    const clean = await runRotor(['audit', 'verify', '--root', pinned[0]!, '--identity', 'audit-cp'], {
      DATABASE_URL: env.db.url,
    });
    expect(clean.code, clean.stderr).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({
      ok: true,
      checkpoints: { checkpoints: before.checkpoints },
    });

    // The superuser rewrites the re-sign entry's details and recomputes every later hash.
    const { rows } = await env.db.pool.query<{ id: string }>(
      "SELECT id FROM audit_log WHERE action = 'rotation.re-sign' AND subject = $1",
      [handle.workflowId],
    );
    const target = Number(rows[0]!.id);
    await rewriteFrom(env, target, { resigned: 0, note: 'nothing to see here' });
    expect(await verifyAuditChain(env.db.pool)).toMatchObject({ ok: true, problems: [] });
    const after = await verifyCheckpoints(env.db.pool, root, 'audit-cp');
    expect(after.ok).toBe(false);
    expect(after.problems[0]!.auditId).toBeGreaterThanOrEqual(target);
    expect(after.problems[0]!.problem).toMatch(
      /hash differs from the signed checkpoint: the log was rewritten at or before entry \d+$/,
    );
    const caught = await runRotor(['audit', 'verify', '--root', pinned[0]!], { DATABASE_URL: env.db.url });
    expect(caught.code).toBe(1);
    expect(caught.stderr).toMatch(/^rotor: audit checkpoint \d+ \(entry \d+\): entry \d+'s hash differs/m);

    // Nor can the superuser replace the checkpoints with ones for the rewritten chain: a key that
    // is not a pinned root does not count.
    await env.db.pool.query(
      "BEGIN; ALTER TABLE audit_checkpoints DISABLE TRIGGER USER; DELETE FROM audit_checkpoints WHERE identity = 'audit-cp'; ALTER TABLE audit_checkpoints ENABLE TRIGGER USER; COMMIT",
    );
    const head = await env.db.pool.query<{ last_id: string; last_hash: string }>(
      'SELECT last_id, last_hash FROM audit_head',
    );
    const forger = softwareSigner(new Uint8Array(32).fill(7));
    const claim = {
      identity: 'audit-cp',
      auditId: Number(head.rows[0]!.last_id),
      auditHash: head.rows[0]!.last_hash,
      issuedAt: new Date().toISOString(),
    };
    await recordCheckpoint(env.db.pool, {
      ...claim,
      rootVersion: 1,
      signatures: await signCheckpoint(claim, [forger]),
    });
    const forged = await verifyCheckpoints(env.db.pool, root, 'audit-cp');
    expect(
      forged.problems.some(
        (p) => p.problem === 'checkpoint not trusted: signed by 0 pinned root key(s), 1 needed',
      ),
    ).toBe(true);
  });
});

/** What a superuser can do: edit entry `id`, recompute every hash from it on, and the head. */
async function rewriteFrom(env: RotationEnv, id: number, details: Record<string, unknown>): Promise<void> {
  const client = await env.db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
    const { rows } = await client.query<{
      id: string;
      recorded_at: Date;
      actor: string;
      action: string;
      subject: string | null;
      details: string;
      prev_hash: string;
    }>(
      'SELECT id, recorded_at, actor, action, subject, details, prev_hash FROM audit_log WHERE id >= $1 ORDER BY id',
      [id],
    );
    let prev = rows[0]!.prev_hash;
    let last = '';
    for (const r of rows) {
      const text = Number(r.id) === id ? JSON.stringify(details) : r.details;
      const hash = entryHash(
        { id: Number(r.id), recordedAt: r.recorded_at, actor: r.actor, action: r.action, subject: r.subject },
        parseJson(text),
        prev,
      );
      await client.query('UPDATE audit_log SET details = $2, prev_hash = $3, hash = $4 WHERE id = $1', [
        r.id,
        text,
        prev,
        hash,
      ]);
      prev = hash;
      last = hash;
    }
    await client.query('UPDATE audit_head SET last_hash = $1', [last]);
    await client.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}
