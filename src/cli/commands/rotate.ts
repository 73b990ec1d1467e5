/**
 * `rotor rotate …`: plan, start, watch and steer a rotation. Parse, call src/rotation/, render:
 * the plan, the Temporal calls and the listing live in the rotation layer; the controls are one
 * command per entry of its `CONTROLS` table, and a refusal comes back with the workflow's own
 * reason and exit code 1.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { RotorConfig } from '../../config';
import { UsageError } from '../../errors';
import {
  CONTROLS,
  type ControlKind,
  type ControlSpec,
  checkControlRequest,
  controlRotation,
  parseTrustedBefore,
} from '../../rotation/control';
import { listRotationRuns } from '../../rotation/list';
import { buildPlan } from '../../rotation/plan';
import { startRotation } from '../../rotation/start';
import { fetchStatus, resolveIdentity } from '../../rotation/status';
import { withPool } from '../../store/db';
import { latestRunOf, listDeclined } from '../../store/declined';
import { type RotationInput, rotationWorkflowId } from '../../workflows/rotation-api';
import { checkIdentity, parseCustodian, parsePolicyJson, parseTrigger } from '../rotation-options';
import { hasEnded, renderPlan, renderRotationList, renderStatus } from '../rotation-view';
import { withTemporal } from '../temporal-client';

export function registerRotateCommands(program: Command, config: RotorConfig): void {
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
        const { policy } = parsePolicyJson(opts.policyJson, trigger, config.anchorMaxAgeSeconds);
        const custodian = parseCustodian(opts.custodian, config.custody);
        const plan = await withPool(config.databaseUrl, (pool) =>
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
        const { overrides } = parsePolicyJson(opts.policyJson, trigger, config.anchorMaxAgeSeconds);
        if (!opts.reason.trim()) throw new UsageError('--reason must not be empty', 'ROTATION_REASON');
        let trustedBefore: string | undefined;
        if (opts.trustedBefore !== undefined) {
          if (trigger !== 'compromise')
            throw new UsageError('--trusted-before applies to compromise rotations only', 'ROTATION_CUTOFF');
          trustedBefore = parseTrustedBefore(opts.trustedBefore, '--trusted-before');
        }
        const input: RotationInput = {
          identity,
          trigger,
          policy: overrides,
          custodian: parseCustodian(opts.custodian, config.custody),
          requestedBy: opts.requestedBy || config.operator,
          reason: opts.reason,
          ...(trustedBefore === undefined ? {} : { trustedBefore }),
        };
        await withTemporal(config.temporal, async (t) => {
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
      await withTemporal(config.temporal, async (t) => {
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

  for (const [name, spec] of Object.entries(CONTROLS) as [ControlKind, (typeof CONTROLS)[ControlKind]][]) {
    const command = rotate
      .command(name)
      .description(spec.description)
      .argument('[identity]', 'the signing identity (default: the one running rotation)');
    const flags: NonNullable<ControlSpec['flags']> = 'flags' in spec ? spec.flags : [];
    for (const f of flags) command.option(f.flag, f.description);
    if (spec.reasonRequired) command.requiredOption('--reason <text>', spec.reasonHelp);
    else command.option('--reason <text>', spec.reasonHelp);
    command
      .option('--by <who>', 'who asks (default: $USER)')
      .option('--json', 'the RotationStatus after the update, as JSON')
      .action(async (identityArg: string | undefined, opts: Record<string, unknown>) => {
        const request: Record<string, unknown> = { reason: opts.reason as string | undefined };
        for (const f of flags) {
          if (!f.parse) request[f.field] = opts[f.field] === true;
          else if (opts[f.field] !== undefined) request[f.field] = f.parse(String(opts[f.field]));
        }
        checkControlRequest(name, request);
        await withTemporal(config.temporal, async (t) => {
          const identity = await resolveIdentity(t, identityArg);
          const { status, outcome } = await controlRotation(t, name, identity, {
            ...request,
            by: (opts.by as string | undefined) || config.operator,
          });
          process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : `${outcome}\n`);
        });
      });
  }

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
        const rows = await withPool(config.databaseUrl, async (pool) => {
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
      const rows = await listRotationRuns(
        { identity: opts.identity, limit },
        {
          withTemporal: (fn) => withTemporal(config.temporal, fn),
          withPool: (fn) => withPool(config.databaseUrl, fn),
        },
        (problem) => process.stderr.write(`rotor: showing what is known without ${problem}\n`),
      );
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      process.stdout.write(renderRotationList(rows));
      if (rows.length === 0) process.stderr.write('no rotations\n');
    });
}
