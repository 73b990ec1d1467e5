/**
 * `rotor audit list` and `rotor audit verify`: read the hash-chained audit log and check it.
 * verify names every edited, inserted or deleted entry and exits 1 when it finds any.
 */
import type { Command } from 'commander';
import { positiveInt, type RotorConfig } from '../../config';
import { fromPlain, stringifyJson } from '../../manifest';
import { listAudit, verifyAuditChain, verifyCheckpoints } from '../../store/audit';
import { withPool } from '../../store/db';
import { pinnedRoot } from '../../verifier/reference-verifier';
import { checkIdentity } from '../rotation-options';

export function registerAuditCommands(program: Command, config: RotorConfig): void {
  const audit = program.command('audit').description('the hash-chained audit log');

  audit
    .command('list')
    .description('print the latest audit entries as JSON lines, oldest first')
    .option('--subject <subject>', 'only entries about this subject (a key_id, a rotation id)')
    .option('--limit <n>', 'how many entries', '100')
    .action(async (opts: { subject?: string; limit: string }) => {
      const limit = positiveInt(opts.limit, '--limit', 100);
      await withPool(config.databaseUrl, async (pool) => {
        for (const e of await listAudit(pool, { subject: opts.subject, limit })) {
          // stringifyJson keeps big integers in details exact (JSON.stringify cannot).
          const line = stringifyJson(
            fromPlain({
              id: e.id,
              recorded_at: e.recordedAt.toISOString(),
              actor: e.actor,
              action: e.action,
              subject: e.subject,
              details: e.details,
              hash: e.hash,
            }),
          );
          process.stdout.write(`${line}\n`);
        }
      });
    });

  audit
    .command('verify')
    .description(
      'walk the whole chain and name every entry that was edited, inserted or deleted; with --root, also check ' +
        "every signed checkpoint against those pinned root keys, which catches a rewrite that recomputed the chain's hashes",
    )
    .option(
      '--root <b64url>',
      'a pinned anchor root public key (rotor anchor root show), as verifiers pin it; repeat for each',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--root-threshold <n>', 'how many pinned root keys must have signed a checkpoint', '1')
    .option('--identity <name>', "only this identity's checkpoints")
    .action(async (opts: { root?: string[]; rootThreshold: string; identity?: string }) => {
      const root = opts.root
        ? pinnedRoot(opts.root, positiveInt(opts.rootThreshold, '--root-threshold', 1))
        : null;
      const identity = opts.identity === undefined ? undefined : checkIdentity(opts.identity);
      await withPool(config.databaseUrl, async (pool) => {
        const chain = await verifyAuditChain(pool);
        for (const p of chain.problems) process.stderr.write(`rotor: audit entry ${p.id}: ${p.problem}\n`);
        if (root === null) {
          process.stderr.write('rotor: checkpoints not checked: give --root (the pinned anchor root keys)\n');
          process.stdout.write(`${JSON.stringify(chain)}\n`);
          if (!chain.ok) process.exitCode = 1;
          return;
        }
        const checkpoints = await verifyCheckpoints(pool, root, identity);
        for (const p of checkpoints.problems)
          process.stderr.write(
            `rotor: audit checkpoint ${p.checkpoint} (entry ${p.auditId}): ${p.problem}\n`,
          );
        if (checkpoints.checkpoints === 0)
          process.stderr.write(
            'rotor: no signed checkpoints found: a rewrite of the chain would not be detected\n',
          );
        const ok = chain.ok && checkpoints.ok && checkpoints.checkpoints > 0;
        process.stdout.write(`${JSON.stringify({ ok, chain, checkpoints })}\n`);
        if (!ok) process.exitCode = 1;
      });
    });
}
