/**
 * `rotor schedule …`: the 90-day policy as a Temporal Schedule on the run's dev server, its
 * scheduled runs executed by a worker with the real activities.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/cli/rotation-options';
import { getKey } from '../../src/store/keys';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import type { ScheduledRotationResult } from '../../src/workflows/scheduled';
import { createRotationEnv, eventually, type RotationEnv } from './rotation-env';

interface ScheduleView {
  scheduleId: string;
  identity: string;
  every: string;
  custodian: string;
  policy: Record<string, unknown>;
  taskQueue: string;
  nextActionTimes: string[];
  recentActions: { workflowId: string }[];
}

// Schedule and workflow ids are global to the namespace that every test file shares.
const SUFFIX = randomBytes(3).toString('hex');
const QUARTERLY = `quarterly-${SUFFIX}`;
const BUSY = `busy-${SUFFIX}`;

let env: RotationEnv;

beforeAll(async () => {
  env = await createRotationEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('durations', () => {
  it('reads 90d, 12h, 30m, 45s and writes them back', () => {
    expect(parseDuration('90d', '--every')).toBe(90 * 86_400);
    expect(parseDuration('12h', '--every')).toBe(12 * 3600);
    expect(parseDuration('30m', '--every')).toBe(1800);
    expect(parseDuration('45s', '--every')).toBe(45);
    expect(formatDuration(90 * 86_400)).toBe('90d');
    expect(formatDuration(90)).toBe('90s');
    for (const bad of ['', '90', 'd', '0d', '1.5d', '-3h', '90days', '9w']) {
      expect(() => parseDuration(bad, '--every')).toThrow(
        /--every must be a positive whole number with a unit/,
      );
    }
  });
});

describe('rotor schedule', () => {
  it('creates a 90-day schedule, lists it, and a run triggered now is skipped for a fresh key', async () => {
    const { keyId } = await env.initIdentity(QUARTERLY, 2);
    const before = Date.now();
    const created = await env.rotorJson<ScheduleView>(
      'schedule',
      'create',
      '--identity',
      QUARTERLY,
      '--policy-json',
      '{"allowSoftwareCustodian":true}',
      '--json',
    );
    expect(created).toMatchObject({
      scheduleId: `rotation-schedule/${QUARTERLY}`,
      identity: QUARTERLY,
      every: '90d',
      custodian: 'software',
      policy: { allowSoftwareCustodian: true },
      taskQueue: env.temporal.taskQueue,
    });
    // The first scheduled run is a whole interval away, not at some epoch-aligned moment sooner.
    const next = Date.parse(created.nextActionTimes[0]!);
    expect(next - before).toBeGreaterThan(90 * 86_400_000 - 60_000);
    expect(next - before).toBeLessThanOrEqual(90 * 86_400_000 + 60_000);

    const described = await env.temporal.client.schedule
      .getHandle(`rotation-schedule/${QUARTERLY}`)
      .describe();
    expect(described.policies.overlap).toBe('SKIP');
    expect(described.action.workflowType).toBe('scheduledRotationWorkflow');

    const again = await env.rotor('schedule', 'create', '--identity', QUARTERLY);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(
      `rotor: schedule rotation-schedule/${QUARTERLY} already exists: rotor schedule delete --identity ${QUARTERLY} first to change it`,
    );

    // Schedules reach the list through visibility, which trails the create by a moment.
    const listed = await eventually(async () => {
      const all = await env.rotorJson<ScheduleView[]>('schedule', 'list', '--json');
      return all.find((s) => s.identity === QUARTERLY);
    }, 'the schedule in the list');
    expect(listed.every).toBe('90d');
    const table = await env.rotor('schedule', 'list');
    expect(table.stdout).toMatch(/^IDENTITY\s+EVERY\s+CUSTODIAN\s+STATE\s+NEXT/);
    expect(table.stdout).toMatch(new RegExp(`${QUARTERLY}\\s+90d\\s+software\\s+active`));

    // Triggered now: the scheduled rotation runs its preflight and is skipped by the 90-day rule.
    const run = await env.rotorJson<{ workflowId: string; runId: string; result: ScheduledRotationResult }>(
      'schedule',
      'trigger-now',
      '--identity',
      QUARTERLY,
      '--wait',
      '--json',
    );
    expect(run.workflowId).toMatch(new RegExp(`^rotation-schedule/${QUARTERLY}`));
    expect(run.result.started).toBe(true);
    expect(run.result.rotation?.workflowId).toBe(`rotation/${QUARTERLY}`);
    expect(run.result.rotation?.phase).toBe('skipped');
    expect(run.result.rotation?.outcome).toMatch(
      /is 0\.0 days old; the next scheduled rotation is due \d{4}-/,
    );
    expect(run.result.rotation?.newKeyId).toBeUndefined();
    expect((await getKey(env.db.pool, keyId))?.state).toBe('active');

    // The skipped rotation is what `rotate status` and `rotate list` show for the identity.
    const status = await env.rotorJson<RotationStatus>('rotate', 'status', QUARTERLY, '--json');
    expect(status).toMatchObject({ phase: 'skipped', trigger: 'scheduled' });
    const rotations = await env.rotorJson<{ workflowId: string; phase: string; trigger: string }[]>(
      'rotate',
      'list',
      '--identity',
      QUARTERLY,
      '--json',
    );
    expect(rotations[0]).toMatchObject({
      workflowId: `rotation/${QUARTERLY}`,
      phase: 'skipped',
      trigger: 'scheduled',
    });
  });

  it('skips a scheduled start while a rotation of the identity is running', async () => {
    await env.initIdentity(BUSY, 1);
    await env.rotorJson('schedule', 'create', '--identity', BUSY, '--every', '12h', '--json');
    const slow = JSON.stringify({
      resignAtSeconds: 3600,
      adoptBySeconds: 3600,
      revokeAtSeconds: 3600,
      decommissionAtSeconds: 7200,
      allowSoftwareCustodian: true,
    });
    const started = await env.rotor(
      'rotate',
      'start',
      '--identity',
      BUSY,
      '--trigger',
      'personnel',
      '--reason',
      'left',
      '--policy-json',
      slow,
    );
    expect(started.code).toBe(0);

    const run = await env.rotorJson<{ result: ScheduledRotationResult }>(
      'schedule',
      'trigger-now',
      '--identity',
      BUSY,
      '--wait',
      '--json',
    );
    expect(run.result).toEqual({ started: false, reason: `skipped: rotation/${BUSY} is already running` });
    // The rotation that was running is untouched.
    const status = await env.rotorJson<RotationStatus>('rotate', 'status', BUSY, '--json');
    expect(status.trigger).toBe('personnel');
    expect(['preflight', 'keygen', 'waiting']).toContain(status.phase);

    expect((await env.rotor('rotate', 'abort', BUSY, '--reason', 'test over')).code).toBe(0);
    expect((await env.rotor('schedule', 'delete', '--identity', BUSY)).code).toBe(0);
  });

  it('deletes a schedule; a missing schedule is named', async () => {
    const deleted = await env.rotor('schedule', 'delete', '--identity', QUARTERLY);
    expect(deleted.code).toBe(0);
    expect(deleted.stderr).toContain(`deleted schedule rotation-schedule/${QUARTERLY}`);
    await expect(
      env.temporal.client.schedule.getHandle(`rotation-schedule/${QUARTERLY}`).describe(),
    ).rejects.toThrow();

    const twice = await env.rotor('schedule', 'delete', '--identity', QUARTERLY);
    expect(twice.code).toBe(1);
    expect(twice.stderr.trim()).toBe(
      `rotor: no schedule rotation-schedule/${QUARTERLY}: create it with rotor schedule create --identity ${QUARTERLY}`,
    );
    const trigger = await env.rotor('schedule', 'trigger-now', '--identity', QUARTERLY);
    expect(trigger.code).toBe(1);
    expect(trigger.stderr).toContain(`no schedule rotation-schedule/${QUARTERLY}`);

    const bad = await env.rotor('schedule', 'create', '--identity', QUARTERLY, '--every', '90');
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(
      "rotor: --every must be a positive whole number with a unit s, m, h or d (like 90d or 12h), got '90'",
    );
  });
});
