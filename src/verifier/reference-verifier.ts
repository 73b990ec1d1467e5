/**
 * A reference verifier: what a verifier sidecar does. It fetches the signed trust anchor and the
 * CRL over HTTP and keeps them for their Cache-Control lifetime, verifies manifests with the
 * interop core, counts VALID results per key_id, and checks in with rotor's registry. The
 * rotation's adoption step reads those check-ins, so adoption is observed rather than assumed.
 *
 * It fails closed (issue 12): the anchor root is pinned out of band; only a signed anchor that a
 * threshold of the pinned root keys signed is adopted; a lower version, an expired anchor, an
 * unsigned one and a plain-http URL off this machine are refused; fetches have a timeout and a
 * size limit; and when refreshing fails, the last trusted anchor is used only until its own
 * `expires_at`, after which nothing verifies. A verifier whose pinned root set is behind the
 * served anchor's (offline across root rotations) walks the root chain, TUF's way: each link is
 * trusted only when the set before it and its own set signed it (README "Following root rotations").
 *
 * The CRL is checked against its signed header (`revocation.meta.jws`, issue 12 point 2) whenever
 * the held anchor names a revocation key: the header must verify with that key, describe the very
 * body held (its CRL-Head, record count and SHA-256 of the whole body, deltas included), not be past
 * its `next_update`, and not go back in seq. A CRL that fails is not taken (the last good one stays);
 * once the held header's `next_update` passes with no good one fetched, nothing verifies, as with
 * an expired anchor.
 */
import { createHash, type Hash } from 'node:crypto';
import { RotorError, UsageError } from '../errors';
import {
  b64urlDecode,
  MAX_CRL_META_BYTES,
  MAX_ROOT_CHAIN_STEPS,
  MAX_SIGNED_ANCHOR_BYTES,
  type RootSet,
  readCrl,
  rootChainPath,
  rootSetFromPublicKeys,
  type SignedAnchorPayload,
  type TrustedAnchor,
  type TrustedCrlMeta,
  trustedKeysFromAnchor,
  unverifiedAnchorPayload,
  type Verdict,
  verifyCoseEnvelope,
  verifyCrlMeta,
  verifyManifest,
  verifyRootChainLink,
  verifySignedAnchor,
} from '../manifest';
import { rejectionReason } from '../manifest/rejection';
import {
  type CachedBody,
  causeOf,
  checkTransport,
  detailOf,
  fetchCached,
  fetchText,
  freshnessSeconds,
  isFresh,
} from './http-cache';

/** A manifest as presented: v0.1 JSON text, or a v0.2 COSE envelope's bytes. */
export type ManifestInput = string | Uint8Array;

/** A manifest line as files carry them: hex digits are a v0.2 envelope, anything else v0.1 JSON text. */
export function manifestFromLine(line: string): ManifestInput {
  const t = line.trim();
  return /^(?:[0-9a-fA-F]{2})+$/.test(t) ? Uint8Array.from(Buffer.from(t, 'hex')) : line;
}

export const TRUST_ANCHOR_PATH = '/.well-known/agent-manifest/trust-anchor';
export const SIGNED_TRUST_ANCHOR_PATH = '/.well-known/agent-manifest/trust-anchor.jws';
export const CRL_PATH = '/.well-known/agent-manifest/revocation';
export const CRL_META_PATH = '/.well-known/agent-manifest/revocation.meta.jws';

/** A pinned root from base64url public keys (the `--root` flags), threshold default 1. */
export function pinnedRoot(publicKeysB64url: string[], threshold = 1): RootSet {
  if (publicKeysB64url.length === 0) {
    throw new UsageError(
      'a verifier needs at least one pinned root key (--root B64URL, from rotor anchor root show)',
    );
  }
  const keys = publicKeysB64url.map((k, i) => {
    try {
      return b64urlDecode(k, `root key ${i + 1}`);
    } catch (err) {
      throw new UsageError((err as Error).message, 'VERIFIER_ROOT');
    }
  });
  try {
    return rootSetFromPublicKeys(keys, threshold);
  } catch (err) {
    throw new UsageError((err as Error).message, 'VERIFIER_ROOT');
  }
}

