/**
 * `rotor manifest ...`: keys, canonical form, pre-image, signing and verification of
 * agent-manifest documents. stdout carries only the data asked for.
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { signTwin } from '../../activities/reissue-batch';
import { REISSUE_AS, type ReissueAs } from '../../domain';
import { errorMessage, RotorError, UsageError } from '../../errors';
import {
  b64urlDecode,
  b64urlEncode,
  CoseRefusal,
  type CrlReport,
  canonicalBytes,
  cborToJson,
  crlLines,
  decideReissue,
  decodeEnvelope,
  examineEnvelope,
  isJsonObject,
  KeyFormatError,
  keyIdOf,
  LABEL,
  looksLikeCose,
  MAX_DOCUMENT_CHARS,
  ManifestError,
  type ParsedStoredManifest,
  parseJson,
  parseStoredCopy,
  parseTimestamp,
  publicKeyFromSeed,
  publicKeyProblem,
  type RegistryKey,
  readCrl,
  type Signer,
  signCoseManifest,
  signCoseRoot,
  signingPreImage,
  signManifest,
  sigStructure1,
  softwareSigner,
  trustedKeysFromAnchor,
  validateTrustAnchor,
  verifyCoseEnvelope,
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
    .description(
      "print the canonical bytes of the whole document (the reference SDK's canonical JSON); for a COSE envelope, of its payload",
    )
    .argument('[file]', 'manifest file or COSE envelope, or - for stdin', '-')
    .option('--hex', 'the input is a hex-encoded COSE envelope; print hex')
    .action(async (file: string, opts: { hex?: boolean }) => {
      const input = await readManifestInput(file, opts.hex === true);
      const source = sourceName(file);
      const value =
        input.kind === 'cose'
          ? parseJson(payloadText(input.bytes, source), `${source} payload`)
          : parseJson(input.text, source);
      writeBytes(canonicalBytes(value, source), opts.hex === true);
    });

  manifest
    .command('pre-image')
    .description('print the signing pre-image bytes (for a COSE envelope: its Sig_structure)')
    .argument('[file]', 'manifest file or COSE envelope, or - for stdin', '-')
    .option('--hex', 'the input is a hex-encoded COSE envelope; print hex')
    .action(async (file: string, opts: { hex?: boolean }) => {
      const input = await readManifestInput(file, opts.hex === true);
      const source = sourceName(file);
      if (input.kind === 'cose') {
        const env = decodeEnvelope(input.bytes, source);
        if (env.payload === null || env.tag !== 18)
          throw new UsageError(`${source}: not a COSE_Sign1 with an inline payload`);
        writeBytes(sigStructure1(env.protectedBytes, env.payload), opts.hex === true);
        return;
      }
      writeBytes(signingPreImage(parseJson(input.text, source), source), opts.hex === true);
    });

  manifest
    .command('inspect')
    .description("print a COSE envelope's headers and payload as JSON (nothing is verified)")
    .argument('[file]', 'COSE envelope (binary), or - for stdin', '-')
    .option('--hex', 'the input is hex text')
    .action(async (file: string, opts: { hex?: boolean }) => {
      const input = await readManifestInput(file, opts.hex === true);
      const source = sourceName(file);
      if (input.kind !== 'cose') {
        throw new UsageError(
          `${source} is a JSON document (manifest v0.1 or unsigned), not a COSE envelope; inspect reads v0.2 envelopes`,
        );
      }
      process.stdout.write(`${inspectEnvelope(input.bytes, source)}\n`);
    });

  manifest
    .command('sign')
    .description(
      'sign a manifest: version 0.1 gets a new signature block (all other members unchanged); ' +
        'version 0.2 (a JSON document, or a COSE envelope whose payload is re-signed) becomes a COSE_Sign1 envelope',
    )
    .argument('<file>', 'manifest file or COSE envelope, or - for stdin')
    .requiredOption('--key <keyfile>', 'file holding the base64url Ed25519 seed')
    .option('-o, --out <file>', 'write the signed manifest here instead of stdout')
    .option('--signed-at <iso8601>', 'signed_at to write (default: now; v0.1 only)')
    .option('--hex', 'COSE in and out as hex text (one line) rather than binary')
    .action(async (file: string, opts: { key: string; out?: string; signedAt?: string; hex?: boolean }) => {
      const signer = await readSeedSigner(opts.key);
      const source = sourceName(file);
      const input = await readManifestInput(file, opts.hex === true);
      const cose =
        input.kind === 'cose'
          ? await signCoseRoot(examineForResign(input.bytes, source), signer, source)
          : isVersion02(input.text, source)
            ? await signCoseManifest(input.text, signer, { source })
            : null;
      if (cose !== null) {
        for (const member of cose.left) {
          process.stderr.write(
            `rotor: ${source}: ${member} is not part of the v0.2 payload and was left out (it attaches after signing)\n`,
          );
        }
        const out = opts.hex === true ? `${Buffer.from(cose.envelope).toString('hex')}\n` : cose.envelope;
        if (opts.out === undefined) process.stdout.write(out);
        else {
          await fs.writeFile(opts.out, out);
          process.stderr.write(`rotor: signed COSE_Sign1 with kid ${cose.keyId}, written to ${opts.out}\n`);
        }
        return;
      }
      if (input.kind !== 'json') throw new UsageError(`${source}: not a manifest`);
      const signedAt = opts.signedAt === undefined ? new Date() : parseInstant(opts.signedAt, '--signed-at');
      const { text, signature } = await signManifest(input.text, signer, {
        signedAt,
        source,
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
    .argument('<file>', 'manifest file (v0.1 JSON) or COSE envelope (v0.2), or - for stdin')
    .requiredOption(
      '--key <keyfile>',
      'file holding the base64url Ed25519 seed of the key that signs the twin',
    )
    .requiredOption(
      '--trusted-key <b64url...>',
      "public key(s) the original's signature must verify under, base64url (the registry's keys, offline)",
    )
    .option('--now <iso8601>', "the twin's issued_at and the clock of the decision (default: now)")
    .option(
      '--as <version>',
      "a v0.1 original's twin: 0.2 (a COSE_Sign1 envelope, as a rotation re-issues by default: upstream ended new v0.1 issuance on 2026-11-30) or same (v0.1); a v0.2 original's twin is always v0.2",
      '0.2',
    )
    .option('--hex', 'COSE in and out as hex text (one line) rather than binary')
    .option('-o, --out <file>', 'write the twin here instead of stdout')
    .action(
      async (
        file: string,
        opts: { key: string; trustedKey: string[]; now?: string; as: string; hex?: boolean; out?: string },
      ) => {
        const now = opts.now === undefined ? new Date() : parseInstant(opts.now, '--now');
        if (!(REISSUE_AS as readonly string[]).includes(opts.as))
          throw new UsageError(`--as must be ${REISSUE_AS.join(' or ')}, got ${JSON.stringify(opts.as)}`);
        const reissueAs = opts.as as ReissueAs;
        const signer = await readSeedSigner(opts.key);
        const registry = new Map<string, RegistryKey>();
        for (const text of opts.trustedKey) {
          const pk = parsePublicKey(text);
          registry.set(keyIdOf(pk), { keyId: keyIdOf(pk), identity: 'offline', publicKey: pk });
        }
        const source = sourceName(file);
        const input = await readManifestInput(file, opts.hex === true);
        let parsed: ParsedStoredManifest;
        try {
          parsed = parseStoredCopy(
            input.kind === 'cose'
              ? { text: null, envelope: input.bytes }
              : { text: input.text, envelope: null },
            source,
          );
        } catch (err) {
          if (err instanceof ManifestError)
            throw new RotorError(`not re-issued: ${err.message}`, 'REISSUE_DECLINED');
          throw err;
        }
        const decision = decideReissue(parsed, {
          lookupKey: (k) => registry.get(k),
          identity: 'offline',
          now,
        });
        if (!decision.ok) {
          const reason =
            decision.code === 'unknown-key'
              ? decision.reason.replace(
                  /: not in rotor's key registry$/,
                  ': not among the --trusted-key keys',
                )
              : decision.reason;
          throw new RotorError(`not re-issued: ${source}: ${reason}`, 'REISSUE_DECLINED');
        }
        let twin: Awaited<ReturnType<typeof signTwin>>;
        try {
          twin = await signTwin(parsed, reissueAs, signer, now, source);
        } catch (err) {
          // The manifest's own content leaves no twin the spec defines (a receipt, a hybrid envelope).
          if (err instanceof ManifestError)
            throw new RotorError(`not re-issued: ${err.message}`, 'REISSUE_DECLINED');
          throw err;
        }
        const previous = parsed.root.get('manifest_id');
        const out =
          'text' in twin.copy
            ? twin.copy.text
            : opts.hex === true
              ? `${Buffer.from(twin.copy.envelope).toString('hex')}\n`
              : twin.copy.envelope;
        if (opts.out === undefined) process.stdout.write(out);
        else {
          await fs.writeFile(opts.out, out);
          process.stderr.write(
            `rotor: re-issued ${typeof previous === 'string' ? previous : 'the manifest'} as ${twin.manifestId} (${'text' in twin.copy ? 'v0.1' : 'v0.2 COSE_Sign1'}) with key_id ${signer.keyId}, written to ${opts.out}\n`,
          );
        }
      },
    );

  manifest
    .command('verify')
    .description('verify a manifest; prints {"result","key_id","reason"}; exit 0 only for VALID, 1 otherwise')
    .argument('<file>', 'manifest file or COSE envelope, or - for stdin')
    .option('--hex', 'the input is a hex-encoded COSE envelope')
    .option('--public-key <b64url...>', 'trusted Ed25519 public key(s), base64url')
    .option('--trust-anchor <file|url>', 'trust anchor document (docs/runbook-key-rotation.txt Step 5 shape)')
    .option('--crl <file|url>', 'FileCRL JSON-lines revocation list')
    .option('--now <iso8601>', 'the clock to verify against (default: now)')
    .action(
      async (
        file: string,
        opts: { publicKey?: string[]; trustAnchor?: string; crl?: string; now?: string; hex?: boolean },
      ) => {
        const now = opts.now === undefined ? new Date() : parseInstant(opts.now, '--now');
        const trustedKeys = await trustedKeysFromOptions(opts, now);
        const input = await readManifestInput(file, opts.hex === true);
        let revokedIds: Set<string> | undefined;
        if (opts.crl !== undefined) {
          const report = await readCrlFrom(opts.crl, trustedKeys);
          for (const r of report.rejected) {
            process.stderr.write(`rotor: ${opts.crl} line ${r.line} ignored: ${r.reason}\n`);
          }
          revokedIds = new Set(report.accepted.map((r) => r.manifestId));
        }
        const ctx = { trustedKeys, now, ...(revokedIds ? { revokedIds } : {}) };
        if (input.kind === 'cose') {
          const verdict = verifyCoseEnvelope(input.bytes, ctx);
          writeJson({
            result: verdict.result,
            key_id: verdict.keyId,
            reason: verdict.reason,
            version: '0.2',
            upstream_result: verdict.upstream,
          });
          if (verdict.result !== 'VALID') process.exitCode = 1;
          return;
        }
        const root = parseJson(input.text, sourceName(file));
        const verdict = verifyParsedManifest(root, ctx);
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

export type ManifestInput = { kind: 'json'; text: string } | { kind: 'cose'; bytes: Uint8Array };

/**
 * A manifest from a file or stdin: a COSE envelope (binary, or hex text with `hex`), else JSON
 * text (strict UTF-8). Binary CBOR is read as such and a document that starts with `{` as JSON,
 * `hex` or not.
 */
