import { UsageError } from '../errors';

/**
 * A manifest (or CRL line, or trust anchor) that rotor refuses to read, sign or re-issue.
 * The message is one line naming the source, the field path and what is wrong.
 */
export class ManifestError extends UsageError {
  readonly manifestId?: string;
  readonly path?: string;
  readonly source?: string;

  constructor(what: string, where: { source?: string; path?: string; manifestId?: string } = {}) {
    super(formatMessage(what, where), 'MANIFEST_INVALID');
    // UsageError types `name` as its own literal, so it is set here rather than overridden.
    Object.defineProperty(this, 'name', { value: 'ManifestError' });
    if (where.manifestId !== undefined) this.manifestId = where.manifestId;
    if (where.path !== undefined) this.path = where.path;
    if (where.source !== undefined) this.source = where.source;
  }
}

function formatMessage(what: string, where: { source?: string; path?: string; manifestId?: string }): string {
  const parts: string[] = [];
  parts.push(where.source ?? 'manifest');
  if (where.manifestId !== undefined && where.manifestId !== where.source) {
    parts.push(`manifest_id ${where.manifestId}`);
  }
  if (where.path !== undefined && where.path !== '') parts.push(`field ${where.path}`);
  return `${parts.join(': ')}: ${what}`;
}

/** Renders a field path the way messages name it: `artifacts.system_prompt.hash`, `delegation_chain[0]`. */
export function formatPath(segments: readonly (string | number)[]): string {
  if (segments.length > 12) {
    return `${formatPath(segments.slice(0, 4))}...${formatPath(segments.slice(-2))} (${segments.length} levels deep)`;
  }
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_@$][\w@$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}
