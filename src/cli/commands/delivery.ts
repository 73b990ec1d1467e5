/**
 * `rotor delivery`: credentials agents fetch their manifests with, the outbound webhook for
 * deployment systems that push, and where the pickup of re-issued twins stands.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { positiveInt, type RotorConfig } from '../../config';
import { UsageError } from '../../errors';
import { withPool } from '../../store/db';
import {
  createCredential,
  deleteWebhook,
  getRelease,
  getWebhook,
  listCredentials,
  pickupCounts,
  revokeCredential,
  setWebhook,
} from '../../store/delivery';
import { checkIdentity } from '../rotation-options';
import { table } from '../rotation-view';

export function registerDeliveryCommands(program: Command, config: RotorConfig): void {
  const delivery = program
    .command('delivery')
    .description('manifest delivery to agents: credentials, the outbound webhook, pickup');
  const credential = delivery
    .command('credential')
    .description('credentials agents present to fetch manifests');
  credential
    .command('create')
    .description(
      'make a credential; prints its token once on stdout (only a hash is stored). ' +
        'Agents send it as "Authorization: Bearer TOKEN" to GET /v1/agents/{agent_id}/manifest',
    )
    .option('--agent <agent_id>', 'a per-agent credential: this agent only')
    .option(
      '--agent-prefix <prefix>',
      'a per-deployment credential: every agent_id starting with PREFIX (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--label <text>', 'a note for the list (who holds it)', '')
    .action(async (opts: { agent?: string; agentPrefix: string[]; label: string }) => {
      if (!opts.agent && opts.agentPrefix.length === 0)
        throw new UsageError('give --agent AGENT_ID (per agent) or --agent-prefix PREFIX (per deployment)');
      const { credential: c, token } = await withPool(config.databaseUrl, (pool) =>
        createCredential(pool, {
          kind: opts.agent ? 'agent' : 'deployment',
          agentId: opts.agent,
          agentPrefixes: opts.agentPrefix,
          label: opts.label,
        }),
      );
      process.stdout.write(`${token}\n`);
      process.stderr.write(
        `delivery credential ${c.credentialId} (${c.kind}: ${c.agentId ?? c.agentPrefixes.join(', ')}); the token is shown only now\n`,
      );
    });
  credential
    .command('list')
    .description('list credentials (never their secrets)')
    .action(async () => {
      const rows = await withPool(config.databaseUrl, (pool) => listCredentials(pool));
      process.stdout.write(
        table([
          ['CREDENTIAL', 'KIND', 'AGENTS', 'LABEL', 'CREATED', 'REVOKED'],
          ...rows.map((c) => [
            c.credentialId,
            c.kind,
            c.agentId ?? c.agentPrefixes.map((p) => `${p}*`).join(' '),
            c.label || '-',
            c.createdAt.toISOString(),
            c.revokedAt?.toISOString() ?? '-',
          ]),
        ]),
      );
    });
  credential
    .command('revoke <credential_id>')
    .description('stop accepting a credential at once')
    .action(async (id: string) => {
      const c = await withPool(config.databaseUrl, (pool) => revokeCredential(pool, id));
      process.stderr.write(`revoked delivery credential ${c.credentialId}\n`);
    });

  const webhook = delivery
    .command('webhook')
    .description('tell a deployment system which agents have new manifests (batched, retried, HMAC-signed)');
  webhook
    .command('set')
    .description('set the identity’s webhook; the HMAC secret is read from a file, never an argument')
    .requiredOption('--identity <name>', 'signing identity')
    .requiredOption('--url <url>', 'where batches are POSTed')
    .requiredOption('--secret-file <path>', 'file holding the HMAC-SHA256 secret (at least 16 characters)')
    .option('--batch-size <n>', 'agents per POST', '500')
    .action(async (opts: { identity: string; url: string; secretFile: string; batchSize: string }) => {
      const identity = checkIdentity(opts.identity);
      let secret: string;
      try {
        secret = readFileSync(opts.secretFile, 'utf8').trim();
      } catch {
        throw new UsageError(`--secret-file ${opts.secretFile} cannot be read`);
      }
      const batchSize = positiveInt(opts.batchSize, '--batch-size', 500);
      await withPool(config.databaseUrl, (pool) =>
        setWebhook(pool, { identity, url: opts.url, secret, batchSize }),
      );
      process.stderr.write(`delivery webhook of ${identity}: ${opts.url}, ${batchSize} agents per batch\n`);
    });
  webhook
    .command('show')
    .requiredOption('--identity <name>', 'signing identity')
    .action(async (opts: { identity: string }) => {
      const hook = await withPool(config.databaseUrl, (pool) =>
        getWebhook(pool, checkIdentity(opts.identity)),
      );
      if (!hook) throw new UsageError(`no delivery webhook for ${opts.identity}`);
      process.stdout.write(
        `${JSON.stringify({ identity: hook.identity, url: hook.url, batch_size: hook.batchSize })}\n`,
      );
    });
  webhook
    .command('delete')
    .requiredOption('--identity <name>', 'signing identity')
    .action(async (opts: { identity: string }) => {
      const gone = await withPool(config.databaseUrl, (pool) =>
        deleteWebhook(pool, checkIdentity(opts.identity)),
      );
      if (!gone) throw new UsageError(`no delivery webhook for ${opts.identity}`);
      process.stderr.write(`deleted the delivery webhook of ${opts.identity}\n`);
    });

  delivery
    .command('pickup <key_id>')
    .description('how many agents have picked up the twins signed by KEY_ID (JSON)')
    .action(async (keyId: string) => {
      if (!/^[0-9a-f]{64}$/.test(keyId))
        throw new UsageError(`key_id ${keyId.slice(0, 80)} is not 64 hex digits`);
      const out = await withPool(config.databaseUrl, async (pool) => ({
        release: await getRelease(pool, keyId),
        pickup: await pickupCounts(pool, keyId),
      }));
      process.stdout.write(`${JSON.stringify({ key_id: keyId, ...out })}\n`);
    });
}
