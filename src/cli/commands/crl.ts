/**
 * `rotor crl verify`: checks every line of a FileCRL and says which records hold and which do not.
 * `rotor crl compact`: takes the records of expired manifests out of the served CRL (ADR-0007),
 * then signs the CRL's header again with each identity's revocation key (the body changed), from
 * the custodians this process opens as `rotor anchor renew` does.
 */
import type { Command } from 'commander';
import { signCrlHeaders } from '../../activities/crl-meta';
import type { RotorConfig } from '../../config';
import { custodianCache } from '../../custody/index';
import { UsageError } from '../../errors';
import { keyIdOf } from '../../manifest/index';
import { withPool } from '../../store/db';
import { compactCrl, DEFAULT_COMPACTION_MARGIN_SECONDS } from '../../store/revocations';
import { parsePublicKey, readCrlFrom, writeJson } from './manifest';

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
    .option(
      '--margin <seconds>',
      'how long past expires_at a record stays served: more than any verifier clock lags',
      String(DEFAULT_COMPACTION_MARGIN_SECONDS),
    )
    .action(async (opts: { margin: string }) => {
      if (!/^\d{1,10}$/.test(opts.margin)) {
        throw new UsageError(
          `--margin must be a whole number of seconds, got ${JSON.stringify(opts.margin)}`,
        );
      }
      const lifetimeSeconds = config.worker.crlMetaLifetimeSeconds;
      const custodians = custodianCache(config.custody);
      try {
        const result = await withPool(config.databaseUrl, async (pool) => {
          const compacted = await compactCrl(pool, {
            marginSeconds: Number(opts.margin),
            actor: 'rotor crl compact',
          });
          // Every identity's header describes the shared body: each is signed again (a no-op for
          // a header already at the head, e.g. when nothing was compacted).
          const headers = await signCrlHeaders(pool, (k) => custodians.get(k), { lifetimeSeconds });
          return {
            ...compacted,
            headers: headers.map((h) => ({
              identity: h.identity,
              seq: h.seq,
              signed: h.signed,
              next_update: h.nextUpdate.toISOString(),
            })),
          };
        });
        writeJson(result);
      } finally {
        // Closing custodians on the way out: the command's own outcome is what is reported.
        await custodians.closeAll().catch(() => {});
      }
    });
}
