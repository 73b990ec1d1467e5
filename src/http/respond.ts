/**
 * Responses and request bodies. Every error leaves as the spec's error shape (section 5.4):
 * `{error_code, error_message, request_id, retry_after_seconds}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { uuidv7 } from '../manifest';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'INVALID_REQUEST', message);

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    // Mid-stream: cutting the connection is the only honest signal left; a short body with a
    // clean end would read as a complete CRL.
    res.destroy();
    return;
  }
  sendJson(
    res,
    err.status,
    {
      error_code: err.code,
      error_message: err.message,
      request_id: uuidv7(new Date()),
      retry_after_seconds: null,
    },
    { 'Cache-Control': 'no-store', ...err.headers },
  );
}

/** Reads a JSON request body of at most `limit` bytes; anything else is a 4xx HttpError. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'the request body must be application/json');
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw tooLarge(limit);
  }
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    // Past the limit the rest is read and dropped rather than the socket destroyed, so the
    // client still receives the 413.
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `the request body exceeds ${limit} bytes`, {
    Connection: 'close',
  });
}

/**
 * A whole body under a validator: 304 with `headers` alone when If-None-Match names
 * `headers.ETag`, else 200 with the body (none for HEAD).
 */
export function sendCachedBody(
  req: IncomingMessage,
  res: ServerResponse,
  headers: Record<string, string> & { ETag: string },
  contentType: string,
  body: string,
): void {
  if (matchesIfNoneMatch(req.headers['if-none-match'], headers.ETag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Weak comparison (RFC 9110 13.1.2): does If-None-Match name `etag` (or `*`)? */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((candidate) => {
    const c = candidate.trim();
    return c === '*' || c.replace(/^W\//, '') === bare;
  });
}
