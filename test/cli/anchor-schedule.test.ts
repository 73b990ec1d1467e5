/**
 * Issue 12, point 1: anchors expire, so a Temporal Schedule re-signs them before they do. Through
 * the CLI as an operator runs it, against the run's dev server, this file's database and a worker
 * with the real activities.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { createRotationEnv, type RotationEnv } from './rotation-env';

let env: RotationEnv;
const IDENTITY = `upkeep-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  env = await createRotationEnv();
});
afterAll(async () => {
  await env?.rotor('anchor', 'schedule', 'delete', '--identity', IDENTITY);
  await env?.close();
});

describe('rotor anchor schedule', () => {
  it('re-signs the anchor as a new version when it is due, and leaves it when it is not', async () => {
    await env.initIdentity(IDENTITY);
    const v1 = (await currentTrustAnchor(env.db.pool, IDENTITY))!;

    const refused = await env.rotor(
      'anchor',
      'schedule',
      'create',
      '--identity',
      IDENTITY,
      '--every',
      '2d',
      '--within',
      '1d',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(
      'rotor: --within (1d) must be longer than --every (2d), or an anchor could expire between two looks',
    );

    // Due at once: the anchor lives 7 days, the window is 8.
    const created = await env.rotor(
      'anchor',
      'schedule',
      'create',
      '--identity',
      IDENTITY,
      '--every',
      '10m',
      '--within',
      '8d',
    );
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ schedule_id: `anchor-upkeep/${IDENTITY}` });
    const again = await env.rotor(
      'anchor',
      'schedule',
      'create',
      '--identity',
      IDENTITY,
      '--every',
      '10m',
      '--within',
      '8d',
    );
    expect(again.stderr).toMatch(/already exists/);

    const ran = await env.rotorJson<{ version: number; published: boolean; expires_at: string }>(
      'anchor',
      'schedule',
      'trigger-now',
      '--identity',
      IDENTITY,
    );
    expect(ran).toMatchObject({ version: v1.version + 1, published: true });
    const v2 = (await currentTrustAnchor(env.db.pool, IDENTITY))!;
    expect(v2.version).toBe(v1.version + 1);
    expect(Date.parse(ran.expires_at)).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    // Same keys, new signature and expiry: only the anchor's lifetime moved.
    expect(v2.document.keys.map((k) => k.key_id)).toEqual(v1.document.keys.map((k) => k.key_id));

    // Not due: a 2-hour window on an anchor that lives 7 days changes nothing.
    expect((await env.rotor('anchor', 'schedule', 'delete', '--identity', IDENTITY)).code).toBe(0);
    expect(
      (
        await env.rotor(
          'anchor',
          'schedule',
          'create',
          '--identity',
          IDENTITY,
          '--every',
          '10m',
          '--within',
          '2h',
        )
      ).code,
    ).toBe(0);
    const idle = await env.rotorJson<{ version: number; published: boolean }>(
      'anchor',
      'schedule',
      'trigger-now',
      '--identity',
      IDENTITY,
    );
    expect(idle).toEqual(expect.objectContaining({ version: v2.version, published: false }));

    expect((await env.rotor('anchor', 'schedule', 'delete', '--identity', IDENTITY)).code).toBe(0);
    const gone = await env.rotor('anchor', 'schedule', 'trigger-now', '--identity', IDENTITY);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe(
      `rotor: no anchor upkeep schedule for ${IDENTITY}: rotor anchor schedule create --identity ${IDENTITY}`,
    );
  });
});
