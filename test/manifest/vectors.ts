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

/**
 * A schema-valid v0.1 manifest (spec §3.1 to §3.9), unsigned, for tests about verdicts and
 * re-issue. The shared SDK vectors test canonical bytes and carry members the schema refuses
 * on purpose (see test/fixtures/vectors/README.md), so they are not valid manifests.
 */
export function validUnsigned(overrides: Loose = {}): Loose {
  const base: Loose = {
    '@context': 'https://agentmanifest.agentrust.io/v0.1/context.json',
    '@type': 'AgentManifest',
    manifest_id: '0190b6e0-0000-7000-8000-000000000000',
    agent_id: 'spiffe://trust.example/agent/kyc/prod',
    version: '0.1',
    issued_at: '2026-06-01T00:00:00Z',
    expires_at: '2026-09-01T00:00:00Z',
    issuer: 'spiffe://trust.example/signing-authority',
    crypto_profile: 'standard',
    artifacts: {
      system_prompt: {
        hash: `sha256:${'a'.repeat(64)}`,
        version: '2026.1',
        classification: 'internal',
        bound_at: '2026-05-30T00:00:00Z',
      },
      policy_bundle: {
        hash: `sha256:${'b'.repeat(64)}`,
        policy_language: 'cedar',
        version: '1.2.0',
        enforcement_mode: 'enforce',
        bound_at: '2026-05-30T00:00:00Z',
      },
      model_identity: {
        provider: 'example-ai',
        model_id: 'm-large',
        version: '2026-01',
        deployment_type: 'api',
        model_hash: null,
        model_attestation_type: 'provider-asserted',
        bound_at: '2026-05-30T00:00:00Z',
      },
    },
    hitl_record: { required: true, escalation_policy: { timeout_action: 'deny' }, approvals: [] },
    intent: { statement: 'Café KYC checks' },
  };
  return { ...base, ...overrides };
}

/** `validUnsigned()` signed by the test key at SIGNED_AT, as text. */
export async function validSigned(overrides: Loose = {}): Promise<string> {
  const { signManifest } = await import('../../src/manifest/index');
  return (await signManifest(JSON.stringify(validUnsigned(overrides)), testSigner, { signedAt: SIGNED_AT }))
    .text;
}

/** An upstream COSE vector's envelope bytes (AM-VEC-COSE-*: `envelope_hex`). */
export function upstreamEnvelope(id: string): Uint8Array {
  const v = JSON.parse(readFileSync(join(VECTORS, 'agent-manifest-upstream', `${id}.json`), 'utf8')) as {
    envelope_hex: string;
  };
  return Uint8Array.from(Buffer.from(v.envelope_hex, 'hex'));
}
