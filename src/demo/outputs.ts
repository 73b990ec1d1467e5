/**
 * The demo's evidence: every active manifest as stored, the trust anchor and the CRL exactly as
 * the HTTP service serves them, and then a check of those files alone, with the interop core, the
 * way a verifier that only has them would check them.
 */
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, RotorError } from '../errors';
import {
  b64urlDecode,
  coseIndexFields,
  manifestIndexFields,
  type RootSet,
  readCrl,
  type TrustAnchorDocument,
  trustedKeysFromAnchor,
  unverifiedAnchorPayload,
  validateSignedAnchorPayload,
  validateTrustAnchor,
  verifyCoseEnvelope,
  verifyManifest,
  verifySignedAnchor,
} from '../manifest';
import type { Pool } from '../store/db';
import { pageManifests } from '../store/manifests';
import { CRL_PATH, SIGNED_TRUST_ANCHOR_PATH, TRUST_ANCHOR_PATH } from '../verifier/reference-verifier';

export const OUTPUT_FILES = {
  manifests: 'manifests.jsonl',
  /** v0.2 manifests, one COSE envelope per line as hex of the stored bytes. */
  coseManifests: 'manifests-cose.jsonl',
  anchor: 'trust-anchor.json',
  signedAnchor: 'trust-anchor.jws',
  crl: 'crl.jsonl',
  summary: 'summary.json',
} as const;

export interface WrittenOutputs {
  manifests: number;
  /** Of which v0.2 envelopes (in manifests-cose.jsonl). */
  coseManifests: number;
  anchorBytes: number;
  crlBytes: number;
}

export async function writeOutputs(pool: Pool, baseUrl: string, dir: string): Promise<WrittenOutputs> {
  await mkdir(dir, { recursive: true });
  const { v01, v02 } = await writeActiveManifests(
    pool,
    join(dir, OUTPUT_FILES.manifests),
    join(dir, OUTPUT_FILES.coseManifests),
  );
  const anchor = await fetchServed(`${baseUrl}${TRUST_ANCHOR_PATH}`);
  await writeFile(join(dir, OUTPUT_FILES.anchor), anchor);
  await writeFile(
    join(dir, OUTPUT_FILES.signedAnchor),
    await fetchServed(`${baseUrl}${SIGNED_TRUST_ANCHOR_PATH}`),
  );
  const crl = await fetchServed(`${baseUrl}${CRL_PATH}`);
  await writeFile(join(dir, OUTPUT_FILES.crl), crl);
  return { manifests: v01 + v02, coseManifests: v02, anchorBytes: anchor.length, crlBytes: crl.length };
}

/** v0.1 texts to one file, v0.2 envelopes (hex) to the other, each exactly as stored. */
async function writeActiveManifests(
  pool: Pool,
  file: string,
  coseFile: string,
): Promise<{ v01: number; v02: number }> {
  const out = await open(file, 'w');
  const coseOut = await open(coseFile, 'w');
  let v01 = 0;
  let v02 = 0;
  try {
    let after: string | null = null;
    for (;;) {
      const page = await pageManifests(pool, { status: 'active', afterManifestId: after, limit: 1000 });
      if (page.length === 0) break;
      let texts = '';
      let envelopes = '';
      for (const row of page) {
        if (row.envelope !== null) {
          envelopes += `${Buffer.from(row.envelope).toString('hex')}\n`;
          v02++;
          continue;
        }
        const text = row.text ?? '';
        // One manifest per line: a stored text spanning lines cannot go in as it is, and is
        // never rewritten to fit.
        if (/[\r\n]/.test(text)) {
          throw new RotorError(
            `manifest_id ${row.manifestId}: its stored text spans several lines and cannot be written to ${file} as stored`,
            'DEMO_OUTPUT',
          );
        }
        texts += `${text}\n`;
        v01++;
      }
      await out.write(texts);
      await coseOut.write(envelopes);
      after = page.at(-1)!.manifestId;
    }
  } finally {
    await out.close();
    await coseOut.close();
  }
  return { v01, v02 };
}

/** The response body's bytes, untouched. */
async function fetchServed(url: string): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'error' });
  } catch (err) {
    throw new RotorError(`cannot fetch ${url}: ${errorMessage(err)}`, 'DEMO_OUTPUT');
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) throw new RotorError(`GET ${url} answered ${res.status}`, 'DEMO_OUTPUT');
  return body;
}

export interface OutputExpectations {
  /** The manifest_ids seeded under the old key: each must be revoked and have a twin. */
  oldManifestIds: Set<string>;
  /** Bare hex key_id every output manifest must be signed by. */
  newKeyId: string;
  now: Date;
  /** The pinned anchor root; without it, trust-anchor.jws is checked against the root it names. */
  root?: RootSet;
}

export interface OutputVerification {
  ok: boolean;
  /** One line each, naming the file, line and manifest_id; at most a few per kind. */
  problems: string[];
  manifests: { total: number; valid: number; v01: number; v02: number };
  crl: { lines: number; accepted: number; rejected: number };
  oldRevoked: { expected: number; revoked: number };
  twins: { expected: number; linked: number };
  anchor: { version: number | null; activeKeyId: string | null; keys: number };
}

const SHOWN_PER_KIND = 5;

