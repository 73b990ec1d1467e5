/**
 * `rotor schedule …`: the 90-day policy as a Temporal Schedule per identity. Each action starts
 * `scheduledRotationWorkflow`, which runs the rotation under the identity's one rotation id (so a
 * rotation already running makes it a skip) and whose preflight skips a key rotated less than
 * policy.minKeyAgeDays ago. The schedule itself skips, never queues, an overlapping action.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  type ScheduleHandle,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import type { Command } from 'commander';
import type { RotorConfig } from '../../config';
import { RotorError } from '../../errors';
import type { CustodianKind, RotationPolicy } from '../../workflows/policy';
import type {
  ScheduledRotationInput,
  ScheduledRotationResult,
  scheduledRotationWorkflow,
} from '../../workflows/scheduled';
import {
  checkIdentity,
  formatDuration,
  parseCustodian,
  parseDuration,
  parsePolicyJson,
} from '../rotation-options';
import { table } from '../rotation-view';
import { type CliTemporal, withTemporal } from '../temporal-client';

const SCHEDULE_PREFIX = 'rotation-schedule/';
const SCHEDULED_TYPE = 'scheduledRotationWorkflow';
/** A missed action older than this is dropped, not fired late: the next interval comes anyway. */
const CATCHUP_WINDOW = '10 minutes';

export function scheduleId(identity: string): string {
  return `${SCHEDULE_PREFIX}${identity}`;
}

