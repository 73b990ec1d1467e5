/**
 * `rotor rotate …`: plan, start, watch and steer a rotation. Everything but `plan` goes through
 * the Temporal client; the controls are the workflow's validated updates, so a refusal comes back
 * with the workflow's own reason and exit code 1.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Command } from 'commander';
import { errorMessage, RotorError, UsageError } from '../../errors';
import { parseTimestamp } from '../../manifest';
import { type Pool, withPool } from '../../store/db';
import { latestRunOf, listDeclined } from '../../store/declined';
import { activeKey } from '../../store/keys';
import { countManifests } from '../../store/manifests';
import { lastCompletedRotation, listRotations, type RotationRecord } from '../../store/rotations';
import { type CustodianKind, plannedSteps, type RotationPolicy, type Trigger } from '../../workflows/policy';
import type { rotationWorkflow } from '../../workflows/rotation';
import {
  abortUpdate,
  type ControlRequest,
  escalateUpdate,
  pauseUpdate,
  type RotationInput,
  type RotationStatus,
  resumeUpdate,
  rollbackUpdate,
  rotationWorkflowId,
  statusQuery,
} from '../../workflows/rotation-api';
import { checkIdentity, parseCustodian, parsePolicyJson, parseTrigger, whoAmI } from '../rotation-options';
import { hasEnded, offset, renderStatus, table } from '../rotation-view';
import { type CliTemporal, needingWorker, withTemporal } from '../temporal-client';

const ROTATION_TYPE = 'rotationWorkflow';
const ROTATION_PREFIX = rotationWorkflowId('');

export function registerRotateCommands(program: Command): void {
  const rotate = program
    .command('rotate')
    .description('plan, start, watch and steer key rotations (Temporal workflows)');

  rotate
    .command('plan')
    .description('what a rotation would do, when, and to how many manifests; changes nothing')
    .requiredOption('--identity <name>', 'the signing identity')
    .requiredOption('--trigger <trigger>', 'compromise, scheduled, personnel or hsm-replacement')
    .option('--policy-json <json>', "overrides of the trigger's default policy")
    .option(
      '--custodian <kind>',
      'where the new key would be made: pkcs11 or software (default: ROTOR_CUSTODIAN)',
    )
    .option('--json', 'JSON instead of text')
    .action(
      async (opts: {
        identity: string;
        trigger: string;
        policyJson?: string;
        custodian?: string;
        json?: boolean;
      }) => {
        const identity = checkIdentity(opts.identity);
        const trigger = parseTrigger(opts.trigger);
        const { policy } = parsePolicyJson(opts.policyJson, trigger);
        const custodian = parseCustodian(opts.custodian);
        const plan = await withPool((pool) =>
          buildPlan(pool, { identity, trigger, policy, custodian, now: new Date() }),
        );
        process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : renderPlan(plan));
      },
    );

  rotate
    .command('start')
    .description('start a rotation workflow; prints its workflow id')
    .requiredOption('--identity <name>', 'the signing identity')
    .requiredOption('--trigger <trigger>', 'compromise, scheduled, personnel or hsm-replacement')
    .requiredOption('--reason <text>', 'why (recorded in the audit log and the on-call notice)')
    .option('--requested-by <who>', 'who asks (default: $USER)')
    .option('--custodian <kind>', 'where the new key is made: pkcs11 or software (default: ROTOR_CUSTODIAN)')
    .option('--policy-json <json>', "overrides of the trigger's default policy")
    .option(
      '--trusted-before <iso8601>',
      'compromise only: re-issue only manifests stored before this instant (default: when the rotation starts)',
    )
    .option('--json', 'print {workflowId, runId, taskQueue} as JSON')
    .action(
      async (opts: {
        identity: string;
        trigger: string;
        reason: string;
        requestedBy?: string;
        custodian?: string;
        policyJson?: string;
        trustedBefore?: string;
        json?: boolean;
      }) => {
        const identity = checkIdentity(opts.identity);
        const trigger = parseTrigger(opts.trigger);
        const { overrides } = parsePolicyJson(opts.policyJson, trigger);
        if (!opts.reason.trim()) throw new UsageError('--reason must not be empty', 'ROTATION_REASON');
        let trustedBefore: string | undefined;
        if (opts.trustedBefore !== undefined) {
          if (trigger !== 'compromise')
            throw new UsageError('--trusted-before applies to compromise rotations only', 'ROTATION_CUTOFF');
          const at = parseTimestamp(opts.trustedBefore);
          if (typeof at === 'string') throw new UsageError(`--trusted-before: ${at}`, 'ROTATION_CUTOFF');
          if (at.epochMs > Date.now())
            throw new UsageError('--trusted-before must not be in the future', 'ROTATION_CUTOFF');
          trustedBefore = new Date(at.epochMs).toISOString();
        }
        const input: RotationInput = {
          identity,
          trigger,
          policy: overrides,
          custodian: parseCustodian(opts.custodian),
          requestedBy: opts.requestedBy || whoAmI(),
          reason: opts.reason,
          ...(trustedBefore === undefined ? {} : { trustedBefore }),
        };
        await withTemporal(async (t) => {
          const started = await startRotation(t, input);
          if (opts.json) {
            process.stdout.write(`${JSON.stringify({ ...started, taskQueue: t.config.taskQueue })}\n`);
          } else {
            process.stdout.write(`${started.workflowId}\n`);
          }
          process.stderr.write(
            `started ${trigger} rotation of ${identity} (run ${started.runId}) on task queue ${t.config.taskQueue}\n` +
              `watch it:    rotor rotate status ${identity} --watch\n` +
              `steer it:    rotor rotate pause|resume|rollback|abort|escalate ${identity} --reason '…'\n`,
          );
        });
      },
    );

  rotate
    .command('status')
    .description("a rotation's phase, timeline, progress, verifier adoption and blockers")
    .argument('[identity]', 'the signing identity (default: the one running rotation)')
    .option('--json', 'the RotationStatus as JSON')
    .option('--watch', 'redraw every second until the rotation ends')
    .action(async (identityArg: string | undefined, opts: { json?: boolean; watch?: boolean }) => {
      await withTemporal(async (t) => {
        const workflowId = rotationWorkflowId(await resolveIdentity(t, identityArg));
        if (!opts.watch) {
          const status = await fetchStatus(t, workflowId);
          process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
          return;
        }
        const redraw = process.stdout.isTTY && !opts.json;
        for (;;) {
          const status = await fetchStatus(t, workflowId);
          if (opts.json) process.stdout.write(`${JSON.stringify(status)}\n`);
          else process.stdout.write(`${redraw ? '\x1b[2J\x1b[H' : '\n'}${renderStatus(status)}`);
          if (hasEnded(status)) return;
          await sleep(1000);
        }
      });
    });

  rotate
    .command('pause')
    .description('hold the rotation where it is (deadlines keep running; a due step runs on resume)')
    .argument('[identity]', 'the signing identity (default: the one running rotation)')
    .option('--reason <text>', 'why (shown in status, recorded in the audit log)')
    .option('--by <who>', 'who asks (default: $USER)')
    .option('--json', 'the RotationStatus after the update, as JSON')
    .action(async (identity: string | undefined, opts: ControlOptions) => {
      await control('pause', identity, opts, { reason: opts.reason });
    });

  rotate
    .command('resume')
    .description('let a paused rotation go on')
    .argument('[identity]', 'the signing identity (default: the one running rotation)')
    .option(
      '--force',
      "only for a gate's own pause (adoption, acceptance or pickup bound, analysis tripped): go past that gate",
    )
    .option('--reason <text>', 'why (recorded in the audit log)')
    .option('--by <who>', 'who asks (default: $USER)')
    .option('--json', 'the RotationStatus after the update, as JSON')
    .action(async (identity: string | undefined, opts: ControlOptions & { force?: boolean }) => {
      await control('resume', identity, opts, { reason: opts.reason, force: opts.force === true });
    });

  rotate
    .command('rollback')
    .description(
      'keep the old key: re-sign with it, take the new key out of the anchor (only before revocation)',
    )
    .argument('[identity]', 'the signing identity (default: the one running rotation)')
    .requiredOption('--reason <text>', 'why (recorded in the audit log)')
    .option('--by <who>', 'who asks (default: $USER)')
    .option('--json', 'the RotationStatus after the update, as JSON')
    .action(async (identity: string | undefined, opts: ControlOptions) => {
      await control('rollback', identity, opts, { reason: opts.reason });
    });

  rotate
    .command('escalate')
    .description(
      'turn the running rotation into a key compromise from where it stands: the old key leaves the anchor and its manifests are revoked now',
    )
    .argument('[identity]', 'the signing identity (default: the one running rotation)')
    .requiredOption('--reason <text>', 'why (recorded in the audit log and the on-call notice)')
    .option('--by <who>', 'who asks (default: $USER)')
    .option('--json', 'the RotationStatus after the update, as JSON')
    .action(async (identity: string | undefined, opts: ControlOptions) => {
      await control('escalate', identity, opts, { reason: opts.reason });
    });

  rotate
    .command('abort')
    .description(
      'stop the rotation: before revocation, undo what it did so far; on the compromise path, stop where it stands with the old key kept distrusted',
    )
    .argument('[identity]', 'the signing identity (default: the one running rotation)')
    .requiredOption('--reason <text>', 'why (recorded in the audit log)')
    .option('--by <who>', 'who asks (default: $USER)')
    .option('--json', 'the RotationStatus after the update, as JSON')
    .action(async (identity: string | undefined, opts: ControlOptions) => {
      await control('abort', identity, opts, { reason: opts.reason });
    });

  rotate
    .command('unresignable')
    .description(
      'every manifest a rotation could not re-issue, paged from Postgres (the status shows a sample)',
    )
    .argument('<identity>', 'the signing identity')
    .option('--run <runId>', "that run's list (default: the latest run that had any)")
    .option('--after <manifestId>', 'start after this manifest id (the last one of the previous page)')
    .option('--limit <n>', 'at most this many', '1000')
    .option('--json', 'JSON lines instead of text')
    .action(
      async (identity: string, opts: { run?: string; after?: string; limit: string; json?: boolean }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit <= 0)
          throw new UsageError(`--limit must be a positive integer, got '${opts.limit}'`);
        const workflowId = rotationWorkflowId(checkIdentity(identity));
        const rows = await withPool(async (pool) => {
          const runId = opts.run ?? (await latestRunOf(pool, workflowId));
          return runId === null
            ? []
            : listDeclined(pool, runId, { afterManifestId: opts.after ?? null, limit });
        });
        for (const r of rows)
          process.stdout.write(
            opts.json
              ? `${JSON.stringify({ manifestId: r.manifestId, keyId: r.keyId, code: r.code, reason: r.reason })}\n`
              : `${r.manifestId}\t${r.code}\t${r.reason}\n`,
          );
        if (rows.length === limit)
          process.stderr.write(
            `more: rotor rotate unresignable ${identity} --after ${rows[rows.length - 1]!.manifestId}\n`,
          );
      },
    );

  rotate
    .command('list')
    .description('running and recent rotations (Temporal visibility and the rotations table)')
    .option('--identity <name>', 'only this identity')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'JSON instead of a table')
    .action(async (opts: { identity?: string; limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit <= 0)
        throw new UsageError(`--limit must be a positive integer, got '${opts.limit}'`);
      const rows = await listAll({ identity: opts.identity, limit });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const header = ['WORKFLOW', 'RUN', 'TRIGGER', 'PHASE', 'STATUS', 'STARTED', 'ENDED', 'OUTCOME'];
      const cells = rows.map((r) => [
        r.workflowId,
        r.runId.slice(0, 8),
        r.trigger ?? '-',
        r.phase ?? '-',
        r.status ?? '-',
        r.startedAt ?? '-',
        r.endedAt ?? '-',
        r.outcome ?? '',
      ]);
      process.stdout.write(rows.length > 0 ? table([header, ...cells]) : '');
      if (rows.length === 0) process.stderr.write('no rotations\n');
    });
}

// ---- plan ----------------------------------------------------------------------------------------

export interface PlanGate {
  name: string;
  /** `pass`/`fail`: known now; `skip`: the scheduled rotation would end here; `at-start`: only the preflight can tell. */
  expect: 'pass' | 'fail' | 'skip' | 'at-start';
  detail: string;
}

