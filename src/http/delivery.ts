/**
 * `GET /v1/agents/{agent_id}/manifest`: an agent (or a deployment system fetching for it) takes
 * its current manifest. A re-issued twin is handed out only once its key is released for delivery
 * (after the verifier adoption gate passed, `store/delivery.ts`); until then the agent keeps its
 * original. The response carries a strong ETag of the exact bytes and a cache lifetime from
 * configuration; a fetch (200 or 304) of a twin records its pickup.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../store/db';
import {
  authenticateToken,
  credentialCovers,
  currentManifestFor,
  type DeliveryCredential,
  recordFetch,
} from '../store/delivery';
import { agentIdFromPath } from './ids';
import { HttpError, matchesIfNoneMatch } from './respond';

export const AGENT_MANIFEST = /^\/v1\/agents\/([^/]+)\/manifest$/;

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="rotor-delivery"' };

export async function authenticateDelivery(pool: Pool, req: IncomingMessage): Promise<DeliveryCredential> {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer ([^\s]+)$/i.exec(header);
  if (!m)
    throw new HttpError(401, 'UNAUTHORIZED', 'a delivery credential (bearer token) is required', CHALLENGE);
  const credential = await authenticateToken(pool, m[1]!);
  if (!credential)
    throw new HttpError(401, 'UNAUTHORIZED', 'the delivery credential is not valid', CHALLENGE);
  return credential;
}

/** A strong validator of the exact bytes served (RFC 9110 8.8.3). */
export function strongEtag(body: string | Uint8Array): string {
  return `"${createHash('sha256').update(body).digest('base64url')}"`;
}

export async function serveAgentManifest(
  pool: Pool,
  req: IncomingMessage,
  res: ServerResponse,
  rawAgentId: string,
  maxAgeSeconds: number,
): Promise<void> {
  const agentId = agentIdFromPath(rawAgentId);
  const credential = await authenticateDelivery(pool, req);
  if (!credentialCovers(credential, agentId)) {
    throw new HttpError(
      403,
      'FORBIDDEN',
      `delivery credential ${credential.credentialId} may not fetch the manifest of agent ${agentId}`,
    );
  }
  const current = await currentManifestFor(pool, agentId);
  if (!current) {
    throw new HttpError(404, 'MANIFEST_NOT_FOUND', `agent ${agentId} has no deliverable manifest`);
  }
  // A v0.2 manifest is served as its envelope bytes, exactly as stored (cose-envelope-v0.2 §7).
  const body: Buffer =
    current.envelope !== null ? Buffer.from(current.envelope) : Buffer.from(current.text ?? '', 'utf8');
  const contentType =
    current.envelope !== null ? 'application/agent-manifest+cose' : 'application/json; charset=utf-8';
  const etag = strongEtag(body);
  await recordFetch(pool, {
    agentId,
    credentialId: credential.credentialId,
    manifestId: current.manifestId,
    keyId: current.keyId,
    isTwin: current.previousManifestId !== null,
  });
  const headers = {
    ETag: etag,
    // private: the response is the agent's own, fetched with its credential.
    'Cache-Control': `private, max-age=${maxAgeSeconds}`,
    Vary: 'Authorization',
  };
  if (matchesIfNoneMatch(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, {
    ...headers,
    'Content-Type': contentType,
    'Content-Length': body.length,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