export function registerScheduleCommands(program: Command, config: RotorConfig): void {
  const schedule = program
    .command('schedule')
    .description('the 90-day rotation policy: one Temporal Schedule per identity');

  schedule
    .command('create')
    .description('start scheduled rotations of an identity every interval (first one an interval from now)')
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--every <duration>', 'interval, like 90d, 12h, 30m, 45s', '90d')
    .option('--custodian <kind>', 'where new keys are made: pkcs11 or software (default: ROTOR_CUSTODIAN)')
    .option('--policy-json <json>', "overrides of the scheduled trigger's default policy")
    .option('--json', 'print the schedule as JSON')
    .action(
      async (opts: {
        identity: string;
        every: string;
        custodian?: string;
        policyJson?: string;
        json?: boolean;
      }) => {
        const identity = checkIdentity(opts.identity);
        const everySeconds = parseDuration(opts.every, '--every');
        const { overrides, policy } = parsePolicyJson(
          opts.policyJson,
          'scheduled',
          config.anchorMaxAgeSeconds,
        );
        const custodian = parseCustodian(opts.custodian, config.custody);
        await withTemporal(config.temporal, async (t) => {
          const handle = await createSchedule(t, { identity, everySeconds, custodian, overrides });
          const view = scheduleView(await handle.describe());
          if (opts.json) process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
          else process.stdout.write(`${view.scheduleId}\n`);
          process.stderr.write(
            `every ${formatDuration(everySeconds)} a scheduled rotation of ${identity} starts on task queue ${t.config.taskQueue}; ` +
              `next at ${view.nextActionTimes[0] ?? '(none)'}; it is skipped while the key is younger than ${policy.minKeyAgeDays} days ` +
              'or a rotation of the identity is running\n',
          );
        });
      },
    );

  schedule
    .command('list')
    .description('the rotation schedules on this task queue')
    .option('--json', 'JSON instead of a table')
    .action(async (opts: { json?: boolean }) => {
      await withTemporal(config.temporal, async (t) => {
        const views: ScheduleView[] = [];
        for await (const summary of t.client.schedule.list()) {
          if (!summary.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
          let d: ScheduleDescription;
          try {
            d = await t.client.schedule.getHandle(summary.scheduleId).describe();
          } catch (err) {
            if (err instanceof ScheduleNotFoundError) continue; // deleted since the listing
            throw err;
          }
          if (d.action.taskQueue !== t.config.taskQueue) continue;
          views.push(scheduleView(d));
        }
        views.sort((a, b) => a.identity.localeCompare(b.identity));
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
          return;
        }
        if (views.length === 0) {
          process.stderr.write(`no rotation schedules on task queue ${t.config.taskQueue}\n`);
          return;
        }
        const rows = views.map((v) => [
          v.identity,
          v.every ?? '-',
          v.custodian,
          v.paused ? 'paused' : 'active',
          v.nextActionTimes[0] ?? '-',
          v.recentActions.at(-1)?.workflowId ?? '-',
        ]);
        process.stdout.write(
          table([['IDENTITY', 'EVERY', 'CUSTODIAN', 'STATE', 'NEXT', 'LAST RUN'], ...rows]),
        );
      });
    });

  schedule
    .command('delete')
    .description("delete an identity's rotation schedule (a rotation already running goes on)")
    .requiredOption('--identity <name>', 'the signing identity')
    .action(async (opts: { identity: string }) => {
      const identity = checkIdentity(opts.identity);
      await withTemporal(config.temporal, async (t) => {
        const handle = t.client.schedule.getHandle(scheduleId(identity));
        await onSchedule(identity, () => handle.delete());
        process.stderr.write(`deleted schedule ${scheduleId(identity)}\n`);
      });
    });

  schedule
    .command('trigger-now')
    .description(
      "take the schedule's action now (still skipped when a scheduled run is going or the key is not due)",
    )
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--wait', 'wait for the scheduled run to end and print its result')
    .option('--json', 'print {workflowId, runId[, result]} as JSON')
    .action(async (opts: { identity: string; wait?: boolean; json?: boolean }) => {
      const identity = checkIdentity(opts.identity);
      await withTemporal(config.temporal, async (t) => {
        const run = await triggerNow(t, identity);
        let result: ScheduledRotationResult | undefined;
        if (opts.wait) {
          result = await t.client.workflow
            .getHandle<typeof scheduledRotationWorkflow>(run.workflowId, run.runId)
            .result();
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ ...run, ...(result ? { result } : {}) }, null, 2)}\n`);
        } else {
          process.stdout.write(`${run.workflowId}\n`);
        }
        if (result) {
          const phase = result.rotation ? `rotation ${result.rotation.phase}` : 'no rotation';
          process.stderr.write(`scheduled run ${run.workflowId}: ${phase}: ${result.reason}\n`);
        } else {
          process.stderr.write(
            `triggered ${run.workflowId}; its rotation is rotor rotate status ${identity}\n`,
          );
        }
      });
    });
}

// ---- create --------------------------------------------------------------------------------------

async function createSchedule(
  t: CliTemporal,
  args: {
    identity: string;
    everySeconds: number;
    custodian: CustodianKind;
    overrides: Partial<RotationPolicy>;
  },
): Promise<ScheduleHandle> {
  const id = scheduleId(args.identity);
  const input: ScheduledRotationInput = {
    identity: args.identity,
    custodian: args.custodian,
    policy: args.overrides,
  };
  // Interval times are epoch-aligned; this offset puts the first one a whole interval from now.
  const nowSeconds = Math.floor(Date.now() / 1000);
  const offsetSeconds = nowSeconds % args.everySeconds;
  try {
    return await t.client.schedule.create<typeof scheduledRotationWorkflow>({
      scheduleId: id,
      spec: { intervals: [{ every: args.everySeconds * 1000, offset: offsetSeconds * 1000 }] },
      action: {
        type: 'startWorkflow',
        workflowType: SCHEDULED_TYPE,
        workflowId: id,
        taskQueue: t.config.taskQueue,
        args: [input],
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW },
      memo: { identity: args.identity, every: formatDuration(args.everySeconds) },
    });
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) {
      throw new RotorError(
        `schedule ${id} already exists: rotor schedule delete --identity ${args.identity} first to change it`,
        'SCHEDULE_EXISTS',
      );
    }
    throw err;
  }
}

// ---- trigger-now ---------------------------------------------------------------------------------

/** Triggers the action and finds the run it started; a skip (overlap) is a refusal, exit 1. */
async function triggerNow(t: CliTemporal, identity: string): Promise<{ workflowId: string; runId: string }> {
  const handle = t.client.schedule.getHandle(scheduleId(identity));
  const before = await onSchedule(identity, () => handle.describe());
  const running = before.info.runningActions[0];
  if (running) {
    throw new RotorError(
      `trigger-now skipped: scheduled run ${running.workflow.workflowId} of ${identity} is still running (overlap policy SKIP)`,
      'SCHEDULE_SKIPPED',
    );
  }
  const seen = new Set(before.info.recentActions.map((a) => a.action.workflow.firstExecutionRunId));
  await onSchedule(identity, () => handle.trigger(ScheduleOverlapPolicy.SKIP));
  // The schedule takes the action asynchronously; its description shows the run once started.
  for (let attempt = 0; attempt < 100; attempt++) {
    const d = await handle.describe();
    const fresh = d.info.recentActions.find((a) => !seen.has(a.action.workflow.firstExecutionRunId));
    if (fresh)
      return {
        workflowId: fresh.action.workflow.workflowId,
        runId: fresh.action.workflow.firstExecutionRunId,
      };
    if (d.info.numActionsSkippedOverlap > before.info.numActionsSkippedOverlap) {
      throw new RotorError(
        `trigger-now skipped: a scheduled run of ${identity} is still running (overlap policy SKIP)`,
        'SCHEDULE_SKIPPED',
      );
    }
    await sleep(100);
  }
  throw new RotorError(
    `schedule ${scheduleId(identity)} accepted the trigger but showed no new run within 10s`,
    'SCHEDULE_TRIGGER_UNSEEN',
  );
}

// ---- shared --------------------------------------------------------------------------------------

/** Runs `fn`; a schedule that does not exist is a one-line error naming the identity. */
async function onSchedule<T>(identity: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw notFound(identity);
    throw err;
  }
}

function notFound(identity: string): RotorError {
  return new RotorError(
    `no schedule ${scheduleId(identity)}: create it with rotor schedule create --identity ${identity}`,
    'SCHEDULE_NOT_FOUND',
  );
}

export interface ScheduleView {
  scheduleId: string;
  identity: string;
  every: string | null;
  custodian: CustodianKind;
  policy: Partial<RotationPolicy>;
  taskQueue: string;
  paused: boolean;
  nextActionTimes: string[];
  recentActions: { workflowId: string; runId: string; takenAt: string }[];
  runningActions: { workflowId: string; runId: string }[];
  skippedOverlap: number;
}

function scheduleView(d: ScheduleDescription): ScheduleView {
  const input = (d.action.args?.[0] ?? {}) as Partial<ScheduledRotationInput>;
  const interval = d.spec.intervals?.[0];
  return {
    scheduleId: d.scheduleId,
    identity: input.identity ?? d.scheduleId.slice(SCHEDULE_PREFIX.length),
    every: interval ? formatDuration(Math.round(interval.every / 1000)) : null,
    custodian: input.custodian ?? 'software',
    policy: input.policy ?? {},
    taskQueue: d.action.taskQueue,
    paused: d.state.paused,
    nextActionTimes: d.info.nextActionTimes.map((x) => x.toISOString()),
    recentActions: d.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
      takenAt: a.takenAt.toISOString(),
    })),
    runningActions: d.info.runningActions.map((a) => ({
      workflowId: a.workflow.workflowId,
      runId: a.workflow.firstExecutionRunId,
    })),
    skippedOverlap: d.info.numActionsSkippedOverlap,
  };
}