export interface RotationPlan {
  identity: string;
  trigger: Trigger;
  custodian: CustodianKind;
  plannedAt: string;
  policy: RotationPolicy;
  timeline: { step: string; offset: string; at: string }[];
  activeKey: { keyId: string; custodian: string; activatedAt: string | null; ageDays: number } | null;
  /** What the rotation would write: twins, revocation records, keys. */
  counts: {
    activeManifests: number;
    resign: number;
    revoke: number;
    keysGenerated: number;
    keysDestroyed: number;
  };
  gates: PlanGate[];
  /** What would happen at preflight, if it can be told now. */
  verdict: 'would-start' | 'would-skip' | 'would-fail';
}

const DAY_MS = 86_400_000;

async function buildPlan(
  pool: Pool,
  args: { identity: string; trigger: Trigger; policy: RotationPolicy; custodian: CustodianKind; now: Date },
): Promise<RotationPlan> {
  const { identity, trigger, policy, custodian, now } = args;
  const at = (seconds: number) => new Date(now.getTime() + seconds * 1000).toISOString();
  const timeline: RotationPlan['timeline'] = plannedSteps(trigger, policy).map(({ step, atSeconds }) => ({
    step,
    offset: offset(atSeconds),
    at: at(atSeconds),
  }));
  if (trigger !== 'compromise') {
    // The adoption deadline is not a step, but it is when an unadopted anchor pauses the rotation.
    // The gates before revocation start as soon as adoption passes, so the deadline follows them.
    const i = timeline.findIndex((e) => e.step === 'pre-revocation');
    timeline.splice(i + 1, 0, {
      step: 'adoption-deadline',
      offset: offset(policy.adoptBySeconds),
      at: at(policy.adoptBySeconds),
    });
  }

  const gates: PlanGate[] = [];
  const key = await activeKey(pool, identity);
  let activeManifests = 0;
  let skip = false;
  let ageDays = 0;
  if (!key) {
    gates.push({
      name: 'active-key',
      expect: 'fail',
      detail: `identity '${identity}' has no active key: run rotor key init --identity ${identity}`,
    });
  } else {
    gates.push({ name: 'active-key', expect: 'pass', detail: `${key.keyId} (${key.custodian})` });
    const since = key.activatedAt ?? key.createdAt;
    const last = await lastCompletedRotation(pool, identity);
    const reference = last?.endedAt && last.endedAt > since ? last.endedAt : since;
    ageDays = (now.getTime() - since.getTime()) / DAY_MS;
    if (trigger === 'scheduled') {
      const sinceRotation = (now.getTime() - reference.getTime()) / DAY_MS;
      const due = new Date(reference.getTime() + policy.minKeyAgeDays * DAY_MS).toISOString();
      skip = sinceRotation < policy.minKeyAgeDays;
      gates.push({
        name: 'key-age',
        expect: skip ? 'skip' : 'pass',
        detail: skip
          ? `${sinceRotation.toFixed(1)} days since the key's last rotation, under policy.minKeyAgeDays ${policy.minKeyAgeDays}: a scheduled rotation would be skipped until ${due}`
          : `${sinceRotation.toFixed(1)} days since the key's last rotation (policy.minKeyAgeDays ${policy.minKeyAgeDays})`,
      });
    }
    activeManifests = await countManifests(pool, { keyId: key.keyId, status: 'active' });
    gates.push({
      name: 'manifests-counted',
      expect: 'pass',
      detail: `${activeManifests} active manifest(s) signed by ${key.keyId}`,
    });
  }
  gates.push({
    name: 'custodian-health',
    expect: 'at-start',
    detail: `the worker opens the ${custodian} custodian and checks it`,
  });
  if (custodian === 'software' && !policy.allowSoftwareCustodian) {
    gates.push({
      name: 'custodian-policy',
      expect: 'fail',
      detail:
        'the software custodian is not an HSM and this policy requires one (set allowSoftwareCustodian for demos only)',
    });
  } else {
    gates.push({
      name: 'custodian-policy',
      expect: 'at-start',
      detail:
        custodian === 'pkcs11'
          ? 'a probe key generated on the token must be local, never extractable, always sensitive'
          : 'software custodian allowed by policy: a probe key is generated and destroyed',
    });
  }
  gates.push({
    name: 'crl-endpoint',
    expect: 'at-start',
    detail: "the worker GETs the CRL at its ROTOR_PUBLIC_URL's /.well-known/agent-manifest/revocation",
  });
  gates.push({
    name: 'crl-writable',
    expect: 'at-start',
    detail: 'a probe revocation record is written and rolled back',
  });
  gates.push({
    name: 'on-call-notified',
    expect: 'at-start',
    detail: "the on-call webhook (ROTOR_ONCALL_WEBHOOK) is told, or the worker's log",
  });

  const fails = gates.some((g) => g.expect === 'fail');
  return {
    identity,
    trigger,
    custodian,
    plannedAt: now.toISOString(),
    policy,
    timeline,
    activeKey: key
      ? {
          keyId: key.keyId,
          custodian: key.custodian,
          activatedAt: key.activatedAt?.toISOString() ?? null,
          ageDays: Number(ageDays.toFixed(2)),
        }
      : null,
    counts: {
      activeManifests,
      resign: skip ? 0 : activeManifests,
      revoke: skip ? 0 : activeManifests,
      keysGenerated: skip || !key ? 0 : 1,
      keysDestroyed: skip || !key ? 0 : 1,
    },
    gates,
    // The preflight ends a scheduled rotation that is not due before it checks anything else.
    verdict: !key ? 'would-fail' : skip ? 'would-skip' : fails ? 'would-fail' : 'would-start',
  };
}