/** Reads the three files back from `dir` and checks them against each other and the expectations. */
export async function verifyOutputs(dir: string, expect: OutputExpectations): Promise<OutputVerification> {
  const result: OutputVerification = {
    ok: false,
    problems: [],
    manifests: { total: 0, valid: 0, v01: 0, v02: 0 },
    crl: { lines: 0, accepted: 0, rejected: 0 },
    oldRevoked: { expected: expect.oldManifestIds.size, revoked: 0 },
    twins: { expected: expect.oldManifestIds.size, linked: 0 },
    anchor: { version: null, activeKeyId: null, keys: 0 },
  };
  const problems = new ProblemList(result.problems);

  let anchor: TrustAnchorDocument;
  try {
    anchor = validateTrustAnchor(JSON.parse(await readFile(join(dir, OUTPUT_FILES.anchor), 'utf8')));
  } catch (err) {
    problems.add('anchor', `${OUTPUT_FILES.anchor}: ${errorMessage(err)}`);
    return result;
  }
  result.anchor = {
    version: anchor.version ?? null,
    activeKeyId: anchor.active_key_id,
    keys: anchor.keys.length,
  };
  if (anchor.active_key_id !== `sha256:${expect.newKeyId}`) {
    problems.add(
      'anchor',
      `${OUTPUT_FILES.anchor}: active_key_id is ${anchor.active_key_id}, not the new key sha256:${expect.newKeyId}`,
    );
  }

  // Records stay trusted while the anchor lists their signer, whatever its validity window.
  const crlText = await readFile(join(dir, OUTPUT_FILES.crl), 'utf8');
  const signers = trustedKeysFromAnchor(anchor);
  // The revocation authority's key comes from the signed anchor (issue 12, ADR-0007).
  try {
    const jws = await readFile(join(dir, OUTPUT_FILES.signedAnchor), 'utf8');
    const named = validateSignedAnchorPayload(unverifiedAnchorPayload(jws));
    const root = expect.root ?? {
      threshold: named.root.threshold,
      keys: named.root.keys.map((k) => ({ kid: k.kid, publicKey: b64urlDecode(k.public_key) })),
    };
    const trusted = verifySignedAnchor(jws, {
      trusted: root,
      now: expect.now,
      source: OUTPUT_FILES.signedAnchor,
    });
    const rk = trusted.payload.revocation_key;
    if (rk) signers.set(rk.key_id, b64urlDecode(rk.public_key));
  } catch (err) {
    problems.add('anchor', `${OUTPUT_FILES.signedAnchor}: ${errorMessage(err)}`);
  }
  const crl = await readCrl(crlText, signers);
  result.crl = {
    lines: crl.accepted.length + crl.rejected.length,
    accepted: crl.accepted.length,
    rejected: crl.rejected.length,
  };
  for (const r of crl.rejected)
    problems.add('crl', `${OUTPUT_FILES.crl} line ${r.line}: not accepted: ${r.reason}`);
  const revoked = new Set(crl.accepted.map((r) => r.manifestId));
  for (const id of expect.oldManifestIds) {
    if (revoked.has(id)) result.oldRevoked.revoked++;
    else problems.add('old', `old manifest_id ${id} is not revoked by ${OUTPUT_FILES.crl}`);
  }

  const trusted = trustedKeysFromAnchor(anchor, { now: expect.now });
  const lines = await readLines(join(dir, OUTPUT_FILES.manifests));
  const coseLines = await readLines(join(dir, OUTPUT_FILES.coseManifests));
  const linked = new Set<string>();
  const check = (file: string, line: string, i: number) => {
    const where = `${file} line ${i + 1}`;
    result.manifests.total++;
    const cose = file === OUTPUT_FILES.coseManifests;
    if (cose) result.manifests.v02++;
    else result.manifests.v01++;
    const ctx = { trustedKeys: trusted, revokedIds: revoked, now: expect.now };
    let verdict: { result: string; keyId: string | null; reason: string };
    let envelope: Uint8Array | null = null;
    if (cose) {
      if (!/^(?:[0-9a-f]{2})+$/.test(line)) {
        problems.add('manifest', `${where}: not a hex envelope`);
        return;
      }
      envelope = Uint8Array.from(Buffer.from(line, 'hex'));
      verdict = verifyCoseEnvelope(envelope, ctx);
    } else verdict = verifyManifest(line, ctx);
    if (verdict.result !== 'VALID') {
      problems.add('manifest', `${where}: ${verdict.result}: ${verdict.reason}`);
      return;
    }
    if (verdict.keyId !== expect.newKeyId) {
      problems.add(
        'manifest',
        `${where}: signed by key_id ${verdict.keyId}, not the new key ${expect.newKeyId}`,
      );
      return;
    }
    result.manifests.valid++;
    const previous = (envelope !== null ? coseIndexFields(envelope, where) : manifestIndexFields(line, where))
      .previousManifestId;
    if (previous !== null && expect.oldManifestIds.has(previous)) linked.add(previous);
    else
      problems.add('twin', `${where}: previous_manifest_id ${previous} is not one of the seeded manifests`);
  };
  for (const [i, line] of lines.entries()) check(OUTPUT_FILES.manifests, line, i);
  for (const [i, line] of coseLines.entries()) check(OUTPUT_FILES.coseManifests, line, i);
  result.twins.linked = linked.size;
  if (linked.size < expect.oldManifestIds.size) {
    problems.add(
      'twin',
      `${expect.oldManifestIds.size - linked.size} seeded manifest(s) have no re-issued twin in ${OUTPUT_FILES.manifests}`,
    );
  }
  problems.close();
  result.ok = result.problems.length === 0;
  return result;
}

async function readLines(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** Keeps the first few problems of each kind and says how many more there were. */
class ProblemList {
  readonly #counts = new Map<string, number>();
  constructor(readonly out: string[]) {}

  add(kind: string, line: string): void {
    const n = (this.#counts.get(kind) ?? 0) + 1;
    this.#counts.set(kind, n);
    if (n <= SHOWN_PER_KIND) this.out.push(line);
  }

  close(): void {
    for (const [kind, n] of this.#counts) {
      if (n > SHOWN_PER_KIND) this.out.push(`… and ${n - SHOWN_PER_KIND} more ${kind} problem(s) like those`);
    }
  }
}
