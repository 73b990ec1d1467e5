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
 * `expires_at`, after which nothing verifies.
 */
import { RotorError, UsageError } from '../errors';
import {
  b64urlDecode,
  MAX_SIGNED_ANCHOR_BYTES,
  type RootSet,
  readCrl,
  rootSetFromPublicKeys,
  type TrustedAnchor,
  trustedKeysFromAnchor,
  type Verdict,
  verifyCoseEnvelope,
  verifyManifest,
  verifySignedAnchor,
} from '../manifest';
import { rejectionReason } from '../manifest/rejection';
import { type CachedBody, causeOf, checkTransport, detailOf, fetchCached, isFresh } from './http-cache';

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
  /** Per fetch (default 10 s). */
  fetchTimeoutMs?: number;
  /** Largest CRL accepted (default 64 MiB); the signed anchor is capped at 256 KiB. */
  maxCrlBytes?: number;
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
  #anchorBody: CachedBody | undefined;
  #crlBody: CachedBody | undefined;
  #anchor: TrustedAnchor | undefined;
  /** manifest_ids the held CRL revokes, by records whose signature verifies with the held anchor's keys. */
  #revoked = new Set<string>();
  #crlRejected = 0;
  readonly #validCounts = new Map<string, number>();
  /** key_id (or 'none') → rejection reason → count, reported at check-in. */
  readonly #rejections = new Map<string, Map<string, number>>();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;

  constructor(options: ReferenceVerifierOptions) {
    if (!options.id) throw new UsageError('a reference verifier needs an id');
    if (!options.checkInToken)
      throw new UsageError('a reference verifier needs a check-in token (ROTOR_CHECKIN_TOKEN)');
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
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 10_000;
    this.#maxCrlBytes = options.maxCrlBytes ?? 64 * 1024 * 1024;
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#identity = options.identity;
    this.#token = options.checkInToken;
    this.#now = options.now ?? (() => new Date());
  }

  /** The version of the trust anchor held; 0 before one was trusted. */
  get anchorVersion(): number {
    return this.#anchor?.version ?? 0;
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

  /**
   * Fetches the anchor and the CRL, each only when its held copy is no longer fresh, revalidating
   * with If-None-Match. On a failure the held copies stay in use and the error is thrown.
   */
  async refresh(): Promise<void> {
    const nowMs = this.#now().getTime();
    const anchorStale = !isFresh(this.#anchorBody, nowMs);
    const crlStale = !isFresh(this.#crlBody, nowMs);
    if (!anchorStale && !crlStale) return;
    const [anchor, crl] = await Promise.allSettled([
      anchorStale
        ? fetchCached(this.#url(SIGNED_TRUST_ANCHOR_PATH), this.#anchorBody, nowMs, {
            timeoutMs: this.#fetchTimeoutMs,
            maxBytes: MAX_SIGNED_ANCHOR_BYTES,
          })
        : undefined,
      crlStale
        ? fetchCached(this.#url(CRL_PATH), this.#crlBody, nowMs, {
            timeoutMs: this.#fetchTimeoutMs,
            maxBytes: this.#maxCrlBytes,
          })
        : undefined,
    ]);
    let keysChanged = false;
    let crlChanged = false;
    const failures: unknown[] = [];
    if (anchor.status === 'rejected') failures.push(anchor.reason);
    else if (anchor.value) {
      if (anchor.value.changed) {
        try {
          keysChanged = this.#adoptAnchor(anchor.value.body.text);
        } catch (err) {
          // An anchor that does not validate is not adopted, and not cached as if it had been.
          failures.push(err);
        }
      }
      if (failures.length === 0) this.#anchorBody = anchor.value.body;
    }
    if (crl.status === 'rejected') failures.push(crl.reason);
    else if (crl.value) {
      crlChanged = crl.value.changed;
      this.#crlBody = crl.value.body;
    }
    // Records are trusted by the anchor's keys, so a new anchor re-reads the CRL held.
    if ((keysChanged || crlChanged) && this.#crlBody) await this.#readRevocations(this.#crlBody.text);
    if (failures.length > 0) throw failures[0];
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
   * like a lower one: a version names exactly one anchor.
   */
  #adoptAnchor(text: string): boolean {
    const held = this.#anchor;
    const trusted = verifySignedAnchor(text, {
      trusted: this.#root,
      now: this.#now(),
      minVersion: held?.version,
      identity: this.#identity ?? held?.payload.identity,
      source: `signed anchor at ${this.#url(SIGNED_TRUST_ANCHOR_PATH)}`,
    });
    if (held && trusted.version === held.version) {
      if (trusted.sha256 === held.sha256) return false;
      throw new RotorError(
        `signed anchor at ${this.#url(SIGNED_TRUST_ANCHOR_PATH)}: version ${trusted.version} with different content than the one held: refused`,
        'ANCHOR_UNTRUSTED',
      );
    }
    this.#anchor = trusted;
    this.#root = trusted.root;
    return true;
  }

  #trustedKeys(): Map<string, Uint8Array> {
    if (!this.#anchor || !this.anchorUsable) return new Map();
    return trustedKeysFromAnchor(this.#anchor.document, { now: this.#now() });
  }

  async #readRevocations(text: string): Promise<void> {
    // A record's signer is trusted for as long as the anchor lists its key, whatever the key's
    // validity window: revocations signed by a retiring key still stand.
    const signers = this.#anchor
      ? trustedKeysFromAnchor(this.#anchor.document)
      : new Map<string, Uint8Array>();
    // The identity's revocation authority (ADR-0007) signs records across key rotations.
    const rk = this.#anchor?.payload.revocation_key;
    if (rk) signers.set(rk.key_id, b64urlDecode(rk.public_key));
    const report = await readCrl(text, signers);
    this.#revoked = new Set(report.accepted.map((r) => r.manifestId));
    this.#crlRejected = report.rejected.length;
  }
}