function renderPlan(p: RotationPlan): string {
  const lines: string[] = [];
  lines.push(
    `plan: ${p.trigger} rotation of ${p.identity}, new key in the ${p.custodian} custodian, if started at ${p.plannedAt}`,
  );
  lines.push(`verdict: ${p.verdict}`);
  lines.push(
    `active key: ${p.activeKey ? `${p.activeKey.keyId} (${p.activeKey.custodian}, ${p.activeKey.ageDays} days old)` : 'none'}`,
  );
  lines.push('', 'timeline');
  lines.push(
    ...table([['STEP', 'T', 'AT'], ...p.timeline.map((e) => [e.step, e.offset, e.at])])
      .split('\n')
      .filter(Boolean)
      .map((l) => `  ${l}`),
  );
  lines.push('', 'counts');
  lines.push(`  ${p.counts.activeManifests} active manifest(s) of the current key`);
  lines.push(`  ${p.counts.resign} re-issued twin(s) signed by the new key`);
  lines.push(`  ${p.counts.revoke} revocation record(s) added to the CRL`);
  lines.push(
    `  ${p.counts.keysGenerated} key generated, ${p.counts.keysDestroyed} key destroyed (archived ${p.policy.retentionDays} days)`,
  );
  lines.push('', 'preflight gates');
  lines.push(
    ...table([['GATE', 'EXPECT', 'DETAIL'], ...p.gates.map((g) => [g.name, g.expect, g.detail])])
      .split('\n')
      .filter(Boolean)
      .map((l) => `  ${l}`),
  );
  return `${lines.join('\n')}\n`;
}

