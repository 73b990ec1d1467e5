/**
 * Edits top-level members of a manifest's text in place: the manifest text is the copy of
 * record, so members rotor does not change keep their exact bytes, and the ones it writes
 * follow the document's own layout (compact, Python's `", "`/`": "`, or indented).
 */
import type { ParsedDocument } from './json';

export interface MemberEdit {
  readonly key: string;
  /** New value text, or null to remove the member. */
  readonly valueText: string | null;
  /** Where to add the member when absent: after this member, else at the end. */
  readonly after?: string;
}

export interface Layout {
  /** Between members, comma included: `,`, `, `, `,\n  `. */
  readonly memberSeparator: string;
  /** Between a member's name and its value: `:`, `: `. */
  readonly colon: string;
  /** The indent unit for a pretty-printed document, or null. */
  readonly indent: string | null;
}

export function layoutOf(doc: ParsedDocument): Layout {
  const members = doc.members ?? [];
  const t = doc.text;
  let memberSeparator = ',';
  if (members.length >= 2) memberSeparator = t.slice(members[0]!.valueEnd, members[1]!.keyStart);
  else if (members.length === 1 && t.slice(doc.open + 1, members[0]!.keyStart).includes('\n')) {
    memberSeparator = `,${t.slice(doc.open + 1, members[0]!.keyStart)}`;
  }
  let colon = ':';
  if (members.length >= 1) {
    const m = members[0]!;
    const keyEnd = endOfKey(t, m.keyStart);
    colon = t.slice(keyEnd, m.valueStart);
  }
  const nl = memberSeparator.lastIndexOf('\n');
  const indent = nl === -1 ? null : memberSeparator.slice(nl + 1);
  return { memberSeparator, colon, indent: indent === '' ? null : indent };
}

/** Writes a JSON value (plain data rotor builds) in the document's style. */
export function formatValue(value: unknown, layout: Layout): string {
  if (layout.indent !== null) {
    return JSON.stringify(value, null, layout.indent).replaceAll('\n', `\n${layout.indent}`);
  }
  if (!isSpaced(layout)) return JSON.stringify(value);
  return formatSpaced(value);
}

export function isSpaced(layout: Layout): boolean {
  return layout.indent === null && layout.memberSeparator.length > 1;
}

/** Python's json.dumps default layout: `", "` between items, `": "` after names. */
function formatSpaced(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(formatSpaced).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${formatSpaced(v)}`);
    return `{${parts.join(', ')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Applies edits to the root object's members. A key that occurs more than once (Python keeps
 * the last value at the first position) is written once, at its first position.
 */
export function spliceMembers(doc: ParsedDocument, edits: readonly MemberEdit[], layout: Layout): string {
  const t = doc.text;
  const members = doc.members!;
  const byKey = new Map(edits.map((e) => [e.key, e]));
  const originalKeys = new Set(members.map((m) => m.key));
  const written = new Set<string>();
  // Each output member with the separator that followed it in the source (null: use the layout's).
  const out: { text: string; sep: string | null }[] = [];
  const added = (e: MemberEdit) => `${JSON.stringify(e.key)}${layout.colon}${e.valueText}`;
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    const sep = i + 1 < members.length ? t.slice(m.valueEnd, members[i + 1]!.keyStart) : null;
    const edit = byKey.get(m.key);
    if (edit === undefined) out.push({ text: t.slice(m.keyStart, m.valueEnd), sep });
    else if (!written.has(m.key)) {
      written.add(m.key);
      if (edit.valueText !== null)
        out.push({ text: t.slice(m.keyStart, m.valueStart) + edit.valueText, sep });
    }
    for (const e of edits) {
      if (e.after === m.key && e.valueText !== null && !originalKeys.has(e.key) && !written.has(e.key)) {
        out.push({ text: added(e), sep: null });
        written.add(e.key);
      }
    }
  }
  for (const e of edits) {
    if (e.valueText !== null && !written.has(e.key)) {
      out.push({ text: added(e), sep: null });
      written.add(e.key);
    }
  }
  const head = t.slice(0, doc.open + 1);
  const tail = t.slice(doc.close);
  if (out.length === 0) return `${head}${tail}`;
  const lead = members.length > 0 ? t.slice(doc.open + 1, members[0]!.keyStart) : leadFor(layout);
  const trail =
    members.length > 0 ? t.slice(members[members.length - 1]!.valueEnd, doc.close) : trailFor(layout);
  let body = '';
  for (let i = 0; i < out.length; i++) {
    body += out[i]!.text;
    if (i + 1 < out.length) body += out[i]!.sep ?? layout.memberSeparator;
  }
  return `${head}${lead}${body}${trail}${tail}`;
}

function leadFor(layout: Layout): string {
  return layout.indent === null ? '' : `\n${layout.indent}`;
}

function trailFor(layout: Layout): string {
  return layout.indent === null ? '' : '\n';
}

/** Index just past a member name's closing quote. */
function endOfKey(text: string, keyStart: number): number {
  let i = keyStart + 1;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 92) i += 2;
    else if (c === 34) return i + 1;
    else i++;
  }
}
