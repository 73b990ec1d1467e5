/**
 * `rotor crl verify`: checks every line of a FileCRL and says which records hold and which do not.
 * `rotor crl compact`: takes the records of expired manifests out of the served CRL (ADR-0007),
 * then signs the CRL's header again with each identity's revocation key (the body changed), from
 * the custodians this process opens as `rotor anchor renew` does
 * (src/activities/crl-compaction.ts). `rotor crl schedule create|trigger-now|delete`: the same on a
 * Temporal Schedule the worker runs, so no cron is needed.
 */
import type { Command } from 'commander';
import {
  type CrlCompactionInput,
  type CrlCompactionResult,
  compactAndSignCrl,
} from '../../activities/crl-compaction';
import type { RotorConfig } from '../../config';
import { custodianCache } from '../../custody/index';
import { RotorError, UsageError } from '../../errors';
import { keyIdOf } from '../../manifest/index';
import { withPool } from '../../store/db';
import { DEFAULT_COMPACTION_MARGIN_SECONDS } from '../../store/revocations';
import { formatDuration, parseDuration } from '../rotation-options';
import { createUpkeepSchedule, deleteUpkeepSchedule, runUpkeepNow, type UpkeepSchedule } from '../schedules';
import { withTemporal } from '../temporal-client';
import { parsePublicKey, readCrlFrom, writeJson } from './manifest';

/** One schedule for the one served CRL, whatever the identities. */
export const CRL_COMPACTION_SCHEDULE: UpkeepSchedule = {
  scheduleId: 'crl-compaction',
  workflowType: 'crlCompactionWorkflow',
  deleteCommand: 'rotor crl schedule delete',
  missing: () => new RotorError('no CRL compaction schedule: rotor crl schedule create', 'SCHEDULE_NONE'),
};

const MARGIN_HELP = 'how long past expires_at a record stays served: more than any verifier clock lags';

function parseMargin(raw: string): number {
  if (!/^\d{1,10}$/.test(raw)) {
    throw new UsageError(`--margin must be a whole number of seconds, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

export function registerCrlCommands(program: Command, config: RotorConfig): void {
  const crl = program.command('crl').description('FileCRL JSON-lines revocation lists');
  crl
    .command('verify')
    .description(
      'check each record\'s signature; prints {"accepted":[manifest_id...],"rejected":[{"line","reason"}]}; exit 1 when any line is rejected',
    )
    .argument('<file>', 'CRL file or http(s) URL')
    .requiredOption('--public-key <b64url...>', 'trusted signer public key(s), base64url')
    .action(async (file: string, opts: { publicKey: string[] }) => {
      const trustedKeys = new Map<string, Uint8Array>();
      for (const text of opts.publicKey) {
        const pk = parsePublicKey(text);
        trustedKeys.set(keyIdOf(pk), pk);
      }
      const report = await readCrlFrom(file, trustedKeys);
      // The SDK keeps one record per manifest_id; the list names each once, in first-seen order.
      const accepted = [...new Set(report.accepted.map((r) => r.manifestId))];
      writeJson({ accepted, rejected: report.rejected });
      if (report.rejected.length > 0) process.exitCode = 1;
    });
  crl
    .command('compact')
    .description(
      'stop serving the records of manifests past expires_at + margin (they stay in the archive), then re-sign the CRL header; prints {"compacted","head","horizon","served","headers"}',
    )
    .option('--margin <seconds>', MARGIN_HELP, String(DEFAULT_COMPACTION_MARGIN_SECONDS))
    .action(async (opts: { margin: string }) => {
      const marginSeconds = parseMargin(opts.margin);
      const custodians = custodianCache(config.custody);
      try {
        const result = await withPool(config.databaseUrl, (pool) =>
          compactAndSignCrl(pool, (k) => custodians.get(k), {
            marginSeconds,
            lifetimeSeconds: config.worker.crlMetaLifetimeSeconds,
            actor: 'rotor crl compact',
          }),
        );
        writeJson(result);
      } finally {
        // Closing custodians on the way out: the command's own outcome is what is reported.
        await custodians.closeAll().catch(() => {});
      }
    });

  const schedule = crl
    .command('schedule')
    .description('compact the served CRL on a Temporal Schedule the worker runs (instead of cron)');
  schedule
    .command('create')
    .description('every --every, run what rotor crl compact does; one schedule for the whole CRL')
    .option(
      '--every <duration>',
      'how often: each compaction that removes records sends every verifier back to the full list once',
      '1d',
    )
    .option('--margin <seconds>', MARGIN_HELP, String(DEFAULT_COMPACTION_MARGIN_SECONDS))
    .action(async (opts: { every: string; margin: string }) => {
      const everySeconds = parseDuration(opts.every, '--every');
      const input: CrlCompactionInput = { marginSeconds: parseMargin(opts.margin) };
      await withTemporal(config.temporal, async (t) => {
        await createUpkeepSchedule(t, CRL_COMPACTION_SCHEDULE, {
          everySeconds,
          args: [input],
          memo: { every: formatDuration(everySeconds), marginSeconds: input.marginSeconds },
        });
        writeJson({
          schedule_id: CRL_COMPACTION_SCHEDULE.scheduleId,
          every: formatDuration(everySeconds),
          margin_seconds: input.marginSeconds,
        });
      });
    });
  schedule
    .command('trigger-now')
    .description('run the compaction once now, in the worker, and print what it did (as rotor crl compact)')
    .action(async () => {
      await withTemporal(config.temporal, async (t) => {
        writeJson(await runUpkeepNow<CrlCompactionResult>(t, CRL_COMPACTION_SCHEDULE));
      });
    });
  schedule
    .command('delete')
    .description('stop compacting the CRL on a schedule')
    .action(async () => {
      await withTemporal(config.temporal, async (t) => {
        await deleteUpkeepSchedule(t, CRL_COMPACTION_SCHEDULE);
        process.stderr.write(`deleted ${CRL_COMPACTION_SCHEDULE.scheduleId}\n`);
      });
    });
}
