/**
 * Identifiers arriving in URLs and bodies. Anything outside these shapes is refused with a 400
 * before it reaches SQL or a log line.
 */
import { IDENTITY_NAME } from '../domain';
import { badRequest } from './respond';

// UUIDs (the spec's UUID v7) and URN-like ids such as `urn:uuid:...`; no spaces, slashes or
// control characters.
const MANIFEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
// Verifier ids may be SPIFFE IDs (`spiffe://trust/ns/x`), sent percent-encoded in the path.
const VERIFIER_ID = /^[A-Za-z0-9][A-Za-z0-9._:@/~+-]{0,254}$/;
const KEY_ID = /^(?:sha256:)?([0-9a-f]{64})$/;
// agent_id is a URI in practice (SPIFFE ids, URNs), sent percent-encoded as one path segment.
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@/~+=%-]{0,511}$/;

function decode(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest(`${what} is not valid percent-encoding`);
  }
}

export function manifestIdFromPath(raw: string): string {
  const id = decode(raw, 'manifest_id');
  if (!MANIFEST_ID.test(id)) throw badRequest(`manifest_id ${JSON.stringify(id.slice(0, 140))} is malformed`);
  return id;
}

export function checkManifestId(id: string): string {
  if (!MANIFEST_ID.test(id)) throw badRequest(`manifest_id ${JSON.stringify(id.slice(0, 140))} is malformed`);
  return id;
}

/** A verifier id as the check-in path and the registry accept it. */
export function isVerifierId(id: string): boolean {
  return VERIFIER_ID.test(id);
}

export function verifierIdFromPath(raw: string): string {
  const id = decode(raw, 'verifier id');
  if (!VERIFIER_ID.test(id)) throw badRequest(`verifier id ${JSON.stringify(id.slice(0, 260))} is malformed`);
  return id;
}

export function agentIdFromPath(raw: string): string {
  const id = decode(raw, 'agent_id');
  if (!AGENT_ID.test(id)) throw badRequest(`agent_id ${JSON.stringify(id.slice(0, 140))} is malformed`);
  return id;
}

/** A key_id as bare lowercase hex; the anchor's `sha256:` form is accepted too. */
export function keyIdFrom(value: unknown, where: string): string {
  const m = typeof value === 'string' ? KEY_ID.exec(value) : null;
  if (!m)
    throw badRequest(`${where} must be a key_id: 64 lowercase hex digits, optionally prefixed 'sha256:'`);
  return m[1]!;
}

export function isIdentityName(value: unknown): value is string {
  return typeof value === 'string' && IDENTITY_NAME.test(value);
}
