/**
 * `rotor rotate …` as an operator runs it: a child process against the run's Temporal dev server
 * and this file's database, while a worker with the real activities runs the rotation.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getKey } from '../../src/store/keys';
import { countManifests } from '../../src/store/manifests';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import { createRotationEnv, eventually, type RotationEnv } from './rotation-env';

/** The runbook compressed to seconds: re-sign at 1s, revoke at 2s, destroy the old key at 15s. */
const FAST = JSON.stringify({
  resignAtSeconds: 1,
  adoptBySeconds: 2,
  revokeAtSeconds: 2,
  decommissionAtSeconds: 45,
  anchorMaxAgeSeconds: 1,
  adoptionMarginSeconds: 0,
  pollSeconds: 1,
  allowSoftwareCustodian: true,
});
/** Re-sign an hour out: the rotation waits after keygen, so controls meet it in a known phase. */
const SLOW = JSON.stringify({
  resignAtSeconds: 3600,
  adoptBySeconds: 3600,
  revokeAtSeconds: 3600,
  decommissionAtSeconds: 7200,
  allowSoftwareCustodian: true,
});

// Workflow ids are global to the namespace that every test file shares: names of this run only.
const SUFFIX = randomBytes(3).toString('hex');
const PLANNED = `planned-${SUFFIX}`;
const STEERED = `steered-${SUFFIX}`;
const REVOKED = `revoked-${SUFFIX}`;
const ROLLED = `rolled-${SUFFIX}`;
const ESCALATED = `escalated-${SUFFIX}`;

let env: RotationEnv;

beforeAll(async () => {
  env = await createRotationEnv();
});
afterAll(async () => {
  await env?.close();
});

const status = (identity: string) => env.rotorJson<RotationStatus>('rotate', 'status', identity, '--json');

/** The rotation's status once `ok` holds for it. */
function statusWhen(
  identity: string,
  ok: (s: RotationStatus) => boolean,
  what: string,
): Promise<RotationStatus> {
  return eventually(async () => {
    const s = await status(identity);
    return ok(s) ? s : undefined;
  }, `${identity}: ${what}`);
}

