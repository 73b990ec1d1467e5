/**
 * What the CLI's upkeep schedules share (`rotor anchor schedule`, `rotor crl schedule`): each is
 * one Temporal Schedule starting one workflow, created once, run now on demand with the schedule's
 * own input, and deleted. A missing or doubled schedule is a one-line RotorError naming what to do.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { RotorError } from '../errors';
import type { CliTemporal } from './temporal-client';

export interface UpkeepSchedule {
  scheduleId: string;
  workflowType: string;
  /** The refusal when the schedule does not exist (says how to create it). */
  missing(): RotorError;
  /** The command that deletes it, for the refusal of a second create. */
  deleteCommand: string;
}

/** Creates the schedule: every `everySeconds`, start `workflowType` with `args`; a second run is skipped, not doubled. */
export async function createUpkeepSchedule(
  t: CliTemporal,
  schedule: UpkeepSchedule,
  options: { everySeconds: number; args: unknown[]; memo: Record<string, unknown> },
): Promise<void> {
  try {
    await t.client.schedule.create({
      scheduleId: schedule.scheduleId,
      spec: { intervals: [{ every: options.everySeconds * 1000 }] },
      action: {
        type: 'startWorkflow',
        workflowType: schedule.workflowType,
        workflowId: schedule.scheduleId,
        taskQueue: t.config.taskQueue,
        args: options.args,
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
      memo: options.memo,
    });
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) {
      throw new RotorError(
        `schedule ${schedule.scheduleId} already exists: ${schedule.deleteCommand} first`,
        'SCHEDULE_EXISTS',
      );
    }
    throw err;
  }
}

/** Runs the schedule's workflow once now, with the input the schedule passes, and returns its result. */
export async function runUpkeepNow<R>(t: CliTemporal, schedule: UpkeepSchedule): Promise<R> {
  const { action } = await t.client.schedule
    .getHandle(schedule.scheduleId)
    .describe()
    .catch((err: unknown) => {
      throw err instanceof ScheduleNotFoundError ? schedule.missing() : err;
    });
  if (action.type !== 'startWorkflow') throw schedule.missing();
  return (await t.client.workflow.execute(schedule.workflowType, {
    workflowId: `${schedule.scheduleId}/now-${Date.now()}`,
    taskQueue: action.taskQueue,
    args: action.args,
  })) as R;
}

export async function deleteUpkeepSchedule(t: CliTemporal, schedule: UpkeepSchedule): Promise<void> {
  try {
    await t.client.schedule.getHandle(schedule.scheduleId).delete();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw schedule.missing();
    throw err;
  }
}
