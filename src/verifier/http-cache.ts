/**
 * The part of HTTP caching a verifier sidecar needs: keep a response for its `max-age`, then
 * revalidate with `If-None-Match` and keep the body on a 304.
 */
import { EnvironmentError, errorMessage, RotorError, UsageError } from '../errors';

export interface CachedBody {
  text: string;
  etag: string | undefined;
  /** When the copy stops being fresh (ms since epoch, by the verifier's clock). */
  freshUntil: number;
}

export interface Fetched {
  /** false when the server answered 304 and `text` is the copy already held. */
  changed: boolean;
  body: CachedBody;
  headers: Headers;
}

/** Seconds the response may be kept: `max-age` minus `Age`, 0 for no-store/no-cache or none given. */
export function freshnessSeconds(headers: Headers): number {
  const cc = (headers.get('cache-control') ?? '').toLowerCase();
  if (/(^|,)\s*(no-store|no-cache)\s*(,|$)/.test(cc)) return 0;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/.exec(cc);
  if (!m) return 0;
  const age = Number(headers.get('age') ?? 0);
  return Math.max(0, Number(m[1]) - (Number.isFinite(age) ? age : 0));
}

export function isFresh(body: CachedBody | undefined, nowMs: number): body is CachedBody {
  return body !== undefined && nowMs < body.freshUntil;
}

/**
 * GET `url`, revalidating `previous` when there is one. Any answer but 200 or (with a previous
 * copy) 304 is an error naming the URL and the status; the caller keeps its last good copy.
 */
export interface FetchLimits {
  /** The whole exchange, headers and body, must finish within this (default 10 s). */
  timeoutMs?: number;
  /** A body larger than this is refused (default 64 MiB). */
  maxBytes?: number;
}

export async function fetchCached(
  url: string,
  previous: CachedBody | undefined,
  nowMs: number,
  limits: FetchLimits = {},
): Promise<Fetched> {
  const timeoutMs = limits.timeoutMs ?? 10_000;
  const maxBytes = limits.maxBytes ?? 64 * 1024 * 1024;
  const headers: Record<string, string> = {};
  if (previous?.etag) headers['If-None-Match'] = previous.etag;
  let res: Response;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    res = await fetch(url, { headers, redirect: 'error', signal });
  } catch (err) {
    throw new EnvironmentError(`cannot reach ${url}: ${causeOf(err)}`, 'ENV_VERIFIER_FETCH');
  }
  const freshUntil = nowMs + freshnessSeconds(res.headers) * 1000;
  if (res.status === 304 && previous) {
    await res.body?.cancel();
    const etag = res.headers.get('etag') ?? previous.etag;
    return { changed: false, body: { text: previous.text, etag, freshUntil }, headers: res.headers };
  }
  const text = await readLimited(res, url, maxBytes);
  if (res.status !== 200) {
    throw new RotorError(`GET ${url} answered ${res.status}${detailOf(text)}`, 'VERIFIER_FETCH_STATUS');
  }
  return {
    changed: true,
    body: { text, etag: res.headers.get('etag') ?? undefined, freshUntil },
    headers: res.headers,
  };
}

export interface FetchedText {
  status: number;
  headers: Headers;
  text: string;
}

/**
 * GET `url` under the same timeout and size limit, whatever the status: for callers that act on
 * more than 200 and 304 (the CRL delta's 409 and 410 mean "fetch the full list").
 */
export async function fetchText(url: string, limits: FetchLimits = {}): Promise<FetchedText> {
  const timeoutMs = limits.timeoutMs ?? 10_000;
  const maxBytes = limits.maxBytes ?? 64 * 1024 * 1024;
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new EnvironmentError(`cannot reach ${url}: ${causeOf(err)}`, 'ENV_VERIFIER_FETCH');
  }
  return { status: res.status, headers: res.headers, text: await readLimited(res, url, maxBytes) };
}

/** The server's own one-line error message, when it sent one in rotor's error shape. */
export function detailOf(text: string): string {
  try {
    const body = JSON.parse(text) as { error_message?: unknown };
    if (typeof body.error_message === 'string')
      return `: ${body.error_message.split('\n')[0]!.slice(0, 200)}`;
  } catch {
    // Not JSON: the status says enough.
  }
  return '';
}

/** fetch() hides the socket error in `cause`; that is the useful part. */
export function causeOf(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  return errorMessage(cause ?? err);
}

/** The body as UTF-8, refused past `maxBytes` (declared or actual) or when the timeout fires mid-body. */
async function readLimited(res: Response, url: string, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    // Dropping an oversized body; the size error below is what is reported.
    await res.body?.cancel().catch(() => {});
    throw new RotorError(
      `GET ${url}: body of ${declared} bytes is over the ${maxBytes}-byte limit`,
      'VERIFIER_FETCH_SIZE',
    );
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > maxBytes) {
        // Dropping an oversized body; the size error below is what is reported.
        await res.body.cancel().catch(() => {});
        throw new RotorError(`GET ${url}: body is over the ${maxBytes}-byte limit`, 'VERIFIER_FETCH_SIZE');
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof RotorError) throw err;
    throw new EnvironmentError(`GET ${url}: the body did not arrive: ${causeOf(err)}`, 'ENV_VERIFIER_FETCH');
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** http: only to this machine (tests, a sidecar next to rotor); anything else must be https:. */
export function checkTransport(url: URL, what: string): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return;
  throw new UsageError(
    `${what} ${url.href} must be https: (plain http: is accepted for loopback addresses only)`,
    'VERIFIER_INSECURE_URL',
  );
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