export async function readManifestInput(where: string, hex: boolean): Promise<ManifestInput> {
  const bytes = await readBytes(where, 'input');
  if (looksLikeCose(bytes)) return { kind: 'cose', bytes };
  // With --hex, envelopes are hex text; a JSON document (to be signed) is still read as JSON.
  if (hex && !/^\s*\{/.test(Buffer.from(bytes.subarray(0, 64)).toString('latin1'))) {
    return { kind: 'cose', bytes: parseHex(Buffer.from(bytes).toString('latin1'), sourceName(where)) };
  }
  try {
    return { kind: 'json', text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    throw new UsageError(
      `${sourceName(where)} is not valid UTF-8 text, nor a tagged COSE envelope (hex text needs --hex)`,
    );
  }
}

/** Hex text of an envelope: whitespace around it ignored, anything else but hex digits refused. */
export function parseHex(text: string, source: string): Uint8Array {
  const t = text.trim();
  if (t.length === 0) throw new UsageError(`${source}: no hex text`);
  const bad = /[^0-9a-fA-F]/.exec(t);
  if (bad !== null) {
    throw new UsageError(
      `${source}: not hex: character ${JSON.stringify(bad[0])} at offset ${bad.index} (--hex takes one envelope as hex digits)`,
    );
  }
  if (t.length % 2 !== 0) throw new UsageError(`${source}: odd number of hex digits (${t.length})`);
  return Uint8Array.from(Buffer.from(t, 'hex'));
}

function writeBytes(bytes: Uint8Array, hex: boolean): void {
  process.stdout.write(hex ? `${Buffer.from(bytes).toString('hex')}\n` : bytes);
}

function payloadText(envelope: Uint8Array, source: string): string {
  const env = decodeEnvelope(envelope, source);
  if (env.payload === null) throw new UsageError(`${source}: the COSE payload is detached (nil)`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(env.payload);
  } catch {
    throw new UsageError(`${source}: the COSE payload is not UTF-8 text`);
  }
}

function isVersion02(text: string, source: string): boolean {
  const root = parseJson(text, source);
  return isJsonObject(root) && root.get('version') === '0.2';
}

/** An envelope whose payload is signed again: it must pass the v0.2 checks first. */
function examineForResign(bytes: Uint8Array, source: string) {
  return examineEnvelope(bytes, source).manifest;
}

/** The envelope as JSON: headers decoded, the payload as its own JSON text, problems named. */
export function inspectEnvelope(bytes: Uint8Array, source: string): string {
  const env = decodeEnvelope(bytes, source);
  const kid = env.protectedHeader.get(LABEL.kid);
  const head: Record<string, unknown> = {
    type: env.tag === 18 ? 'COSE_Sign1' : 'COSE_Sign',
    tag: env.tag,
    key_id: kid instanceof Uint8Array ? Buffer.from(kid).toString('hex') : null,
    protected: cborToJson(env.protectedHeader),
    protected_hex: Buffer.from(env.protectedBytes).toString('hex'),
    unprotected: cborToJson(env.unprotected),
  };
  if (env.signature !== null) head.signature_hex = Buffer.from(env.signature).toString('hex');
  if (env.signatures.length > 0) {
    head.signatures = env.signatures.map((s) => ({
      protected: cborToJson(s.protectedHeader),
      unprotected: cborToJson(s.unprotected),
      signature_hex: Buffer.from(s.signature).toString('hex'),
    }));
    const ed = env.signatures.find((s) => [-8, -19].includes(s.protectedHeader.get(LABEL.alg) as number));
    const k = (ed ?? env.signatures[0]!).protectedHeader.get(LABEL.kid);
    head.key_id = k instanceof Uint8Array ? Buffer.from(k).toString('hex') : null;
  }
  let problem: string | null = null;
  try {
    examineEnvelope(bytes, source);
  } catch (err) {
    if (!(err instanceof CoseRefusal)) throw err;
    problem = `${err.kind}: ${err.message}`;
  }
  head.problem = problem;
  const headJson = JSON.stringify(head);
  if (env.payload === null) return `${headJson.slice(0, -1)},"payload":null}`;
  let payloadJson: string | null = null;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(env.payload);
    parseJson(text); // valid JSON rotor can read: printed as it is, numbers and order kept
    payloadJson = text;
  } catch {
    payloadJson = null;
  }
  return payloadJson === null
    ? `${headJson.slice(0, -1)},"payload_hex":${JSON.stringify(Buffer.from(env.payload).toString('hex'))}}`
    : `${headJson.slice(0, -1)},"payload":${payloadJson}}`;
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
