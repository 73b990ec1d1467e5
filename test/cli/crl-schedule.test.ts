/**
 * `rotor crl schedule`: the served CRL compacted on a Temporal Schedule the worker runs (ADR-0007;
 * README "CRL deltas"), instead of `rotor crl compact` from cron. Through the CLI as an operator
 * runs it, against the run's dev server, this file's database and a worker with the real
 * activities: the run compacts the expired manifest's record and signs the CRL header again.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CrlCompactionResult } from '../../src/activities/crl-compaction';
import { signManifest, signRevocation, softwareSigner } from '../../src/manifest';
import { listAudit } from '../../src/store/audit';
import { latestCrlMeta } from '../../src/store/crl-meta';
import { activeKey } from '../../src/store/keys';
import { insertManifest } from '../../src/store/manifests';
import { appendRevocations, crlHead } from '../../src/store/revocations';
import { validUnsigned } from '../manifest/vectors';
import { createRotationEnv, type RotationEnv } from './rotation-env';

let env: RotationEnv;
const IDENTITY = `crl-upkeep-${randomBytes(3).toString('hex')}`;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

beforeAll(async () => {
  env = await createRotationEnv();
});
afterAll(async () => {
  await env?.rotor('crl', 'schedule', 'delete');
  await env?.close();
});

/** A manifest revoked by the identity's revocation key, expired `hoursAgo` hours ago. */
async function revokedManifest(manifestId: string, hoursAgo: number): Promise<void> {
  const unsigned = JSON.stringify(
    validUnsigned({
      manifest_id: manifestId,
      agent_id: `spiffe://trust.example/agent/${manifestId.slice(-4)}`,
      issued_at: iso(Date.now() - 30 * 86_400_000),
      expires_at: iso(Date.now() - hoursAgo * 3_600_000),
    }),
  );
  const { text } = await signManifest(unsigned, softwareSigner(new Uint8Array(32).fill(79)), {
    signedAt: new Date(Date.now() - 20 * 86_400_000),
  });
  await insertManifest(env.db.pool, { text });
  const rk = (await activeKey(env.db.pool, IDENTITY, 'revocation'))!;
  const { line, record } = await signRevocation(
    { manifestId, reason: 'test', revokedBy: 'urn:rotor:test', revokedAt: new Date() },
    await env.custodian.signer(rk.handle),
  );
  await appendRevocations(env.db.pool, [
    { manifestId, line, signerKeyId: rk.keyId, revokedAt: record.revokedAt },
  ]);
}

describe('rotor crl schedule', () => {
  it('compacts the records of expired manifests in the worker and signs the header again; refuses bad flags', async () => {
    await env.initIdentity(IDENTITY);
    // Expired 3 hours ago: past the 1-hour margin. Expired 10 minutes ago: still within it.
    await revokedManifest('0190b6e6-0000-7000-8000-0000000c0a01', 3);
    await revokedManifest('0190b6e6-0000-7000-8000-0000000c0a02', 1 / 6);
    const before = await crlHead(env.db.pool);
    expect(before.served).toBe(2);

    for (const [args, message] of [
      [['--margin', '-5'], '--margin must be a whole number of seconds, got "-5"'],
      [['--every', 'often'], '--every'],
    ] as const) {
      const r = await env.rotor('crl', 'schedule', 'create', ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const none = await env.rotor('crl', 'schedule', 'trigger-now');
    expect(none.code).toBe(1);
    expect(none.stderr.trim()).toBe('rotor: no CRL compaction schedule: rotor crl schedule create');

    const created = await env.rotorJson<{ schedule_id: string; every: string; margin_seconds: number }>(
      'crl',
      'schedule',
      'create',
      '--every',
      '12h',
    );
    expect(created).toEqual({ schedule_id: 'crl-compaction', every: '12h', margin_seconds: 3600 });
    const again = await env.rotor('crl', 'schedule', 'create');
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(
      'rotor: schedule crl-compaction already exists: rotor crl schedule delete first',
    );

    const ran = await env.rotorJson<CrlCompactionResult>('crl', 'schedule', 'trigger-now');
    expect(ran).toMatchObject({ compacted: 1, served: 1 });
    expect(ran.horizon).toBeGreaterThan(before.head);
    expect(ran.headers).toEqual([
      { identity: IDENTITY, seq: ran.head, signed: true, next_update: expect.any(String) },
    ]);
    expect((await crlHead(env.db.pool)).served).toBe(1);
    expect((await latestCrlMeta(env.db.pool, IDENTITY))?.seq).toBe(ran.head);
    const audit = (await listAudit(env.db.pool, { subject: 'crl' })).filter(
      (e) => e.action === 'crl.compacted',
    );
    expect(audit.map((e) => [e.actor, e.details.compacted])).toEqual([['rotor crl schedule', 1]]);

    // Nothing more is due: a second run compacts nothing and leaves the header as it is.
    const idle = await env.rotorJson<CrlCompactionResult>('crl', 'schedule', 'trigger-now');
    expect(idle).toMatchObject({ compacted: 0, served: 1, head: ran.head });
    expect(idle.headers).toEqual([expect.objectContaining({ identity: IDENTITY, signed: false })]);

    expect((await env.rotor('crl', 'schedule', 'delete')).code).toBe(0);
    const gone = await env.rotor('crl', 'schedule', 'delete');
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe('rotor: no CRL compaction schedule: rotor crl schedule create');
  });
});