describe('rotor rotate plan', () => {
  it('shows the timeline, the manifests it would touch and the gates, and changes nothing', async () => {
    const { keyId } = await env.initIdentity(PLANNED, 3);
    const before = Date.now();
    const plan = await env.rotorJson<{
      verdict: string;
      timeline: { step: string; at: string }[];
      counts: { activeManifests: number; resign: number; revoke: number };
      gates: { name: string; expect: string }[];
      activeKey: { keyId: string };
    }>(
      'rotate',
      'plan',
      '--identity',
      PLANNED,
      '--trigger',
      'personnel',
      '--policy-json',
      '{"allowSoftwareCustodian":true}',
      '--json',
    );
    expect(plan.verdict).toBe('would-start');
    expect(plan.activeKey.keyId).toBe(keyId);
    expect(plan.counts).toMatchObject({ activeManifests: 3, resign: 3, revoke: 3 });
    // Personnel change: the 1-hour runbook, so decommission is an hour from now.
    const decommission = plan.timeline.find((e) => e.step === 'decommission')!;
    expect(Date.parse(decommission.at) - before).toBeGreaterThanOrEqual(3600_000);
    expect(Date.parse(decommission.at) - before).toBeLessThan(3600_000 + 60_000);
    expect(plan.gates.map((g) => g.name)).toEqual(
      expect.arrayContaining([
        'active-key',
        'manifests-counted',
        'custodian-policy',
        'crl-endpoint',
        'crl-writable',
      ]),
    );

    // Without the policy's consent the software custodian fails the custodian-policy gate.
    const refused = await env.rotorJson<{ verdict: string; gates: { name: string; expect: string }[] }>(
      'rotate',
      'plan',
      '--identity',
      PLANNED,
      '--trigger',
      'personnel',
      '--json',
    );
    expect(refused.verdict).toBe('would-fail');
    expect(refused.gates.find((g) => g.name === 'custodian-policy')?.expect).toBe('fail');

    // A scheduled rotation of a fresh key would be skipped by the 90-day rule.
    const scheduled = await env.rotorJson<{ verdict: string }>(
      'rotate',
      'plan',
      '--identity',
      PLANNED,
      '--trigger',
      'scheduled',
      '--json',
    );
    expect(scheduled.verdict).toBe('would-skip');

    const text = await env.rotor('rotate', 'plan', '--identity', PLANNED, '--trigger', 'compromise');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('preflight gates');
    expect(text.stdout).toContain('3 active manifest(s) of the current key');

    expect((await getKey(env.db.pool, keyId))?.state).toBe('active');
    const described = await env.temporal.client.workflow
      .getHandle(`rotation/${PLANNED}`)
      .describe()
      .catch(() => undefined);
    expect(described).toBeUndefined();
  });

  it('refuses bad input with a one-line usage error', async () => {
    const badTrigger = await env.rotor('rotate', 'plan', '--identity', 'x', '--trigger', 'yearly');
    expect(badTrigger.code).toBe(2);
    expect(badTrigger.stderr).toMatch(
      /--trigger must be one of compromise, scheduled, personnel, hsm-replacement/,
    );
    const badField = await env.rotor(
      'rotate',
      'start',
      '--identity',
      'x',
      '--trigger',
      'personnel',
      '--reason',
      'r',
      '--policy-json',
      '{"resignAt":1}',
    );
    expect(badField.code).toBe(2);
    expect(badField.stderr).toMatch(/unknown field 'resignAt'/);
    const disordered = await env.rotor(
      'rotate',
      'start',
      '--identity',
      'x',
      '--trigger',
      'personnel',
      '--reason',
      'r',
      '--policy-json',
      '{"resignAtSeconds":10,"adoptBySeconds":5}',
    );
    expect(disordered.code).toBe(2);
    expect(disordered.stderr).toMatch(
      /policy\.resignAtSeconds \(10\) must not come after policy\.adoptBySeconds \(5\)/,
    );
    expect(disordered.stderr.trim().split('\n')).toHaveLength(1);

    // The compromise cut-off, on start and on escalate: checked before anything is sent.
    const start = (trigger: string, at: string) =>
      env.rotor(
        'rotate',
        'start',
        '--identity',
        'x',
        '--trigger',
        trigger,
        '--reason',
        'r',
        '--trusted-before',
        at,
      );
    const escalate = (at: string) =>
      env.rotor('rotate', 'escalate', 'x', '--reason', 'leak', '--trusted-before', at);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    for (const [run, message] of [
      [start('personnel', '2026-01-01T00:00:00Z'), '--trusted-before applies to compromise rotations only'],
      [start('compromise', 'last tuesday'), '--trusted-before: '],
      [start('compromise', future), '--trusted-before must not be in the future'],
      [escalate('last tuesday'), '--trusted-before: '],
      [escalate(future), '--trusted-before must not be in the future'],
    ] as const) {
      const r = await run;
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('rotor rotate start, status, pause, resume, abort', () => {
  it('starts a rotation, refuses a second one, pauses and resumes it through the updates', async () => {
    const { keyId } = await env.initIdentity(STEERED, 2);
    const started = await env.rotor(
      'rotate',
      'start',
      '--identity',
      STEERED,
      '--trigger',
      'personnel',
      '--reason',
      'key holder left',
      '--policy-json',
      SLOW,
    );
    expect(started.code).toBe(0);
    expect(started.stdout.trim()).toBe(`rotation/${STEERED}`);
    expect(started.stderr).toContain(`rotor rotate status ${STEERED} --watch`);

    // A second start for the same identity: exit 1, naming the running workflow.
    const second = await env.rotor(
      'rotate',
      'start',
      '--identity',
      STEERED,
      '--trigger',
      'compromise',
      '--reason',
      'again',
    );
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`already running: rotation/${STEERED} \\(run [0-9a-f-]+`));

    // After keygen it waits for t=1h to re-sign.
    const waiting = await statusWhen(STEERED, (s) => s.phase === 'waiting', 'waiting for the re-sign time');
    expect(waiting).toMatchObject({
      workflowId: `rotation/${STEERED}`,
      identity: STEERED,
      trigger: 'personnel',
      oldKeyId: keyId,
      paused: false,
    });
    expect(waiting.newKeyId).toMatch(/^[0-9a-f]{64}$/);
    expect(waiting.progress.resign).toEqual({ done: 0, total: 2 });
    expect(waiting.timeline.find((e) => e.step === 'keygen')?.actualEnd).toBeDefined();

    const paused = await env.rotor('rotate', 'pause', STEERED, '--reason', 'change freeze');
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(new RegExp(`^paused rotation/${STEERED} .*change freeze`));
    expect(await status(STEERED)).toMatchObject({ paused: true, pauseReason: 'change freeze' });

    // The validators' reasons come back, with exit 1.
    const again = await env.rotor('rotate', 'pause', STEERED);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe('rotor: pause refused: the rotation is already paused: change freeze');

    const text = await env.rotor('rotate', 'status', STEERED);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('PAUSED: change freeze');
    expect(text.stdout).toMatch(/re-sign\s+\[\.+\] 0\/2/);

    const resumed = await env.rotorJson<RotationStatus>('rotate', 'resume', STEERED, '--json');
    expect(resumed.paused).toBe(false);
    const notPaused = await env.rotor('rotate', 'resume', STEERED);
    expect(notPaused.code).toBe(1);
    expect(notPaused.stderr).toContain('resume refused: the rotation is not paused');

    // With one rotation running the identity may be left out.
    const listed = await env.rotorJson<{ workflowId: string; status: string; phase: string }[]>(
      'rotate',
      'list',
      '--json',
    );
    expect(listed.find((r) => r.workflowId === `rotation/${STEERED}`)).toMatchObject({
      status: 'RUNNING',
      phase: 'waiting',
    });

    const abort = await env.rotor('rotate', 'abort', '--reason', 'wrong identity');
    expect(abort.code).toBe(0);
    expect(abort.stdout).toMatch(new RegExp(`^abort of rotation/${STEERED}`));
    const ended = await statusWhen(STEERED, (s) => s.phase === 'aborted', 'aborted');
    expect(ended.outcome).toBe('wrong identity');
    // Aborted before re-signing: the old key stays, the new one is destroyed.
    expect((await getKey(env.db.pool, keyId))?.state).toBe('active');
    expect((await getKey(env.db.pool, ended.newKeyId!))?.state).toBe('destroyed');

    const late = await env.rotor('rotate', 'resume', STEERED);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(
      new RegExp(`resume refused: rotation rotation/${STEERED} has ended \\(aborted\\)`),
    );

    // The rotations table and Temporal agree that it ended.
    const after = await env.rotorJson<{ workflowId: string; status: string; phase: string }[]>(
      'rotate',
      'list',
      '--json',
    );
    expect(after.find((r) => r.workflowId === `rotation/${STEERED}`)).toMatchObject({
      status: 'COMPLETED',
      phase: 'aborted',
    });
  }, 300_000);

  it('escalates with --trusted-before: the cut-off reaches the workflow in its one form and the status shows it', async () => {
    await env.initIdentity(ESCALATED, 2);
    // Whole seconds, written with an offset: the CLI hands the workflow toISOString's form.
    await new Promise((r) => setTimeout(r, 1100));
    const at = Math.floor(Date.now() / 1000) * 1000;
    const written = new Date(at).toISOString().replace('.000Z', '+00:00');
    const cutoff = new Date(at).toISOString();
    const started = await env.rotor(
      'rotate',
      'start',
      '--identity',
      ESCALATED,
      '--trigger',
      'scheduled',
      '--reason',
      'quarterly',
      '--policy-json',
      JSON.stringify({ ...JSON.parse(SLOW), minKeyAgeDays: 0 }),
    );
    expect(started.code, started.stderr).toBe(0);
    await statusWhen(ESCALATED, (s) => s.phase === 'waiting', 'waiting to re-sign');
    const escalated = await env.rotor(
      'rotate',
      'escalate',
      ESCALATED,
      '--reason',
      'key seen on a paste site',
      '--trusted-before',
      written,
    );
    expect(escalated.code, escalated.stderr).toBe(0);
    expect(escalated.stdout).toContain(`then re-issued if stored before ${cutoff};`);
    const done = await statusWhen(ESCALATED, (s) => s.phase === 'completed', 'the compromise path done');
    expect(done.path).toBe('compromise');
    expect(done.escalation).toMatchObject({ trustedBefore: cutoff, reason: 'key seen on a paste site' });
    const text = await env.rotor('rotate', 'status', ESCALATED);
    expect(text.stdout).toContain(`cut-off     only manifests stored before ${cutoff} are re-issued`);
    // Both manifests were stored before the cut-off: re-issued, none declined.
    expect(done.unresignableCount).toBe(0);
    expect(await countManifests(env.db.pool, { keyId: done.newKeyId!, status: 'active' })).toBe(2);
  });

  it('refuses a rollback once the old key’s manifests are revoked, and the rotation completes', async () => {
    const { keyId } = await env.initIdentity(REVOKED, 3);
    const started = await env.rotor(
      'rotate',
      'start',
      '--identity',
      REVOKED,
      '--trigger',
      'personnel',
      '--reason',
      'drill',
      '--policy-json',
      FAST,
      '--json',
    );
    expect(started.code).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({
      workflowId: `rotation/${REVOKED}`,
      taskQueue: env.temporal.taskQueue,
    });

    const afterRevoke = await statusWhen(
      REVOKED,
      (s) => s.timeline.find((e) => e.step === 'revoke')?.actualEnd !== undefined,
      'revocation done',
    );
    expect(afterRevoke.progress.resign).toEqual({ done: 3, total: 3 });
    expect(afterRevoke.progress.revoke).toEqual({ done: 3, total: 3 });

    const rollback = await env.rotor('rotate', 'rollback', REVOKED, '--reason', 'too late');
    expect(rollback.code).toBe(1);
    expect(rollback.stderr.trim()).toBe(
      "rotor: rollback refused: the old key's manifests are revoked; roll forward with a new rotation",
    );
    const abort = await env.rotor('rotate', 'abort', REVOKED, '--reason', 'too late');
    expect(abort.code).toBe(1);

    // Rollback's --reason is required before anything is sent.
    const noReason = await env.rotor('rotate', 'rollback', REVOKED);
    expect(noReason.code).toBe(2);

    const done = await statusWhen(REVOKED, (s) => s.phase === 'completed', 'completed');
    expect(done.oldKeyId).toBe(keyId);
    expect((await getKey(env.db.pool, keyId))?.state).toBe('destroyed');
    expect(await countManifests(env.db.pool, { keyId: done.newKeyId!, status: 'active' })).toBe(3);

    // A finished rotation still shows its final status.
    const text = await env.rotor('rotate', 'status', REVOKED);
    expect(text.stdout).toMatch(/phase\s+completed/);
    expect(text.stdout).toMatch(/revoke\s+\[#+\] 3\/3 100%/);

    // --watch on an ended rotation draws once and returns.
    const watched = await env.rotor('rotate', 'status', REVOKED, '--watch', '--json');
    expect(watched.code).toBe(0);
    expect(JSON.parse(watched.stdout.trim().split('\n').at(-1)!).phase).toBe('completed');
  }, 300_000);

  it('rolls back while verifiers adopt the new anchor: the old key signs again', async () => {
    const { keyId } = await env.initIdentity(ROLLED, 2);
    // The anchor is published at 1s; adoption waits out a 5-minute cache lifetime.
    const policy = JSON.stringify({
      resignAtSeconds: 1,
      adoptBySeconds: 600,
      revokeAtSeconds: 600,
      decommissionAtSeconds: 900,
      anchorMaxAgeSeconds: 300,
      pollSeconds: 1,
      allowSoftwareCustodian: true,
    });
    const started = await env.rotor(
      'rotate',
      'start',
      '--identity',
      ROLLED,
      '--trigger',
      'hsm-replacement',
      '--reason',
      'new HSM',
      '--policy-json',
      policy,
    );
    expect(started.code).toBe(0);
    // The phase changes before the gate's first poll answers: until then the mode is 'pending'.
    const adopting = await statusWhen(
      ROLLED,
      (s) => s.phase === 'await-adoption' && s.adoption.mode !== 'pending',
      'awaiting adoption, the gate polled once',
    );
    expect(adopting.progress.resign).toEqual({ done: 2, total: 2 });
    expect(adopting.adoption.mode).toBe('cache-lifetime');
    expect(adopting.blockers.join(' ')).toMatch(/waiting out the anchor's cache lifetime/);

    const rollback = await env.rotor('rotate', 'rollback', ROLLED, '--reason', 'new key defective');
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toMatch(new RegExp(`^rollback of rotation/${ROLLED} .* accepted`));

    const done = await statusWhen(ROLLED, (s) => s.phase === 'rolled-back', 'rolled back');
    expect(done.outcome).toBe('new key defective');
    expect(done.progress.rollback).toEqual({ done: 2, total: 2 });
    expect(done.progress.revoke.done).toBe(0);
    expect((await getKey(env.db.pool, keyId))?.state).toBe('active');
    expect((await getKey(env.db.pool, done.newKeyId!))?.state).toBe('destroyed');
    expect(await countManifests(env.db.pool, { keyId, status: 'active' })).toBe(2);
    expect(await countManifests(env.db.pool, { keyId: done.newKeyId!, status: 'active' })).toBe(0);
  });

  it('names what is missing: no such rotation, no running rotation', async () => {
    const missing = await env.rotor('rotate', 'status', 'nobody', '--json');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('rotor: no rotation rotation/nobody in namespace default');
    const none = await env.rotor('rotate', 'pause');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no rotation is running: name the identity');
  });
});

describe('rotor rotate without Temporal', () => {
  it('says which address it could not reach', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      import('node:child_process').then(({ execFile }) =>
        execFile(
          process.execPath,
          ['bin/rotor-dev.mjs', 'rotate', 'status', 'x'],
          {
            env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
            cwd: new URL('../..', import.meta.url).pathname,
          },
          (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
        ),
      );
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^rotor: cannot reach Temporal at 127\.0\.0\.1:1 .*TEMPORAL_ADDRESS\n$/);
  });
});