// ---- start, status, controls -------------------------------------------------------------------

async function startRotation(
  t: CliTemporal,
  input: RotationInput,
): Promise<{ workflowId: string; runId: string }> {
  const workflowId = rotationWorkflowId(input.identity);
  try {
    const handle = await t.client.workflow.start<typeof rotationWorkflow>(ROTATION_TYPE, {
      workflowId,
      taskQueue: t.config.taskQueue,
      args: [input],
      memo: { identity: input.identity, trigger: input.trigger, requestedBy: input.requestedBy },
    });
    return { workflowId, runId: handle.firstExecutionRunId };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    let running = workflowId;
    try {
      const d = await t.client.workflow.getHandle(workflowId).describe();
      running = `${workflowId} (run ${d.runId}, started ${d.startTime.toISOString()})`;
    } catch {
      // The name alone still says which workflow is in the way.
    }
    throw new RotorError(
      `a rotation of ${input.identity} is already running: ${running}; watch it with rotor rotate status ${input.identity}`,
      'ROTATION_ALREADY_RUNNING',
    );
  }
}

/** The running rotation's live status, or the final status of one that ended. */
export async function fetchStatus(t: CliTemporal, workflowId: string): Promise<RotationStatus> {
  const handle = t.client.workflow.getHandle<typeof rotationWorkflow>(workflowId);
  const d = await describeRotation(t, workflowId);
  if (d.status.name === 'RUNNING') {
    return needingWorker(t, 'the status query', 15, () => handle.query(statusQuery));
  }
  if (d.status.name === 'COMPLETED') return handle.result();
  try {
    return await needingWorker(t, 'the status query', 15, () => handle.query(statusQuery));
  } catch (err) {
    throw new RotorError(
      `rotation ${workflowId} ended ${d.status.name.toLowerCase()} and its last status cannot be read (${errorMessage(err)})`,
      'ROTATION_STATUS_UNAVAILABLE',
    );
  }
}

