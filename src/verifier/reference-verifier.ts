/**
 * A reference verifier: what a verifier sidecar does. It fetches the trust anchor and the CRL over
 * HTTP and keeps them for their Cache-Control lifetime, verifies manifests with the interop core,
 * counts VALID results per key_id, and checks in with rotor's registry. The rotation's adoption
 * step reads those check-ins, so adoption is observed rather than assumed.
 */
import { errorMessage, RotorError, UsageError } from '../errors';
import {
  readCrl,
  type TrustAnchorDocument,
  trustedKeysFromAnchor,
  type Verdict,
  validateTrustAnchor,
  verifyCoseEnvelope,
  verifyManifest,
} from '../manifest';
import { rejectionReason } from '../manifest/rejection';
import { type CachedBody, causeOf, detailOf, fetchCached, isFresh } from './http-cache';

/** A manifest as presented: v0.1 JSON text, or a v0.2 COSE envelope's bytes. */
export type ManifestInput = string | Uint8Array;

/** A manifest line as files carry them: hex digits are a v0.2 envelope, anything else v0.1 JSON text. */
export function manifestFromLine(line: string): ManifestInput {
  const t = line.trim();
  return /^(?:[0-9a-fA-F]{2})+$/.test(t) ? Uint8Array.from(Buffer.from(t, 'hex')) : line;
}

export const TRUST_ANCHOR_PATH = '/.well-known/agent-manifest/trust-anchor';
export const CRL_PATH = '/.well-known/agent-manifest/revocation';

export interface ReferenceVerifierOptions {
  /** The verifier's id in the registry (a SPIFFE id is fine: it is percent-encoded in the path). */
  id: string;
  /** Where rotor's HTTP service answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The signing identity whose anchor this verifier holds; the service's own when omitted. */
  identity?: string;
  /** Bearer token for check-in. */
  checkInToken: string;
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

interface HeldAnchor {
  document: TrustAnchorDocument;
  version: number;
}

export class ReferenceVerifier {
  readonly id: string;
  readonly #baseUrl: string;
  readonly #identity: string | undefined;
  readonly #token: string;
  readonly #now: () => Date;
  #anchorBody: CachedBody | undefined;
  #crlBody: CachedBody | undefined;
  #anchor: HeldAnchor | undefined;
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
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new UsageError(`base URL ${options.baseUrl} must be http or https`);
    }
    this.id = options.id;
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#identity = options.identity;
    this.#token = options.checkInToken;
    this.#now = options.now ?? (() => new Date());
  }

  /** The version of the trust anchor held; 0 before one was fetched (or for an unversioned one). */
  get anchorVersion(): number {
    return this.#anchor?.version ?? 0;
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
      anchorStale ? fetchCached(this.#url(TRUST_ANCHOR_PATH), this.#anchorBody, nowMs) : undefined,
      crlStale ? fetchCached(this.#url(CRL_PATH), this.#crlBody, nowMs) : undefined,
    ]);
    let keysChanged = false;
    let crlChanged = false;
    const failures: unknown[] = [];
    if (anchor.status === 'rejected') failures.push(anchor.reason);
    else if (anchor.value) {
      if (anchor.value.changed) {
        try {
          this.#anchor = this.#readAnchor(anchor.value.body.text);
          keysChanged = true;
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
    const ctx = () => ({ trustedKeys: this.#trustedKeys(), revokedIds: this.#revoked, now: this.#now() });
    let verdict: Verdict;
    if (!this.#anchor)
      verdict = { result: 'INVALID', keyId: null, reason: 'no trust anchor held yet: refresh() first' };
    else if (typeof manifest === 'string') verdict = verifyManifest(manifest, ctx());
    else {
      const v = verifyCoseEnvelope(manifest, ctx());
      verdict = { result: v.result, keyId: v.keyId, reason: v.reason };
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

  #readAnchor(text: string): HeldAnchor {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new RotorError(
        `the trust anchor at ${this.#url(TRUST_ANCHOR_PATH)} is not JSON: ${errorMessage(err)}`,
        'VERIFIER_ANCHOR',
      );
    }
    const document = validateTrustAnchor(parsed);
    return { document, version: document.version ?? 0 };
  }

  #trustedKeys(): Map<string, Uint8Array> {
    if (!this.#anchor) return new Map();
    return trustedKeysFromAnchor(this.#anchor.document, { now: this.#now() });
  }

  async #readRevocations(text: string): Promise<void> {
    // A record's signer is trusted for as long as the anchor lists its key, whatever the key's
    // validity window: revocations signed by a retiring key still stand.
    const signers = this.#anchor
      ? trustedKeysFromAnchor(this.#anchor.document)
      : new Map<string, Uint8Array>();
    const report = await readCrl(text, signers);
    this.#revoked = new Set(report.accepted.map((r) => r.manifestId));
    this.#crlRejected = report.rejected.length;
  }
}
