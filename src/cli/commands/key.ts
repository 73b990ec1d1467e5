import type { Command } from 'commander';
import { initIdentity } from '../../activities/identity';
import { type CustodyConfig, positiveInt, type RotorConfig } from '../../config';
import { type KeyCustodian, openCustodian, parseCustodianKind } from '../../custody/index';
import { errorMessage, UsageError } from '../../errors';
import { b64urlEncode } from '../../manifest/keys';
import { withPool } from '../../store/db';
import {
  KEY_STATES,
  type KeyRecord,
  type KeyRole,
  type KeyState,
  keyTransitions,
  listKeys,
  requireKey,
} from '../../store/keys';
import { table } from '../rotation-view';

export function registerKeyCommands(program: Command, config: RotorConfig): void {
  const key = program.command('key').description('signing keys: custody and the key registry');

  key
    .command('init')
    .description(
      "generate an identity's first signing key in the configured custodian and register it active",
    )
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--custodian <kind>', 'pkcs11 or software (default: ROTOR_CUSTODIAN, else software)')
    .option('--label <label>', "the key's label in the custodian (default: rotor/<identity>/<time>)")
    .option('--root-keys <n>', 'anchor root keys to generate alongside (they sign every trust anchor)', '1')
    .option('--root-threshold <n>', 'how many root keys must sign an anchor', '1')
    .action(
      async (opts: {
        identity: string;
        custodian?: string;
        label?: string;
        rootKeys: string;
        rootThreshold: string;
      }) => {
        const kind = opts.custodian ? parseCustodianKind(opts.custodian, '--custodian') : config.custody.kind;
        if (!opts.identity.trim()) throw new UsageError('--identity must not be empty');
        await withPool(config.databaseUrl, async (pool) => {
          await withCustodian(kind, config.custody, async (custodian) => {
            const rootThreshold = positiveInt(opts.rootThreshold, '--root-threshold', 1);
            const {
              key: record,
              anchor,
              rootKeys,
              revocationKey,
            } = await initIdentity(pool, custodian, opts.identity, opts.label, {
              rootKeys: positiveInt(opts.rootKeys, '--root-keys', 1),
              rootThreshold,
              anchorLifetimeSeconds: config.worker.anchorLifetimeSeconds,
              crlMetaLifetimeSeconds: config.worker.crlMetaLifetimeSeconds,
            });
            const pins = rootKeys.map((k) => `--root ${b64urlEncode(k.publicKey)}`).join(' ');
            process.stderr.write(
              `key ${record.keyId} is now the active key of ${record.identity} (${kind} custodian)\n` +
                `anchor root: ${rootKeys.length} key(s), threshold ${rootThreshold}; verifiers pin: ${pins}\n`,
            );
            process.stdout.write(
              `${JSON.stringify(
                {
                  ...keyJson(record),
                  trust_anchor: { version: anchor.version, etag: anchor.etag, jws_sha256: anchor.jwsSha256 },
                  anchor_root: {
                    threshold: rootThreshold,
                    keys: rootKeys.map((k) => ({ kid: k.keyId, public_key: b64urlEncode(k.publicKey) })),
                  },
                  revocation_key: {
                    key_id: revocationKey.keyId,
                    public_key: b64urlEncode(revocationKey.publicKey),
                  },
                },
                null,
                2,
              )}\n`,
            );
          });
        });
      },
    );

  key
    .command('list')
    .description('the registered keys')
    .option('--json', 'JSON instead of a table')
    .option('--identity <name>', 'only this identity')
    .option('--state <state>', `only keys in this state (${KEY_STATES.join(', ')})`)
    .option('--role <role>', 'signing (manifest signing keys), root, revocation or all', 'signing')
    .action(async (opts: { json?: boolean; identity?: string; state?: string; role: string }) => {
      if (!['signing', 'root', 'revocation', 'all'].includes(opts.role)) {
        throw new UsageError(`--role must be one of signing, root, revocation, all, got '${opts.role}'`);
      }
      if (opts.state !== undefined && !(KEY_STATES as readonly string[]).includes(opts.state)) {
        throw new UsageError(`--state must be one of ${KEY_STATES.join(', ')}, got '${opts.state}'`);
      }
      await withPool(config.databaseUrl, async (pool) => {
        const keys = await listKeys(pool, {
          identity: opts.identity,
          state: opts.state as KeyState | undefined,
          role: opts.role === 'all' ? undefined : (opts.role as KeyRole),
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(keys.map(keyJson), null, 2)}\n`);
          return;
        }
        const rows = keys.map((k) => [k.keyId, k.identity, k.state, k.custodian, k.createdAt.toISOString()]);
        process.stdout.write(table([['KEY_ID', 'IDENTITY', 'STATE', 'CUSTODIAN', 'CREATED'], ...rows]));
      });
    });

  key
    .command('show')
    .description("a key's registry record, its history, and what its custodian says about it now")
    .argument('<key_id>', 'the key_id (hex, or sha256:<hex>)')
    .action(async (keyIdArg: string) => {
      const keyId = parseKeyId(keyIdArg);
      await withPool(config.databaseUrl, async (pool) => {
        const record = await requireKey(pool, keyId);
        const history = await keyTransitions(pool, keyId);
        let custody: unknown = null;
        let custodyError: string | undefined;
        try {
          custody = await withCustodian(record.custodian, config.custody, (c) => c.describe(record.handle));
        } catch (err) {
          custodyError = errorMessage(err);
        }
        const out = {
          ...keyJson(record),
          history: history.map((t) => ({ from: t.from, to: t.to, at: t.at.toISOString() })),
          custody,
          ...(custodyError ? { custody_error: custodyError } : {}),
        };
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      });
    });

  key
    .command('export-public')
    .description("print a key's public key (base64url, no padding)")
    .argument('<key_id>', 'the key_id (hex, or sha256:<hex>)')
    .action(async (keyIdArg: string) => {
      const keyId = parseKeyId(keyIdArg);
      await withPool(config.databaseUrl, async (pool) => {
        const record = await requireKey(pool, keyId);
        process.stdout.write(`${b64urlEncode(record.publicKey)}\n`);
      });
    });
}

function parseKeyId(text: string): string {
  const hex = text.startsWith('sha256:') ? text.slice('sha256:'.length) : text;
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new UsageError(`'${text}' is not a key_id (64 lowercase hex digits, optionally prefixed sha256:)`);
  }
  return hex;
}

function keyJson(k: KeyRecord) {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    key_id: k.keyId,
    identity: k.identity,
    algorithm: k.algorithm,
    public_key: b64urlEncode(k.publicKey),
    state: k.state,
    role: k.role,
    custodian: k.custodian,
    handle: k.handle,
    created_at: iso(k.createdAt),
    activated_at: iso(k.activatedAt),
    retiring_at: iso(k.retiringAt),
    retired_at: iso(k.retiredAt),
    destroyed_at: iso(k.destroyedAt),
    quarantined_at: iso(k.quarantinedAt),
    retention_until: iso(k.retentionUntil),
    description: k.description,
  };
}

export async function withCustodian<T>(
  kind: 'pkcs11' | 'software',
  custody: CustodyConfig,
  fn: (c: KeyCustodian) => Promise<T>,
): Promise<T> {
  const custodian = await openCustodian(kind, custody);
  try {
    return await fn(custodian);
  } finally {
    await custodian.close();
  }
}
