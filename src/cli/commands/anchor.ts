/**
 * `rotor anchor`: the anchor root (root keys that sign every trust anchor, issue 12) and the
 * offline check of a signed anchor, as any verifier would make it.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { initAnchorRoot, renewAnchor, rotateAnchorRoot } from '../../activities/anchor-root';
import { positiveInt, type RotorConfig } from '../../config';
import type { CustodianKind, KeyCustodian } from '../../custody/custodian';
import { custodianCache, openCustodian, parseCustodianKind } from '../../custody/index';
import { errorMessage, RotorError, UsageError } from '../../errors';
import {
  b64urlEncode,
  MAX_ROOT_CHAIN_STEPS,
  parseTimestamp,
  type RootSet,
  verifyRootChainLink,
  verifySignedAnchor,
} from '../../manifest';
import { currentRootSet, type StoredRootSet } from '../../store/anchor-roots';
import { withPool } from '../../store/db';
import { currentTrustAnchor, rootChainLink } from '../../store/trust-anchors';
import { pinnedRoot } from '../../verifier/reference-verifier';
import { registerAnchorScheduleCommands } from './anchor-schedule';
import { withCustodian } from './key';

function rootJson(root: StoredRootSet) {
  return {
    identity: root.identity,
    root_version: root.rootVersion,
    threshold: root.threshold,
    keys: root.keys.map((k) => ({ kid: k.keyId, public_key: b64urlEncode(k.publicKey), state: k.state })),
  };
}

function pinHint(root: StoredRootSet): string {
  const flags = root.keys.map((k) => `--root ${b64urlEncode(k.publicKey)}`).join(' ');
  return `verifiers pin: ${flags}${root.threshold > 1 ? ` --root-threshold ${root.threshold}` : ''} --root-version ${root.rootVersion}`;
}

interface RootOpts {
  identity: string;
  custodian?: string;
  keys: string;
  threshold: string;
}

export function registerAnchorCommands(program: Command, config: RotorConfig): void {
  const anchor = program
    .command('anchor')
    .description('signed trust anchors: the anchor root, renewal, verification');
  const root = anchor.command('root').description("the identity's anchor root keys (TUF's root role)");
  registerAnchorScheduleCommands(anchor, config);

  const kindOf = (opts: { custodian?: string }): CustodianKind =>
    opts.custodian ? parseCustodianKind(opts.custodian, '--custodian') : config.custody.kind;

  root
    .command('init')
    .description(
      'give an identity its first root key set (and revocation key) in the custodian, and publish its anchor signed by it',
    )
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--custodian <kind>', 'pkcs11 or software (default: ROTOR_CUSTODIAN, else software)')
    .option('--keys <n>', 'root keys to generate', '1')
    .option('--threshold <n>', 'how many root keys must sign an anchor', '1')
    .action(async (opts: RootOpts) => {
      const kind = kindOf(opts);
      await withPool(config.databaseUrl, (pool) =>
        withCustodian(kind, config.custody, async (custodian) => {
          const change = await initAnchorRoot(pool, custodian, opts.identity, {
            count: positiveInt(opts.keys, '--keys', 1),
            threshold: positiveInt(opts.threshold, '--threshold', 1),
            lifetimeSeconds: config.worker.anchorLifetimeSeconds,
            crlMetaLifetimeSeconds: config.worker.crlMetaLifetimeSeconds,
          });
          process.stderr.write(
            `identity ${opts.identity}: root set ${change.root.rootVersion} (${change.root.keys.length} key(s), threshold ${change.root.threshold}); trust anchor v${change.anchor.version} signed\n${pinHint(change.root)}\n`,
          );
          process.stdout.write(`${JSON.stringify(rootJson(change.root), null, 2)}\n`);
        }),
      );
    });

  root
    .command('rotate')
    .description(
      'a new root key set; the anchor naming it is signed by a threshold of the current set and of the new one, then the current set is retired',
    )
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--custodian <kind>', 'pkcs11 or software (default: ROTOR_CUSTODIAN, else software)')
    .option('--keys <n>', 'root keys in the new set', '1')
    .option('--threshold <n>', 'how many keys of the new set must sign', '1')
    .action(async (opts: RootOpts) => {
      const kind = kindOf(opts);
      await withPool(config.databaseUrl, async (pool) => {
        const before = await currentRootSet(pool, opts.identity);
        // The current set's keys must sign too: open every custodian they live in.
        const kinds = new Set<CustodianKind>([
          kind,
          ...((before?.keys.map((k) => k.custodian) ?? []) as CustodianKind[]),
        ]);
        const opened = new Map<CustodianKind, KeyCustodian>();
        try {
          for (const k of kinds) opened.set(k, await openCustodian(k, config.custody));
          const change = await rotateAnchorRoot(pool, opened.get(kind)!, opts.identity, {
            count: positiveInt(opts.keys, '--keys', 1),
            threshold: positiveInt(opts.threshold, '--threshold', 1),
            lifetimeSeconds: config.worker.anchorLifetimeSeconds,
            crlMetaLifetimeSeconds: config.worker.crlMetaLifetimeSeconds,
          });
          process.stderr.write(
            `identity ${opts.identity}: root set ${change.root.rootVersion} replaces ${before?.rootVersion}; trust anchor v${change.anchor.version} signed by both; ${change.retired.length} old root key(s) retired\n${pinHint(change.root)}\n`,
          );
          process.stdout.write(`${JSON.stringify(rootJson(change.root), null, 2)}\n`);
        } finally {
          // Closing custodians on the way out: the command's own outcome is what is reported.
          for (const c of opened.values()) await c.close().catch(() => {});
        }
      });
    });

  root
    .command('show')
    .description("the identity's current root key set: what verifiers pin (--root flags on stderr)")
    .requiredOption('--identity <name>', 'the signing identity')
    .action(async (opts: { identity: string }) => {
      await withPool(config.databaseUrl, async (pool) => {
        const current = await currentRootSet(pool, opts.identity);
        if (!current) {
          throw new RotorError(
            `identity ${opts.identity} has no anchor root: rotor anchor root init --identity ${opts.identity}`,
            'ROOT_NONE',
          );
        }
        process.stdout.write(`${JSON.stringify(rootJson(current), null, 2)}\n`);
        process.stderr.write(`${pinHint(current)}\n`);
      });
    });

  anchor
    .command('renew')
    .description('re-sign the current anchor as a new version when it expires within --within seconds')
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--within <seconds>', 'renew when it expires sooner than this (default: half the lifetime)')
    .action(async (opts: { identity: string; within?: string }) => {
      const lifetime = config.worker.anchorLifetimeSeconds;
      const within = positiveInt(opts.within, '--within', Math.floor(lifetime / 2));
      const custodians = custodianCache(config.custody);
      try {
        await withPool(config.databaseUrl, async (pool) => {
          const result = await renewAnchor(pool, (k) => custodians.get(k), opts.identity, {
            withinSeconds: within,
            lifetimeSeconds: lifetime,
          });
          process.stderr.write(
            result.published
              ? `trust anchor of ${opts.identity} re-signed as v${result.version}, expires ${result.expiresAt?.toISOString()}\n`
              : `trust anchor v${result.version} of ${opts.identity} expires ${result.expiresAt?.toISOString()}: not due\n`,
          );
          process.stdout.write(
            `${JSON.stringify({ version: result.version, published: result.published, expires_at: result.expiresAt?.toISOString() ?? null })}\n`,
          );
        });
      } finally {
        // Closing custodians on the way out: the command's own outcome is what is reported.
        await custodians.closeAll().catch(() => {});
      }
    });

  anchor
    .command('show')
    .description(
      'the signed anchor currently published for an identity, exactly as served (trust-anchor.jws); with --root-set, a link of its root chain (root/<n>.jws)',
    )
    .requiredOption('--identity <name>', 'the signing identity')
    .option('--root-set <n>', 'the anchor that introduced root set n, for rotor anchor verify --chain')
    .action(async (opts: { identity: string; rootSet?: string }) => {
      const rootSet = opts.rootSet === undefined ? undefined : positiveInt(opts.rootSet, '--root-set', 1);
      await withPool(config.databaseUrl, async (pool) => {
        if (rootSet !== undefined) {
          const link = await rootChainLink(pool, opts.identity, rootSet);
          if (!link) {
            throw new RotorError(
              `identity ${opts.identity} has no signed anchor introducing root set ${rootSet}`,
              'ROOT_VERSION_NOT_FOUND',
            );
          }
          process.stdout.write(link.jws);
          return;
        }
        const current = await currentTrustAnchor(pool, opts.identity);
        if (!current?.jws) {
          throw new RotorError(`identity ${opts.identity} has no signed trust anchor`, 'ANCHOR_NONE');
        }
        process.stdout.write(current.jws);
      });
    });

  anchor
    .command('verify')
    .description(
      'verify a signed anchor (trust-anchor.jws) against pinned root keys; exit 0 only when it is trusted',
    )
    .argument('<file>', "the JWS file ('-' for stdin)")
    .requiredOption(
      '--root <b64url>',
      'a pinned root public key; repeat for each',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--threshold <n>', 'how many pinned root keys must sign', '1')
    .option('--root-version <n>', 'the version of the pinned root set (rotor anchor root show)', '1')
    .option(
      '--chain <file>',
      'the root chain after the pinned set, in order: root/<n>.jws as rotor serve serves it; repeat for each',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--now <iso>', 'judge expiry at this time instead of now')
    .option('--min-version <n>', 'refuse anchors below this version (the version held: rollback)')
    .option('--identity <name>', 'refuse an anchor of another identity')
    .action(
      async (
        file: string,
        opts: {
          root: string[];
          threshold: string;
          rootVersion: string;
          chain?: string[];
          now?: string;
          minVersion?: string;
          identity?: string;
        },
      ) => {
        let now = new Date();
        if (opts.now !== undefined) {
          const t = parseTimestamp(opts.now);
          if (typeof t === 'string') throw new UsageError(`--now: ${t}`);
          now = new Date(t.epochMs);
        }
        const pinnedVersion = positiveInt(opts.rootVersion, '--root-version', 1);
        const minVersion =
          opts.minVersion === undefined ? undefined : positiveInt(opts.minVersion, '--min-version', 1);
        const links = opts.chain ?? [];
        if (links.includes('-')) throw new UsageError('--chain: a link is read from a file, not stdin');
        if (links.length > MAX_ROOT_CHAIN_STEPS) {
          throw new UsageError(
            `--chain: ${links.length} links given, at most ${MAX_ROOT_CHAIN_STEPS} are followed: pin a newer root (rotor anchor root show)`,
          );
        }
        const text = await readInput(file, 'the anchor');
        // TUF's root chain, as the online verifier walks it (README "Following root rotations"):
        // each link is trusted only under the set trusted so far, and the anchor only under the last.
        let root: RootSet = pinnedRoot(opts.root, positiveInt(opts.threshold, '--threshold', 1));
        let identity = opts.identity;
        let linkVersion = 0;
        const followed: { root_version: number; version: number; sha256: string }[] = [];
        for (const [i, linkFile] of links.entries()) {
          const n = pinnedVersion + i + 1;
          const link = verifyRootChainLink(await readInput(linkFile, '--chain'), {
            trusted: root,
            rootVersion: n,
            minVersion: linkVersion + 1,
            identity,
            now,
            source: `root chain link ${n} (${linkFile})`,
          });
          // The first link fixes the identity when --identity does not: every later one must agree.
          identity ??= link.payload.identity;
          root = link.root;
          linkVersion = link.version;
          followed.push({ root_version: n, version: link.version, sha256: link.sha256 });
        }
        const source = file === '-' ? 'stdin' : file;
        const floor = Math.max(minVersion ?? 0, linkVersion);
        const chainEnd = pinnedVersion + links.length;
        const trusted = verifySignedAnchor(text, {
          trusted: root,
          // The set trusted now: the pinned one, or the one the chain ended at.
          rootVersion: chainEnd,
          now,
          minVersion: floor > 0 ? floor : undefined,
          identity,
          source,
        });
        if (links.length > 0 && trusted.rootVersion !== chainEnd) {
          throw new RotorError(
            `${source}: names root set ${trusted.rootVersion} but the root chain ends at ${chainEnd}: refused`,
            'ANCHOR_UNTRUSTED',
          );
        }
        process.stdout.write(
          `${JSON.stringify(
            {
              trusted: true,
              identity: trusted.payload.identity,
              version: trusted.version,
              issued_at: trusted.payload.issued_at,
              expires_at: trusted.payload.expires_at,
              active_key_id: trusted.document.active_key_id,
              signed_by: trusted.signedBy,
              root: trusted.payload.root,
              root_chain: followed,
              sha256: trusted.sha256,
            },
            null,
            2,
          )}\n`,
        );
      },
    );
}

/** A file's text, or stdin's for '-'; `what` names it in the one-line error. */
async function readInput(file: string, what: string): Promise<string> {
  try {
    return file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `${what}: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`,
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
