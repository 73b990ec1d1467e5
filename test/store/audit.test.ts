import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, listAudit, verifyAuditChain } from '../../src/store/audit';
import { inTransaction } from '../../src/store/db';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

// The append-only triggers stop ordinary edits; an attacker with superuser rights can switch
// them off, and the chain must still show what they did.
async function tamper(sql: string, params: unknown[] = []): Promise<void> {
  await inTransaction(db.pool, async (c) => {
    await c.query('SET LOCAL session_replication_role = replica');
    await c.query(sql, params);
  });
}

async function freshLog(n: number): Promise<void> {
  await tamper('DELETE FROM audit_log');
  await db.pool.query("UPDATE audit_head SET last_id = 0, last_hash = ''");
  for (let i = 1; i <= n; i++) {
    await appendAudit(db.pool, {
      actor: 'rotor',
      action: 'test.step',
      subject: i % 2 ? 'rotation-a' : 'rotation-b',
      details: { step: i, note: `step ${i}`, ratio: 0.5, big: 12345678901234567890n, nothing: null },
    });
  }
}

describe('audit log', () => {
  it('chains entries and verifies a clean log', async () => {
    await freshLog(5);
    const all = await listAudit(db.pool, { limit: 10 });
    expect(all.map((e) => e.id)).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    expect(all[0]!.details).toEqual({ step: 1, note: 'step 1', ratio: 0.5, big: 12345678901234567890n });
    expect(await verifyAuditChain(db.pool)).toEqual({ ok: true, entries: 5, problems: [] });
    expect((await listAudit(db.pool, { subject: 'rotation-b' })).map((e) => e.id)).toEqual([2, 4]);
  });

  it('refuses ordinary updates and deletes', async () => {
    await freshLog(1);
    await expect(db.pool.query("UPDATE audit_log SET actor = 'mallory'")).rejects.toThrow(/append-only/);
    await expect(db.pool.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
  });

  it('names an edited entry', async () => {
    await freshLog(4);
    await tamper(`UPDATE audit_log SET details = '{"note":"step 2","ratio":0.5,"step":99}' WHERE id = 2`);
    const result = await verifyAuditChain(db.pool);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([{ id: 2, problem: expect.stringMatching(/edited/) }]);
  });

  it('names an edited entry whose hash was recomputed, by the break after it', async () => {
    await freshLog(4);
    await tamper("UPDATE audit_log SET actor = 'mallory', hash = repeat('a', 64) WHERE id = 2");
    const result = await verifyAuditChain(db.pool);
    expect(result.problems.map((p) => p.id)).toEqual([2, 3]);
    expect(result.problems[1]!.problem).toMatch(/entry 2 was replaced/);
  });

  it('names deleted entries, in the middle and at the end', async () => {
    await freshLog(6);
    await tamper('DELETE FROM audit_log WHERE id IN (3, 4)');
    let result = await verifyAuditChain(db.pool);
    expect(result.problems).toEqual([{ id: 3, problem: 'entries 3..4 are missing: deleted from the log' }]);

    await freshLog(6);
    await tamper('DELETE FROM audit_log WHERE id = 6');
    result = await verifyAuditChain(db.pool);
    expect(result.problems).toEqual([{ id: 6, problem: expect.stringMatching(/deleted from the end/) }]);
  });

  it('names an inserted entry', async () => {
    await freshLog(3);
    const [first] = await listAudit(db.pool, { limit: 1 });
    await tamper(
      `INSERT INTO audit_log (id, recorded_at, actor, action, subject, details, prev_hash, hash)
       VALUES (4, now(), 'mallory', 'key.destroyed', NULL, '{}', $1, $1)`,
      [first!.hash],
    );
    const result = await verifyAuditChain(db.pool);
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => p.id)).toContain(4);
  });

  it('never forks under concurrent appends', async () => {
    await freshLog(0);
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        appendAudit(db.pool, { actor: `worker-${i % 4}`, action: 'test.concurrent', details: { i } }),
      ),
    );
    // Inside a caller's transaction too: the entry commits or rolls back with it.
    await inTransaction(db.pool, (c) =>
      appendAudit(c, { actor: 'rotor', action: 'test.in-tx', details: {} }),
    );
    await expect(
      inTransaction(db.pool, async (c) => {
        await appendAudit(c, { actor: 'rotor', action: 'test.rolled-back', details: {} });
        throw new Error('caller fails');
      }),
    ).rejects.toThrow('caller fails');
    const result = await verifyAuditChain(db.pool);
    expect(result).toEqual({ ok: true, entries: 41, problems: [] });
  });
});