export interface ReferenceVerifierOptions {
  /** The verifier's id in the registry (a SPIFFE id is fine: it is percent-encoded in the path). */
  id: string;
  /** Where rotor's HTTP service answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The signing identity whose anchor this verifier holds; the service's own when omitted. */
  identity?: string;
  /** Bearer token for check-in. */
  checkInToken: string;
  /** The anchor root, configured out of band (`rotor anchor root show`). Required. */
  root: RootSet;
  /**
   * The number of that root set (`root_version` in `rotor anchor root show`; default 1): where a
   * root chain walk starts when the served anchor names a later set.
   */
  rootVersion?: number;
  /** Per fetch (default 10 s). */
  fetchTimeoutMs?: number;
  /** Largest CRL accepted (default 64 MiB); the signed anchor is capped at 256 KiB. */
  maxCrlBytes?: number;
  /**
   * Refresh the CRL with deltas (`?since=<CRL-Head>`, README "CRL deltas") once a full list gave
   * a head; default true. false fetches the full list every time (revalidated with If-None-Match),
   * as a verifier that knows no deltas does: the benchmark's "before".
   */
  incrementalCrl?: boolean;
  now?: () => Date;
}

export interface RunLoopOptions {
  intervalMs: number;
  /** The manifests to verify on each cycle (a sidecar sees the ones its agent presents). */
  manifests: () => Promise<ManifestInput[]> | ManifestInput[];
  /** Called after each cycle with the verdicts of that cycle. */
  onCycle?: (verdicts: Verdict[]) => void;
  /** Called with each failed refresh or check-in; the loop carries on with what it holds. */
  onError?: (err: unknown) => void;
}

export class ReferenceVerifier {
  readonly id: string;
  readonly #baseUrl: string;
  readonly #identity: string | undefined;
  readonly #token: string;
  readonly #now: () => Date;
  readonly #fetchTimeoutMs: number;
  readonly #maxCrlBytes: number;
  /** The pinned root; replaced by the anchor's root set after a trusted root rotation. */
  #root: RootSet;
  /** The pinned root set's number. */
  #rootVersion: number;
  #anchorBody: CachedBody | undefined;
  readonly #incrementalCrl: boolean;
  /** The CRL held: its lines as served (full list, then the deltas appended), and where it stands. */
  #crl: HeldCrl | undefined;
  /** Set when a delta was refused or made no sense: the next refresh fetches the full list. */
  #crlNeedsFull = false;
  #crlBytes = 0;
  #crlFetches = 0;
  #anchor: TrustedAnchor | undefined;
  /** manifest_ids the held CRL revokes, by records whose signature verifies with the held anchor's keys. */
  #revoked = new Set<string>();
  #crlRejected = 0;
  /** key_ids refused even when the anchor lists them: a verifier mis-pinned to older keys. */
  readonly #refused = new Set<string>();
  readonly #validCounts = new Map<string, number>();
  /** key_id (or 'none') → rejection reason → count, reported at check-in. */
  readonly #rejections = new Map<string, Map<string, number>>();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;

