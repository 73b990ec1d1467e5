/**
 * The signing pre-image: the canonical form of the top-level members named in `signed_fields`
 * that are present, with `hitl_record.approvals` replaced by `[]` (approvals attach after
 * issuance and carry their own signatures).
 */
import { Canonicalizer } from './canonical';
import { ManifestError } from './errors';
import { isJsonObject, type JsonObject, type JsonValue } from './json';

/** The normative list, in the SDK's order (docs/upstream/agent-manifest-spec-v0.2.md §3.6): written into every signature block. */
export const SIGNED_FIELDS: readonly string[] = Object.freeze([
  '@context',
  '@type',
  'manifest_id',
  'previous_manifest_id',
  'agent_id',
  'agent_instance_id',
  'version',
  'min_verifier_version',
  'issued_at',
  'expires_at',
  'issuer',
  'crypto_profile',
  'profile',
  'unbound_artifacts',
  'source_bundle',
  'artifacts',
  'delegation_chain',
  'hitl_record',
  'prior_transparency_log_entry',
  'log_retention',
  'data_scope',
  'operational_lifecycle',
  'intent',
]);

// All ASCII and free of characters that need escaping, so sorted once and quoted by hand.
const SORTED_SIGNED_FIELDS = [...SIGNED_FIELDS].sort();

export function signingPreImage(manifest: JsonValue, source?: string): Uint8Array {
  return Buffer.from(signingPreImageText(manifest, source), 'utf8');
}

export function signingPreImageText(manifest: JsonValue, source?: string): string {
  if (!isJsonObject(manifest)) {
    throw new ManifestError('a manifest is a JSON object', source === undefined ? {} : { source });
  }
  const canon = new Canonicalizer(source);
  let out = '{';
  let first = true;
  for (const key of SORTED_SIGNED_FIELDS) {
    let value = manifest.get(key);
    if (value === undefined || value === null) continue;
    if (key === 'hitl_record' && isJsonObject(value)) value = withEmptyApprovals(value);
    // The subset is an object at depth 0, so its member values sit at depth 1.
    out += `${first ? '"' : ',"'}${key}":${canon.member(key, value, 1)}`;
    first = false;
  }
  return `${out}}`;
}

/** The SDK sets `approvals` to [] even where the record had none (pinned by a test). */
function withEmptyApprovals(record: JsonObject): JsonObject {
  const copy = new Map(record);
  copy.set('approvals', []);
  return copy;
}
