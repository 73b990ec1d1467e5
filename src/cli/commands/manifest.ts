/**
 * `rotor manifest ...`: keys, canonical form, pre-image, signing and verification of
 * agent-manifest documents. stdout carries only the data asked for.
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { errorMessage, RotorError, UsageError } from '../../errors';
import {
  b64urlDecode,
  b64urlEncode,
  type CrlReport,
  canonicalBytes,
  crlLines,
  decideReissue,
  KeyFormatError,
  keyIdOf,
  MAX_DOCUMENT_CHARS,
  ManifestError,
  type ParsedStoredManifest,
  parseJson,
  parseStoredManifest,
  parseTimestamp,
  publicKeyFromSeed,
  publicKeyProblem,
  type RegistryKey,
  readCrl,
  reissueDocument,
  type Signer,
  signingPreImage,
  signManifest,
  softwareSigner,
  trustedKeysFromAnchor,
  validateTrustAnchor,
  verifyParsedManifest,
} from '../../manifest/index';

export function registerManifestCommands(program: Command): void {
  const manifest = program
    .command('manifest')
    .description('agent-manifest documents: keys, canonical form, signing, verification');

  manifest
    .command('keygen')
    .description(
      'generate an Ed25519 key: writes the base64url seed to FILE (mode 0600), prints key_id and public key',
    )
    .requiredOption('--out <file>', 'where to write the seed; never overwritten')
    .option('--print-pub', 'print the public key (always printed; kept for the runbook command line)')
    .action(async (opts: { out: string }) => {
      const seed = randomBytes(32);
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(opts.out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST')
          throw new UsageError(`${opts.out} already exists; rotor never overwrites a key file`);
        throw new UsageError(`cannot create ${opts.out}: ${errorMessage(err)}`);
      }
      try {
        await handle.writeFile(`${b64urlEncode(seed)}\n`);
      } finally {
        await handle.close();
      }
      const publicKey = publicKeyFromSeed(seed);
      seed.fill(0);
      writeJson({ key_id: keyIdOf(publicKey), public_key: b64urlEncode(publicKey) });
    });

  manifest
    .command('canonicalize')
    .description("print the canonical bytes of the whole document (the reference SDK's canonical JSON)")
    .argument('[file]', 'manifest file, or - for stdin', '-')
    .action(async (file: string) => {
      const value = parseJson(await readText(file), sourceName(file));
      process.stdout.write(canonicalBytes(value, sourceName(file)));
    });

  manifest
    .command('pre-image')
    .description('print the signing pre-image bytes')
    .argument('[file]', 'manifest file, or - for stdin', '-')
    .action(async (file: string) => {
      process.stdout.write(
        signingPreImage(parseJson(await readText(file), sourceName(file)), sourceName(file)),
      );
    });

  manifest
    .command('sign')
    .description('print (or write) the manifest with a new signature block; all other members unchanged')
    .argument('<file>', 'manifest file, or - for stdin')
    .requiredOption('--key <keyfile>', 'file holding the base64url Ed25519 seed')
    .option('-o, --out <file>', 'write the signed manifest here instead of stdout')
    .option('--signed-at <iso8601>', 'signed_at to write (default: now)')
    .action(async (file: string, opts: { key: string; out?: string; signedAt?: string }) => {
      const signer = await readSeedSigner(opts.key);
      const signedAt = opts.signedAt === undefined ? new Date() : parseInstant(opts.signedAt, '--signed-at');
      const { text, signature } = await signManifest(await readText(file), signer, {
        signedAt,
        source: sourceName(file),
      });
      if (opts.out === undefined) process.stdout.write(text);
      else {
        await fs.writeFile(opts.out, text);
        process.stderr.write(`rotor: signed with key_id ${signature.key_id}, written to ${opts.out}\n`);
      }
    });

  manifest
    .command('reissue')
    .description(
      "re-issue a manifest offline (spec 3.8): the rotation's own decision and re-issue code; prints the twin, or refuses with exit 1 and the reason",
    )
    .argument('<file>', 'manifest file, or - for stdin')
    .requiredOption(
      '--key <keyfile>',
      'file holding the base64url Ed25519 seed of the key that signs the twin',
    )
    .requiredOption(
      '--trusted-key <b64url...>',
      "public key(s) the original's signature must verify under, base64url (the registry's keys, offline)",
    )
    .option('--now <iso8601>', "the twin's issued_at and the clock of the decision (default: now)")
    .option('-o, --out <file>', 'write the twin here instead of stdout')
    .action(async (file: string, opts: { key: string; trustedKey: string[]; now?: string; out?: string }) => {
      const now = opts.now === undefined ? new Date() : parseInstant(opts.now, '--now');
      const signer = await readSeedSigner(opts.key);
      const registry = new Map<string, RegistryKey>();
      for (const text of opts.trustedKey) {
        const pk = parsePublicKey(text);
        registry.set(keyIdOf(pk), { keyId: keyIdOf(pk), identity: 'offline', publicKey: pk });
      }
      const source = sourceName(file);
      const text = await readText(file);
      let parsed: ParsedStoredManifest;
      try {
        parsed = parseStoredManifest(text, source);
      } catch (err) {
        if (err instanceof ManifestError)
          throw new RotorError(`not re-issued: ${err.message}`, 'REISSUE_DECLINED');
        throw err;
      }
      const decision = decideReissue(parsed, { lookupKey: (k) => registry.get(k), identity: 'offline', now });
      if (!decision.ok) {
        const reason =
          decision.code === 'unknown-key'
            ? decision.reason.replace(/: not in rotor's key registry$/, ': not among the --trusted-key keys')
            : decision.reason;
        throw new RotorError(`not re-issued: ${source}: ${reason}`, 'REISSUE_DECLINED');
      }
      const twin = await reissueDocument(parsed.doc, signer, { now, source });
      if (opts.out === undefined) process.stdout.write(twin.text);
      else {
        await fs.writeFile(opts.out, twin.text);
        process.stderr.write(
          `rotor: re-issued ${twin.previousManifestId} as ${twin.manifestId} with key_id ${twin.signature.key_id}, written to ${opts.out}\n`,
        );
      }
    });

  manifest
    .command('verify')
    .description('verify a manifest; prints {"result","key_id","reason"}; exit 0 only for VALID, 1 otherwise')
    .argument('<file>', 'manifest file, or - for stdin')
    .option('--public-key <b64url...>', 'trusted Ed25519 public key(s), base64url')
    .option('--trust-anchor <file|url>', 'trust anchor document (runbook step 5 shape)')
    .option('--crl <file|url>', 'FileCRL JSON-lines revocation list')
    .option('--now <iso8601>', 'the clock to verify against (default: now)')
    .action(
      async (
        file: string,
        opts: { publicKey?: string[]; trustAnchor?: string; crl?: string; now?: string },
      ) => {
        const now = opts.now === undefined ? new Date() : parseInstant(opts.now, '--now');
        const trustedKeys = await trustedKeysFromOptions(opts, now);
        const root = parseJson(await readText(file), sourceName(file));
        let revokedIds: Set<string> | undefined;
        if (opts.crl !== undefined) {
          const report = await readCrlFrom(opts.crl, trustedKeys);
          for (const r of report.rejected) {
            process.stderr.write(`rotor: ${opts.crl} line ${r.line} ignored: ${r.reason}\n`);
          }
          revokedIds = new Set(report.accepted.map((r) => r.manifestId));
        }
        const verdict = verifyParsedManifest(root, {
          trustedKeys,
          now,
          ...(revokedIds ? { revokedIds } : {}),
        });
        writeJson({ result: verdict.result, key_id: verdict.keyId, reason: verdict.reason });
        if (verdict.result !== 'VALID') process.exitCode = 1;
      },
    );
}

async function trustedKeysFromOptions(
  opts: { publicKey?: string[]; trustAnchor?: string },
  now: Date,
): Promise<Map<string, Uint8Array>> {
  if (opts.publicKey === undefined && opts.trustAnchor === undefined) {
    throw new UsageError(
      'name the trusted keys: --public-key B64URL (repeatable) or --trust-anchor FILE|URL',
    );
  }
  const keys = new Map<string, Uint8Array>();
  for (const text of opts.publicKey ?? []) {
    const pk = parsePublicKey(text);
    keys.set(keyIdOf(pk), pk);
  }
  if (opts.trustAnchor !== undefined) {
    const text = await readText(opts.trustAnchor, 'trust anchor');
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${opts.trustAnchor}: not JSON: ${errorMessage(err)}`);
    }
    const anchor = validateTrustAnchor(doc);
    for (const [id, pk] of trustedKeysFromAnchor(anchor, { now })) keys.set(id, pk);
  }
  return keys;
}

/** A --public-key value: strict base64url of a 32-byte key that is not a small-order point. */
export function parsePublicKey(text: string): Uint8Array {
  let pk: Uint8Array;
  try {
    pk = b64urlDecode(text, '--public-key');
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const problem = publicKeyProblem(pk);
  if (problem !== null) throw new UsageError(`--public-key: ${problem}`);
  return pk;
}

/** A signer over a key file as `manifest keygen` writes it; never echoes the file's content. */
export async function readSeedSigner(keyFile: string): Promise<Signer> {
  let raw: string;
  try {
    const stat = await fs.stat(keyFile);
    if (!stat.isFile()) throw new UsageError(`${keyFile} is not a regular file`);
    if (stat.size > 1024)
      throw new UsageError(
        `${keyFile} is ${stat.size} bytes: not a key file (a base64url seed is 43 characters)`,
      );
    raw = await fs.readFile(keyFile, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read key file ${keyFile}: ${errorMessage(err)}`);
  }
  const text = raw.replace(/\r?\n$/, '');
  let seed: Uint8Array;
  try {
    seed = b64urlDecode(text, `key file ${keyFile}`);
  } catch (err) {
    if (err instanceof KeyFormatError) throw new UsageError(err.message);
    throw err;
  }
  if (seed.length !== 32) {
    throw new UsageError(
      `key file ${keyFile} holds ${seed.length} bytes; an Ed25519 seed is 32 bytes (43 base64url characters)`,
    );
  }
  return softwareSigner(seed);
}

export function parseInstant(text: string, option: string): Date {
  const parsed = parseTimestamp(text);
  if (typeof parsed === 'string') throw new UsageError(`${option}: ${parsed}`);
  return new Date(parsed.epochMs);
}

/** Reads a file, `-` (stdin) or an http(s) URL as strict UTF-8, refusing oversized input. */
export async function readText(where: string, what = 'input'): Promise<string> {
  const bytes = /^https?:\/\//.test(where) ? await fetchBytes(where, what) : await readBytes(where, what);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${where} is not valid UTF-8 text`);
  }
}

const MAX_INPUT_BYTES = MAX_DOCUMENT_CHARS;

async function readBytes(file: string, what: string): Promise<Uint8Array> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).length;
      if (size > MAX_INPUT_BYTES)
        throw new UsageError(`stdin ${what} is over the ${MAX_INPUT_BYTES}-byte limit`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new UsageError(`${file} is not a regular file`);
    if (stat.size > MAX_INPUT_BYTES) {
      throw new UsageError(
        `${file} is ${stat.size} bytes, over the ${MAX_INPUT_BYTES}-byte limit for a ${what}`,
      );
    }
    return await fs.readFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${what} ${file}: ${errorMessage(err)}`);
  }
}

async function fetchBytes(url: string, what: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new UsageError(`cannot fetch ${what} ${url}: ${errorMessage(err)}`);
  }
  if (!res.ok) throw new UsageError(`cannot fetch ${what} ${url}: HTTP ${res.status}`);
  const length = Number(res.headers.get('content-length') ?? '0');
  if (length > MAX_INPUT_BYTES)
    throw new UsageError(`${url} is ${length} bytes, over the ${MAX_INPUT_BYTES}-byte limit`);
  const body = new Uint8Array(await res.arrayBuffer());
  if (body.length > MAX_INPUT_BYTES) throw new UsageError(`${url} is over the ${MAX_INPUT_BYTES}-byte limit`);
  return body;
}

function sourceName(file: string): string {
  return file === '-' ? 'stdin' : file;
}

export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Streams a CRL file or URL line by line (a CRL for a large fleet runs to tens of megabytes). */
export async function readCrlFrom(where: string, trustedKeys: Map<string, Uint8Array>): Promise<CrlReport> {
  try {
    return await readCrl(crlLines(await openStream(where)), trustedKeys);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read CRL ${where}: ${errorMessage(err)}`);
  }
}

async function openStream(where: string): Promise<AsyncIterable<Uint8Array>> {
  if (!/^https?:\/\//.test(where)) return createReadStream(where);
  const res = await fetch(where, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok || res.body === null) throw new UsageError(`cannot fetch CRL ${where}: HTTP ${res.status}`);
  return res.body as unknown as AsyncIterable<Uint8Array>;
}
