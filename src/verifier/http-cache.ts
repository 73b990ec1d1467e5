/**
 * The part of HTTP caching a verifier sidecar needs: keep a response for its `max-age`, then
 * revalidate with `If-None-Match` and keep the body on a 304.
 */
import { EnvironmentError, errorMessage, RotorError } from '../errors';

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
export async function fetchCached(
  url: string,
  previous: CachedBody | undefined,
  nowMs: number,
): Promise<Fetched> {
  const headers: Record<string, string> = {};
  if (previous?.etag) headers['If-None-Match'] = previous.etag;
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'error' });
  } catch (err) {
    throw new EnvironmentError(`cannot reach ${url}: ${causeOf(err)}`, 'ENV_VERIFIER_FETCH');
  }
  const freshUntil = nowMs + freshnessSeconds(res.headers) * 1000;
  if (res.status === 304 && previous) {
    await res.body?.cancel();
    const etag = res.headers.get('etag') ?? previous.etag;
    return { changed: false, body: { text: previous.text, etag, freshUntil }, headers: res.headers };
  }
  const text = await res.text();
  if (res.status !== 200) {
    throw new RotorError(`GET ${url} answered ${res.status}${detailOf(text)}`, 'VERIFIER_FETCH_STATUS');
  }
  return {
    changed: true,
    body: { text, etag: res.headers.get('etag') ?? undefined, freshUntil },
    headers: res.headers,
  };
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
