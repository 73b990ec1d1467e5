/** Test data: the shared SDK vectors and the upstream conformance vectors (read, never modified). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { b64urlDecode, softwareSigner } from '../../src/manifest/index';

const VECTORS = join(import.meta.dirname, '../fixtures/vectors');

export interface SharedVectors {
  key: { seed_b64url: string; public_b64url: string; key_id: string };
  signed_fields: string[];
  canonical: { json: string; canonical: string; canonical_b64: string }[];
  manifests: {
    unsigned_json: string;
    pre_image_b64: string;
    signature: Record<string, unknown> & { signature_value: string };
    signed_json: string;
  }[];
  revocations: { jsonl_line: string; pre_image: string }[];
  crl: { jsonl: string; accepted_manifest_ids: string[] };
}

export const shared: SharedVectors = JSON.parse(
  readFileSync(join(VECTORS, 'reference-sdk-shared.json'), 'utf8'),
);

export interface UpstreamVector {
  id: string;
  description: string;
  manifest: Record<string, unknown>;
  context: { trusted_keys?: Record<string, string> } & Record<string, unknown>;
  expected: { result: string; signature_verified?: boolean; attestation_verified?: boolean };
  revoke?: boolean;
}

export function upstream(id: string): UpstreamVector {
  return JSON.parse(readFileSync(join(VECTORS, 'agent-manifest-upstream', `${id}.json`), 'utf8'));
}

export const testSeed = b64urlDecode(shared.key.seed_b64url);
export const testPublicKey = b64urlDecode(shared.key.public_b64url);
export const testSigner = softwareSigner(testSeed);
export const testTrustedKeys = (): Map<string, Uint8Array> => new Map([[shared.key.key_id, testPublicKey]]);
export const SIGNED_AT = new Date('2026-06-05T10:00:00Z');

/** Parsed JSON that tests reach into and mutate freely. */
// biome-ignore lint/suspicious/noExplicitAny: test fixtures are arbitrary JSON, edited in place
export type Loose = Record<string, any>;
