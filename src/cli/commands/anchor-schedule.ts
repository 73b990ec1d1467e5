/**
 * `rotor anchor schedule create|delete|trigger-now`: a Temporal Schedule per identity that
 * re-signs its anchor before it expires (issue 12 point 1; src/workflows/anchor-upkeep.ts). A
 * pinned verifier refuses an expired anchor, so without this an identity's verifiers fail closed
 * once the anchor's lifetime (ROTOR_ANCHOR_LIFETIME_SECONDS, 7 days) has passed. The same run
 * re-signs the identity's CRL header when less than half its lifetime is left
 * (ROTOR_CRL_META_LIFETIME_SECONDS, 1 hour; src/activities/anchor-upkeep.ts), so the schedule
 * must look more often than that: every 15 minutes by default.
 */
import type { Command } from 'commander';
import type { AnchorUpkeepInput, AnchorUpkeepResult } from '../../activities/anchor-upkeep';
import type { RotorConfig } from '../../config';
import { RotorError } from '../../errors';
import { checkIdentity, formatDuration, parseDuration } from '../rotation-options';
import { createUpkeepSchedule, deleteUpkeepSchedule, runUpkeepNow, type UpkeepSchedule } from '../schedules';
import { withTemporal } from '../temporal-client';

export function anchorScheduleId(identity: string): string {
  return `anchor-upkeep/${identity}`;
}

function upkeepOf(identity: string): UpkeepSchedule {
  return {
    scheduleId: anchorScheduleId(identity),
    workflowType: 'anchorUpkeepWorkflow',
    deleteCommand: `rotor anchor schedule delete --identity ${identity}`,
    missing: () =>
      new RotorError(
        `no anchor upkeep schedule for ${identity}: rotor anchor schedule create --identity ${identity}`,
        'SCHEDULE_NONE',
      ),
  };
}

export function registerAnchorScheduleCommands(anchor: Command, config: RotorConfig): void {
  const schedule = anchor
    .command('schedule')
    .description("re-sign an identity's anchor before it expires, on a Temporal Schedule");

  schedule
    .command('create')
    .description('every --every, re-sign the anchor when it expires within --within (a new version)')
    .requiredOption('--identity <name>', 'the signing identity')
    .option(
      '--every <duration>',
      'how often to look; under half the CRL header lifetime (ROTOR_CRL_META_LIFETIME_SECONDS)',
      '15m',
    )
    .option('--within <duration>', 're-sign when it expires sooner than this (default: half the lifetime)')
    .action(async (opts: { identity: string; every: string; within?: string }) => {
      const identity = checkIdentity(opts.identity);
      const everySeconds = parseDuration(opts.every, '--every');
      const lifetime = config.worker.anchorLifetimeSeconds;
      const withinSeconds =
        opts.within === undefined ? Math.floor(lifetime / 2) : parseDuration(opts.within, '--within');
      if (withinSeconds <= everySeconds) {
        throw new RotorError(
          `--within (${formatDuration(withinSeconds)}) must be longer than --every (${formatDuration(everySeconds)}), or an anchor could expire between two looks`,
          'SCHEDULE_WINDOW',
        );
      }
      const crlLifetime = config.worker.crlMetaLifetimeSeconds;
      if (everySeconds * 2 > crlLifetime) {
        throw new RotorError(
          `--every (${formatDuration(everySeconds)}) must be at most half the CRL header lifetime (${formatDuration(crlLifetime)}, ROTOR_CRL_META_LIFETIME_SECONDS), or the signed CRL header could pass its next_update between two looks`,
          'SCHEDULE_WINDOW',
        );
      }
      const input: AnchorUpkeepInput = { identity, withinSeconds };
      await withTemporal(config.temporal, async (t) => {
        await createUpkeepSchedule(t, upkeepOf(identity), {
          everySeconds,
          args: [input],
          memo: { identity, every: formatDuration(everySeconds), within: formatDuration(withinSeconds) },
        });
        process.stdout.write(
          `${JSON.stringify({ schedule_id: anchorScheduleId(identity), every: formatDuration(everySeconds), within: formatDuration(withinSeconds) })}\n`,
        );
      });
    });

  schedule
    .command('trigger-now')
    .description('run the upkeep once now and print what it did')
    .requiredOption('--identity <name>', 'the signing identity')
    .action(async (opts: { identity: string }) => {
      const identity = checkIdentity(opts.identity);
      await withTemporal(config.temporal, async (t) => {
        const result = await runUpkeepNow<AnchorUpkeepResult>(t, upkeepOf(identity));
        process.stdout.write(
          `${JSON.stringify({
            version: result.version,
            published: result.published,
            expires_at: result.expiresAt,
            crl_seq: result.crlSeq ?? null,
            crl_signed: result.crlSigned ?? false,
            crl_next_update: result.crlNextUpdate ?? null,
          })}\n`,
        );
      });
    });

  schedule
    .command('delete')
    .description('stop re-signing the anchor on a schedule')
    .requiredOption('--identity <name>', 'the signing identity')
    .action(async (opts: { identity: string }) => {
      const identity = checkIdentity(opts.identity);
      await withTemporal(config.temporal, async (t) => {
        await deleteUpkeepSchedule(t, upkeepOf(identity));
        process.stderr.write(`deleted ${anchorScheduleId(identity)}\n`);
      });
    });
}