  constructor(options: ReferenceVerifierOptions) {
    if (!options.id) throw new UsageError('a reference verifier needs an id');
    if (!options.checkInToken)
      throw new UsageError(
        'a reference verifier needs its check-in credential (ROTOR_VERIFIER_CREDENTIAL, from rotor verifier register)',
      );
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new UsageError(`base URL ${JSON.stringify(options.baseUrl)} is not a URL`);
    }
    checkTransport(base, 'base URL');
    if (!options.root) throw new UsageError('a reference verifier needs a pinned anchor root (--root)');
    this.id = options.id;
    this.#root = options.root;
    const rootVersion = options.rootVersion ?? 1;
    if (!Number.isSafeInteger(rootVersion) || rootVersion < 1) {
      throw new UsageError(`the pinned root version must be a positive integer, got ${options.rootVersion}`);
    }
    this.#rootVersion = rootVersion;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 10_000;
    this.#maxCrlBytes = options.maxCrlBytes ?? 64 * 1024 * 1024;
    this.#incrementalCrl = options.incrementalCrl ?? true;
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#identity = options.identity;
    this.#token = options.checkInToken;
    this.#now = options.now ?? (() => new Date());
  }

  /** The version of the trust anchor held; 0 before one was trusted. */
  get anchorVersion(): number {
    return this.#anchor?.version ?? 0;
  }

  /**
   * Refuse manifests signed by `keyId` whatever the anchor says, as a verifier whose deployment
   * pinned an explicit key list does (the rotation's analysis gate is there to catch it).
   */
  refuseKey(keyId: string): void {
    this.#refused.add(keyId);
  }

  /** SHA-256 (hex) of the signed anchor held, exactly as fetched; null before one was trusted. */
  get anchorSha256(): string | null {
    return this.#anchor?.sha256 ?? null;
  }

  /** When the held anchor stops being usable; null before one was trusted. */
  get anchorExpiresAt(): Date | null {
    return this.#anchor?.expiresAt ?? null;
  }

  /** The root set currently pinned (the configured one, or a rotated one the old set signed). */
  get root(): RootSet {
    return this.#root;
  }

  /** The pinned root set's number (the configured one, or the set of the last anchor adopted). */
  get rootVersion(): number {
    return this.#rootVersion;
  }

  /** True while the held anchor is trusted and not expired. */
  get anchorUsable(): boolean {
    return this.#anchor !== undefined && this.#now().getTime() < this.#anchor.expiresAt.getTime();
  }

  /** Bare hex key_ids the held anchor makes trusted right now. */
  get trustedKeyIds(): string[] {
    return [...this.#trustedKeys().keys()].sort();
  }

  get validCounts(): Record<string, number> {
    return Object.fromEntries([...this.#validCounts].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  get rejectionCounts(): Record<string, Record<string, number>> {
    return Object.fromEntries(
      [...this.#rejections].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, m]) => [k, Object.fromEntries(m)]),
    );
  }

  get revokedCount(): number {
    return this.#revoked.size;
  }

  /** CRL lines skipped because they do not verify with the held anchor's keys (or are malformed). */
  get crlRejectedCount(): number {
    return this.#crlRejected;
  }

  /** The CRL-Head of the list held (what the next delta asks from); null when none is known. */
  get crlHead(): number | null {
    return this.#crl?.head ?? null;
  }

  /** CRL response bodies downloaded so far, in bytes, and the CRL requests made (full or delta). */
  get crlTraffic(): { bytes: number; requests: number } {
    return { bytes: this.#crlBytes, requests: this.#crlFetches };
  }

  /**
   * Fetches the anchor and the CRL, each only when its held copy is no longer fresh, revalidating
   * with If-None-Match. On a failure the held copies stay in use and the error is thrown.
   */
  async refresh(): Promise<void> {
    const nowMs = this.#now().getTime();
    const anchorStale = !isFresh(this.#anchorBody, nowMs);
    const crlStale =
      this.#crl === undefined ||
      nowMs >= this.#crl.freshUntil ||
      (this.#revocationKey() !== undefined && this.#crl.meta === undefined);
    if (!anchorStale && !crlStale) return;
    const [anchor, crl] = await Promise.allSettled([
      anchorStale
        ? fetchCached(this.#url(SIGNED_TRUST_ANCHOR_PATH), this.#anchorBody, nowMs, {
            timeoutMs: this.#fetchTimeoutMs,
            maxBytes: MAX_SIGNED_ANCHOR_BYTES,
          })
        : undefined,
      crlStale ? this.#fetchCrl(nowMs) : undefined,
    ]);
    let keysChanged = false;
    const failures: unknown[] = [];
    if (anchor.status === 'rejected') failures.push(anchor.reason);
    else if (anchor.value) {
      if (anchor.value.changed) {
        try {
          keysChanged = await this.#adoptAnchor(anchor.value.body.text);
        } catch (err) {
          // An anchor that does not validate is not adopted, and not cached as if it had been.
          failures.push(err);
        }
      }
      if (failures.length === 0) this.#anchorBody = anchor.value.body;
    }
    // Records are trusted by the anchor's keys, so a new anchor re-reads the CRL held.
    let reread = keysChanged;
    if (crl.status === 'rejected') failures.push(crl.reason);
    else if (crl.value) {
      const got = crl.value;
      try {
        if (got.kind === 'unchanged') {
          const held = this.#crl!;
          const meta = await this.#checkMeta(
            held.head,
            held.lines.length,
            held.sha256,
            `${this.#url(CRL_PATH)} (unchanged)`,
          );
          this.#crl = {
            ...held,
            freshUntil: got.freshUntil,
            etag: got.etag ?? held.etag,
            meta: meta ?? held.meta,
          };
        } else if (got.kind === 'full') {
          const hash = createHash('sha256');
          for (const line of got.lines) hash.update(line).update('\n');
          const sha256 = hash.copy().digest('hex');
          const meta = await this.#checkMeta(got.head, got.lines.length, sha256, this.#url(CRL_PATH));
          this.#crl = {
            lines: got.lines,
            head: got.head,
            etag: got.etag,
            freshUntil: got.freshUntil,
            hash,
            sha256,
            meta,
          };
          this.#crlNeedsFull = false;
          reread = true;
        } else {
          try {
            await this.#applyDelta(got);
          } catch (err) {
            // Fail closed: nothing of a delta holding a bad record (or one that, added to the
            // list held, is not the body the signed header describes) is taken, and since a
            // record the server keeps serving would refuse every later delta too, the next
            // refresh fetches the full list, where each line stands or falls on its own.
            this.#crlNeedsFull = true;
            throw err;
          }
        }
      } catch (err) {
        failures.push(err);
      }
    }
    if (reread && this.#crl) await this.#readRevocations(this.#crl.lines);
    if (failures.length > 0) throw failures[0];
  }

  /** The full list, a delta after the head held, or "unchanged" (a 304 on the full list). */
  async #fetchCrl(nowMs: number): Promise<CrlFetch> {
    const limits = { timeoutMs: this.#fetchTimeoutMs, maxBytes: this.#maxCrlBytes };
    const held = this.#crl;
    if (this.#incrementalCrl && held?.head !== undefined && !this.#crlNeedsFull) {
      const url = `${this.#url(CRL_PATH)}?since=${held.head}`;
      this.#crlFetches++;
      const res = await fetchText(url, limits);
      this.#crlBytes += Buffer.byteLength(res.text);
      if (res.status === 200) {
        const head = headOf(res.headers);
        if (head === undefined || head < held.head) {
          this.#crlNeedsFull = true;
          throw new RotorError(
            `GET ${url}: the delta's CRL-Head ${JSON.stringify(res.headers.get('crl-head'))} is not a sequence number at or after ${held.head}: refused`,
            'CRL_DELTA_REFUSED',
          );
        }
        return {
          kind: 'delta',
          url,
          lines: splitLines(res.text),
          head,
          freshUntil: nowMs + freshnessSeconds(res.headers) * 1000,
        };
      }
      // 410: compacted past our position; 409: the server's history is not the one we followed.
      // Both say: take the full list.
      if (res.status !== 409 && res.status !== 410) {
        throw new RotorError(
          `GET ${url} answered ${res.status}${detailOf(res.text)}`,
          'VERIFIER_FETCH_STATUS',
        );
      }
    }
    const previous = held?.etag ? { text: '', etag: held.etag, freshUntil: held.freshUntil } : undefined;
    this.#crlFetches++;
    const fetched = await fetchCached(this.#url(CRL_PATH), previous, nowMs, limits);
    this.#crlBytes += fetched.changed ? Buffer.byteLength(fetched.body.text) : 0;
    if (!fetched.changed)
      return { kind: 'unchanged', freshUntil: fetched.body.freshUntil, etag: fetched.body.etag };
    return {
      kind: 'full',
      lines: splitLines(fetched.body.text),
      // A server that sends no CRL-Head (a static FileCRL) is always read in full.
      head: headOf(fetched.headers),
      etag: fetched.body.etag,
      freshUntil: fetched.body.freshUntil,
    };
  }

  /**
   * Every record of the delta verifies with the held anchor's signers, and the list held with the
   * delta appended is the body the signed header describes (its SHA-256 over the whole body, from
   * the held hash state carried on), or none of it is taken.
   */
  async #applyDelta(delta: Extract<CrlFetch, { kind: 'delta' }>): Promise<void> {
    const held = this.#crl!;
    const report = await readCrl(delta.lines, this.#signers());
    if (report.rejected.length > 0) {
      const first = report.rejected[0]!;
      throw new RotorError(
        `GET ${delta.url}: refused whole, ${report.rejected.length} of ${delta.lines.length} records do not verify (line ${first.line}: ${first.reason}); the CRL held stays at ${held.head}`,
        'CRL_DELTA_REFUSED',
      );
    }
    const hash = held.hash.copy();
    for (const line of delta.lines) hash.update(line).update('\n');
    const sha256 = hash.copy().digest('hex');
    const meta = await this.#checkMeta(delta.head, held.lines.length + delta.lines.length, sha256, delta.url);
    for (const line of delta.lines) held.lines.push(line);
    for (const r of report.accepted) this.#revoked.add(r.manifestId);
    this.#crl = {
      ...held,
      head: delta.head,
      freshUntil: delta.freshUntil,
      hash,
      sha256,
      meta: meta ?? held.meta,
    };
  }

  /** The revocation key the held anchor names (ADR-0007): the CRL header's only trusted signer. */
  #revocationKey(): { keyId: string; publicKey: Uint8Array } | undefined {
    const rk = this.#anchor?.payload.revocation_key;
    return rk ? { keyId: rk.key_id, publicKey: b64urlDecode(rk.public_key) } : undefined;
  }

  /**
   * Fetches and checks the CRL's signed header for a body (its CRL-Head, line count and SHA-256):
   * signed by the held anchor's revocation key, of its identity, not past next_update, not below
   * the seq held, and describing exactly this body. Throws one line naming the first failure; the
   * caller then keeps the CRL it held. Undefined when the anchor names no revocation key (nothing
   * to check it with: an identity set up before revocation keys, or no anchor held yet).
   */
  async #checkMeta(
    head: number | undefined,
    records: number,
    sha256: string,
    bodyUrl: string,
  ): Promise<TrustedCrlMeta | undefined> {
    const rk = this.#revocationKey();
    if (!rk) return undefined;
    const heldSeq = this.#crl?.meta?.seq;
    const url = head === undefined ? this.#url(CRL_META_PATH) : `${this.#url(CRL_META_PATH)}?seq=${head}`;
    const refused = (what: string): never => {
      throw new RotorError(
        `CRL at ${bodyUrl} refused: ${what}; the CRL held stays${heldSeq === undefined ? ' (none)' : ` at seq ${heldSeq}`}`,
        'CRL_META_REFUSED',
      );
    };
    const res = await fetchText(url, { timeoutMs: this.#fetchTimeoutMs, maxBytes: MAX_CRL_META_BYTES });
    if (res.status !== 200) refused(`its signed header ${url} answered ${res.status}${detailOf(res.text)}`);
    let meta: TrustedCrlMeta;
    try {
      meta = verifyCrlMeta(res.text, {
        revocationKey: rk,
        now: this.#now(),
        identity: this.#anchor!.payload.identity,
        ...(heldSeq === undefined ? {} : { minSeq: heldSeq }),
        source: `signed header ${url}`,
      });
    } catch (err) {
      return refused((err as Error).message);
    }
    if (head !== undefined && meta.seq !== head) {
      refused(`its signed header describes seq ${meta.seq}, the body is at CRL-Head ${head}`);
    }
    if (meta.records !== records || meta.sha256 !== sha256) {
      refused(
        `the body has ${records} record(s), sha256 ${sha256.slice(0, 16)}…, its signed header says ${meta.records}, sha256 ${meta.sha256.slice(0, 16)}… (truncated or altered)`,
      );
    }
    return meta;
  }

  /** The signed CRL header held (seq, next_update); undefined when none was verified. */
  get crlMeta(): { seq: number; records: number; sha256: string; nextUpdate: Date } | undefined {
    const m = this.#crl?.meta;
    return m ? { seq: m.seq, records: m.records, sha256: m.sha256, nextUpdate: m.nextUpdate } : undefined;
  }

  /**
   * Verifies one manifest (v0.1 text or a v0.2 envelope, each under its own rules) against the held
   * anchor and CRL; a VALID result counts for its key_id.
   */
  verify(manifest: ManifestInput): Verdict {
    let verdict: Verdict;
    if (!this.#anchor) {
      verdict = { result: 'INVALID', keyId: null, reason: 'no trusted anchor held yet: refresh() first' };
    } else if (!this.anchorUsable) {
      verdict = {
        result: 'INVALID',
        keyId: null,
        reason: `the trusted anchor (version ${this.#anchor.version}) expired at ${this.#anchor.expiresAt.toISOString()} and no newer one could be fetched`,
      };
    } else if (this.#crlProblem() !== null) {
      verdict = { result: 'INVALID', keyId: null, reason: this.#crlProblem()! };
    } else {
      const ctx = { trustedKeys: this.#trustedKeys(), revokedIds: this.#revoked, now: this.#now() };
      if (typeof manifest === 'string') verdict = verifyManifest(manifest, ctx);
      else {
        const v = verifyCoseEnvelope(manifest, ctx);
        verdict = { result: v.result, keyId: v.keyId, reason: v.reason };
      }
    }
    if (verdict.result === 'VALID' && verdict.keyId !== null) {
      this.#validCounts.set(verdict.keyId, (this.#validCounts.get(verdict.keyId) ?? 0) + 1);
    }
    const reason = rejectionReason(verdict);
    if (reason !== null) {
      // Only a well-formed key_id is reported by name; anything else counts under 'none'.
      // Past 128 distinct key_ids (manifests naming made-up keys) the rest count under 'none' too,
      // so a check-in stays within the service's limit of 256 key_ids.
      const named = verdict.keyId !== null && /^[0-9a-f]{64}$/.test(verdict.keyId) ? verdict.keyId : 'none';
      const key = this.#rejections.has(named) || this.#rejections.size < 128 ? named : 'none';
      const byReason = this.#rejections.get(key) ?? new Map<string, number>();
      this.#rejections.set(key, byReason);
      byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
    }
    return verdict;
  }

  /** Reports the anchor version held, the keys trusted and the VALID counts to the registry. */
  async checkIn(): Promise<void> {
    const url = this.#url(`/v1/verifiers/${encodeURIComponent(this.id)}/check-in`);
    const body: Record<string, unknown> = {
      anchor_version: this.anchorVersion,
      // The anchor held, by the hash of its signed form: the registry derives the version from it
      // rather than taking a number (a registered verifier must report it).
      ...(this.anchorSha256 === null ? {} : { anchor_sha256: this.anchorSha256 }),
      trusted_key_ids: this.trustedKeyIds,
      valid_counts: this.validCounts,
      rejection_counts: this.rejectionCounts,
    };
    if (this.#identity !== undefined) body.identity = this.#identity;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.#token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        redirect: 'error',
      });
    } catch (err) {
      throw new RotorError(
        `check-in of verifier ${this.id} cannot reach ${url}: ${causeOf(err)}`,
        'VERIFIER_CHECK_IN',
      );
    }
    const text = await res.text();
    if (!res.ok) {
      throw new RotorError(
        `check-in of verifier ${this.id} refused with ${res.status}${detailOf(text)}`,
        'VERIFIER_CHECK_IN',
      );
    }
  }

  /**
   * Refresh, verify, check in, wait `intervalMs`; again until stop(). Resolves when stopped.
   * A failed step is reported to `onError` and the loop goes on, as a sidecar keeps serving from
   * its cache when its source is briefly away.
   */
  runLoop(options: RunLoopOptions): Promise<void> {
    if (this.#loop) throw new RotorError(`verifier ${this.id} is already running`, 'VERIFIER_RUNNING');
    if (!Number.isFinite(options.intervalMs) || options.intervalMs < 0) {
      throw new UsageError(`intervalMs must be a non-negative number, got ${options.intervalMs}`);
    }
    this.#stopping = false;
    const report = options.onError ?? (() => {});
    this.#loop = (async () => {
      while (!this.#stopping) {
        await this.refresh().catch(report);
        const verdicts: Verdict[] = [];
        try {
          for (const m of await options.manifests()) verdicts.push(this.verify(m));
        } catch (err) {
          report(err);
        }
        await this.checkIn().catch(report);
        options.onCycle?.(verdicts);
        if (this.#stopping) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, options.intervalMs);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wake = undefined;
      }
    })().finally(() => {
      this.#loop = undefined;
    });
    return this.#loop;
  }

  /** Ends runLoop after the step in progress; resolves when it has ended. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#loop;
  }

  #url(path: string): string {
    return `${this.#baseUrl}${path}`;
  }

  /**
   * Verifies a fetched signed anchor against the pinned root and, when trusted and newer, holds
   * it. Returns whether the held anchor changed. The same version with other bytes is refused
   * like a lower one: a version names exactly one anchor. An anchor the pinned root did not sign
   * but that names a later root set is tried through the root chain; nothing changes unless the
   * whole chain and the anchor verify.
   */
  async #adoptAnchor(text: string): Promise<boolean> {
    const held = this.#anchor;
    const source = `signed anchor at ${this.#url(SIGNED_TRUST_ANCHOR_PATH)}`;
    const options = {
      now: this.#now(),
      minVersion: held?.version,
      identity: this.#identity ?? held?.payload.identity,
      source,
    };
    let trusted: TrustedAnchor;
    try {
      trusted = verifySignedAnchor(text, { ...options, trusted: this.#root, rootVersion: this.#rootVersion });
    } catch (err) {
      const claimed = claimedRoot(text);
      if (claimed === null || claimed.rootVersion <= this.#rootVersion) throw err;
      // Which identity the chain belongs to: the configured or held one, else the one the anchor
      // claims (every link must then agree, and the anchor is verified against it at the end).
      const identity = options.identity ?? claimed.identity;
      const chain = await this.#walkRootChain(claimed.rootVersion, identity);
      trusted = verifySignedAnchor(text, {
        ...options,
        identity,
        trusted: chain.root,
        rootVersion: chain.rootVersion,
        minVersion: Math.max(held?.version ?? 0, chain.anchorVersion) || undefined,
      });
      if (trusted.rootVersion !== chain.rootVersion) {
        throw new RotorError(
          `${source}: names root set ${trusted.rootVersion} but the root chain ends at ${chain.rootVersion}: refused`,
          'ANCHOR_UNTRUSTED',
        );
      }
    }
    if (held && trusted.version === held.version) {
      if (trusted.sha256 === held.sha256) return false;
      throw new RotorError(
        `${source}: version ${trusted.version} with different content than the one held: refused`,
        'ANCHOR_UNTRUSTED',
      );
    }
    this.#anchor = trusted;
    this.#root = trusted.root;
    this.#rootVersion = trusted.rootVersion;
    return true;
  }

  /**
   * Why the CRL held cannot be relied on, or null: with a revocation key in the anchor, a CRL whose
   * signed header verified must be held and its next_update not passed (a revocation the verifier
   * cannot see must not leave a manifest VALID).
   */
  #crlProblem(): string | null {
    if (this.#revocationKey() === undefined) return null;
    const meta = this.#crl?.meta;
    if (!meta) return 'no CRL with a valid signed header is held yet: refresh() first';
    if (this.#now().getTime() >= meta.nextUpdate.getTime()) {
      return `the CRL held (seq ${meta.seq}) passed its signed next_update ${meta.nextUpdate.toISOString()} and no fresh one could be fetched`;
    }
    return null;
  }

  /**
   * TUF's root chain: fetches the link of each root set after the pinned one up to `target` and
   * trusts link n only when a threshold of set n-1 (the one trusted so far) and of set n signed
   * it, it names set n exactly, it is the identity's, and its anchor version is above the one
   * before. Links are old, so their own expiry is not checked (the final anchor's is). Bounded:
   * at most MAX_ROOT_CHAIN_STEPS links, each under the anchor's size limit and the fetch
   * timeout. Any broken link refuses the whole walk; nothing is pinned until the caller adopts.
   */
  async #walkRootChain(
    target: number,
    identity: string,
  ): Promise<{ root: RootSet; rootVersion: number; anchorVersion: number }> {
    const steps = target - this.#rootVersion;
    if (steps > MAX_ROOT_CHAIN_STEPS) {
      throw new RotorError(
        `signed anchor at ${this.#url(SIGNED_TRUST_ANCHOR_PATH)} names root set ${target}, ${steps} root rotations past the pinned set ${this.#rootVersion} (at most ${MAX_ROOT_CHAIN_STEPS} are followed): pin a newer root (rotor anchor root show)`,
        'ANCHOR_UNTRUSTED',
      );
    }
    let root = this.#root;
    let anchorVersion = this.#anchor?.version ?? 0;
    for (let n = this.#rootVersion + 1; n <= target; n++) {
      const url = this.#url(rootChainPath(n));
      const source = `root chain link ${n} at ${url}`;
      const res = await fetchText(url, {
        timeoutMs: this.#fetchTimeoutMs,
        maxBytes: MAX_SIGNED_ANCHOR_BYTES,
      });
      if (res.status !== 200) {
        throw new RotorError(
          `${source}: answered ${res.status}${detailOf(res.text)}; the pinned root set ${this.#rootVersion} cannot reach set ${target}`,
          'ANCHOR_UNTRUSTED',
        );
      }
      const link = verifyRootChainLink(res.text, {
        trusted: root,
        rootVersion: n,
        now: this.#now(),
        minVersion: anchorVersion + 1,
        identity,
        source,
      });
      root = link.root;
      anchorVersion = link.version;
    }
    return { root, rootVersion: target, anchorVersion };
  }

  #trustedKeys(): Map<string, Uint8Array> {
    if (!this.#anchor || !this.anchorUsable) return new Map();
    const keys = trustedKeysFromAnchor(this.#anchor.document, { now: this.#now() });
    for (const k of this.#refused) keys.delete(k);
    return keys;
  }

  /**
   * The keys a CRL record may be signed by. A record's signer is trusted for as long as the anchor
   * lists its key, whatever the key's validity window: revocations signed by a retiring key still
   * stand. The identity's revocation authority (ADR-0007) signs records across key rotations.
   */
  #signers(): Map<string, Uint8Array> {
    const signers = this.#anchor
      ? trustedKeysFromAnchor(this.#anchor.document)
      : new Map<string, Uint8Array>();
    const rk = this.#anchor?.payload.revocation_key;
    if (rk) signers.set(rk.key_id, b64urlDecode(rk.public_key));
    return signers;
  }

  async #readRevocations(lines: string[]): Promise<void> {
    const report = await readCrl(lines, this.#signers());
    this.#revoked = new Set(report.accepted.map((r) => r.manifestId));
    this.#crlRejected = report.rejected.length;
  }
}

interface HeldCrl {
  lines: string[];
  /** CRL-Head of the list held; undefined when the server sends none (no deltas then). */
  head: number | undefined;
  etag: string | undefined;
  freshUntil: number;
  /** SHA-256 state after the whole body held (each line and its `\n`): a delta carries it on. */
  hash: Hash;
  /** Lowercase hex SHA-256 of the whole body held. */
  sha256: string;
  /** The signed header that described it; undefined when the anchor names no revocation key. */
  meta: TrustedCrlMeta | undefined;
}

type CrlFetch =
  | { kind: 'unchanged'; freshUntil: number; etag: string | undefined }
  | { kind: 'full'; lines: string[]; head: number | undefined; etag: string | undefined; freshUntil: number }
  | { kind: 'delta'; url: string; lines: string[]; head: number; freshUntil: number };

/**
 * What an anchor that did not verify claims about its root set and identity, read without
 * trusting it: only to decide whether to try the root chain, which then proves or refuses it.
 */
function claimedRoot(text: string): { rootVersion: number; identity: string } | null {
  let payload: Partial<SignedAnchorPayload>;
  try {
    payload = unverifiedAnchorPayload(text) as Partial<SignedAnchorPayload>;
  } catch {
    // Not a JWS at all: the verification error already thrown says so.
    return null;
  }
  const version = payload?.root?.version;
  if (!Number.isSafeInteger(version) || typeof payload.identity !== 'string') return null;
  return { rootVersion: version as number, identity: payload.identity };
}

function headOf(headers: Headers): number | undefined {
  const text = headers.get('crl-head');
  if (text === null || !/^(0|[1-9][0-9]{0,15})$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Lines of a JSON-lines body, as readCrl splits a whole text (the line numbers it reports match). */
function splitLines(text: string): string[] {
  const parts = text.split(/\r\n|\r|\n/);
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}
