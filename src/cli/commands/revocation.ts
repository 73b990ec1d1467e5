/** `rotor revocation sign`: one signed FileCRL line, exactly as the reference SDK writes it. */
import type { Command } from 'commander';
import { signRevocation } from '../../manifest/index';
import { parseInstant, readSeedSigner } from './manifest';

export function registerRevocationCommands(program: Command): void {
  const revocation = program.command('revocation').description('signed revocation records');
  revocation
    .command('sign')
    .description('print one signed FileCRL JSON line')
    .requiredOption('--manifest-id <id>', 'the manifest_id to revoke')
    .requiredOption('--reason <text>', 'why')
    .requiredOption('--revoked-by <uri>', 'the revoking authority (SPIFFE URI, DID or email)')
    .requiredOption('--key <keyfile>', 'file holding the base64url Ed25519 seed')
    .option('--revoked-at <iso8601>', 'revocation time (default: now)')
    .action(
      async (opts: {
        manifestId: string;
        reason: string;
        revokedBy: string;
        key: string;
        revokedAt?: string;
      }) => {
        const signer = await readSeedSigner(opts.key);
        if (opts.revokedAt !== undefined) parseInstant(opts.revokedAt, '--revoked-at');
        const { line } = await signRevocation(
          {
            manifestId: opts.manifestId,
            reason: opts.reason,
            revokedBy: opts.revokedBy,
            revokedAt: opts.revokedAt ?? new Date(),
          },
          signer,
        );
        process.stdout.write(`${line}\n`);
      },
    );
}