async function describeRotation(t: CliTemporal, workflowId: string) {
  try {
    return await t.client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new RotorError(
        `no rotation ${workflowId} in namespace ${t.config.namespace}`,
        'ROTATION_NOT_FOUND',
      );
    }
    throw err;
  }
}

interface ControlOptions {
  reason?: string;
  by?: string;
  json?: boolean;
}

type ControlKind = 'pause' | 'resume' | 'rollback' | 'abort' | 'escalate';

const CONTROL_UPDATES = {
  pause: pauseUpdate,
  resume: resumeUpdate,
  rollback: rollbackUpdate,
  abort: abortUpdate,
  escalate: escalateUpdate,
} as const;

async function control(
  kind: ControlKind,
  identityArg: string | undefined,
  opts: ControlOptions,
  request: ControlRequest & { force?: boolean },
) {
  if (request.reason !== undefined && !request.reason.trim())
    throw new UsageError('--reason must not be empty', 'ROTATION_REASON');
  await withTemporal(async (t) => {
    const identity = await resolveIdentity(t, identityArg);
    const workflowId = rotationWorkflowId(identity);
    const d = await describeRotation(t, workflowId);
    const handle = t.client.workflow.getHandle<typeof rotationWorkflow>(workflowId);
    if (d.status.name !== 'RUNNING') {
      const ended =
        d.status.name === 'COMPLETED' ? (await handle.result()).phase : d.status.name.toLowerCase();
      throw new RotorError(
        `${kind} refused: rotation ${workflowId} has ended (${ended})`,
        'ROTATION_CONTROL_REFUSED',
      );
    }
    const req = { ...request, by: opts.by || whoAmI() };
    let status: RotationStatus;
    try {
      status = await needingWorker(t, `the ${kind} update`, 30, () =>
        handle.executeUpdate(CONTROL_UPDATES[kind] as typeof resumeUpdate, { args: [req] }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw new RotorError(
          `${kind} refused: ${err.cause?.message ?? err.message}`,
          'ROTATION_CONTROL_REFUSED',
        );
      }
      if (err instanceof WorkflowNotFoundError) {
        throw new RotorError(
          `${kind} refused: rotation ${workflowId} ended meanwhile`,
          'ROTATION_CONTROL_REFUSED',
        );
      }
      throw err;
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return;
    }
    process.stdout.write(`${describeOutcome(kind, status, req)}\n`);
  });
}

function describeOutcome(
  kind: ControlKind,
  s: RotationStatus,
  req: ControlRequest & { force?: boolean },
): string {
  const where = `${s.workflowId} (phase ${s.phase})`;
  switch (kind) {
    case 'pause':
      return `paused ${where}: ${s.pauseReason}; resume with rotor rotate resume ${s.identity}`;
    case 'resume':
      return `resumed ${where}${req.force ? ', past the verifiers behind at the gate that paused it' : ''}`;
    case 'rollback':
      return `rollback of ${where} accepted: the old key stays active, manifests re-signed with it, the new key leaves the anchor; watch with rotor rotate status ${s.identity} --watch`;
    case 'abort':
      return s.path === 'compromise'
        ? `abort of ${where} accepted: the rotation stops where it stands and the old key stays distrusted (out of the anchor, never active again); watch with rotor rotate status ${s.identity} --watch`
        : `abort of ${where} accepted: what was done so far is undone; watch with rotor rotate status ${s.identity} --watch`;
    case 'escalate':
      return `escalated ${where} to a key compromise: the old key leaves the trust anchor and its manifests are revoked now, then re-issued; watch with rotor rotate status ${s.identity} --watch`;
  }
}

// ---- which rotation ------------------------------------------------------------------------------

function visibilityQuery(t: CliTemporal, extra?: string): string {
  const q = [`WorkflowType='${ROTATION_TYPE}'`, `TaskQueue='${quote(t.config.taskQueue)}'`];
  if (extra) q.push(extra);
  return q.join(' AND ');
}

function quote(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

/** The identity named, or the identity of the one rotation running on this task queue. */
async function resolveIdentity(t: CliTemporal, identity: string | undefined): Promise<string> {
  if (identity !== undefined) return checkIdentity(identity, 'identity');
  const running: string[] = [];
  for await (const w of t.client.workflow.list({ query: visibilityQuery(t, "ExecutionStatus='Running'") })) {
    running.push(w.workflowId);
    if (running.length > 10) break;
  }
  const identities = [...new Set(running)].map((id) => id.slice(ROTATION_PREFIX.length));
  if (identities.length === 1) return identities[0]!;
  if (identities.length === 0)
    throw new UsageError('no rotation is running: name the identity', 'ROTATION_IDENTITY');
  throw new UsageError(
    `${identities.length} rotations are running (${identities.join(', ')}): name the identity`,
    'ROTATION_IDENTITY',
  );
}

// ---- list ----------------------------------------------------------------------------------------

export interface RotationListEntry {
  workflowId: string;
  runId: string;
  identity: string;
  trigger: string | null;
  /** The workflow's own phase: live for running rotations, else from the rotations table. */
  phase: string | null;
  /** Temporal's execution status (RUNNING, COMPLETED, …), when visibility knows the run. */
  status: string | null;
  startedAt: string | null;
  endedAt: string | null;
  outcome: string | null;
}

async function listAll(opts: { identity?: string; limit: number }): Promise<RotationListEntry[]> {
  const byRun = new Map<string, RotationListEntry>();
  const problems: string[] = [];

  try {
    await withTemporal(async (t) => {
      const extra = opts.identity ? `WorkflowId='${quote(rotationWorkflowId(opts.identity))}'` : undefined;
      for await (const w of t.client.workflow.list({ query: visibilityQuery(t, extra) })) {
        const memo = (w.memo ?? {}) as { identity?: string; trigger?: string };
        byRun.set(w.runId, {
          workflowId: w.workflowId,
          runId: w.runId,
          identity: memo.identity ?? w.workflowId.slice(ROTATION_PREFIX.length),
          trigger: memo.trigger ?? null,
          phase: null,
          status: w.status.name,
          startedAt: w.startTime.toISOString(),
          endedAt: w.closeTime?.toISOString() ?? null,
          outcome: null,
        });
        if (byRun.size >= opts.limit) break;
      }
      // Running rotations answer with their live phase; a missing worker only leaves it blank.
      for (const e of byRun.values()) {
        if (e.status !== 'RUNNING') continue;
        try {
          const s = await needingWorker(t, 'the status query', 5, () =>
            t.client.workflow.getHandle(e.workflowId, e.runId).query(statusQuery),
          );
          e.phase = s.paused ? `${s.phase} (paused)` : s.phase;
          e.trigger = s.trigger;
        } catch {
          // Shown from the rotations table below, or left blank.
        }
      }
    });
  } catch (err) {
    problems.push(`Temporal: ${errorMessage(err)}`);
  }

  try {
    await withPool(async (pool) => {
      for (const r of await listRotations(pool, { identity: opts.identity, limit: opts.limit }))
        merge(byRun, r);
    });
  } catch (err) {
    problems.push(`rotations table: ${errorMessage(err)}`);
  }

  if (problems.length === 2)
    throw new RotorError(`cannot list rotations: ${problems.join('; ')}`, 'ROTATION_LIST', 3);
  for (const p of problems) process.stderr.write(`rotor: showing what is known without ${p}\n`);
  return [...byRun.values()]
    .sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? ''))
    .slice(0, opts.limit);
}

function merge(byRun: Map<string, RotationListEntry>, r: RotationRecord): void {
  const known = byRun.get(r.runId);
  if (!known) {
    byRun.set(r.runId, {
      workflowId: r.workflowId,
      runId: r.runId,
      identity: r.identity,
      trigger: r.trigger,
      phase: r.phase,
      status: null,
      startedAt: r.startedAt.toISOString(),
      endedAt: r.endedAt?.toISOString() ?? null,
      outcome: r.outcome,
    });
    return;
  }
  known.trigger ??= r.trigger;
  known.phase ??= r.phase;
  known.outcome ??= r.outcome;
  known.endedAt ??= r.endedAt?.toISOString() ?? null;
}
