/**
 * docs/CONFIGURATION.md's table, rendered from src/config.ts's `ENV_VARIABLES`.
 * test/foundation/configuration.test.ts checks the document holds exactly this table;
 * `npx tsx test/helpers/configuration-doc.ts --write` rewrites it after a change to the list.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ENV_VARIABLES } from '../../src/config';

export const CONFIGURATION_DOC = fileURLToPath(new URL('../../docs/CONFIGURATION.md', import.meta.url));
const BEGIN = '<!-- table: generated from ENV_VARIABLES in src/config.ts -->';
const END = '<!-- end of table -->';

export function renderConfigurationTable(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  return [
    '| variable | default | meaning |',
    '|---|---|---|',
    ...ENV_VARIABLES.map((v) => `| \`${v.name}\` | ${cell(v.default)} | ${cell(v.meaning)} |`),
  ].join('\n');
}

/** The table as the document holds it (between the two markers), or undefined without them. */
export function documentedTable(doc: string): string | undefined {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start === -1 || end < start) return undefined;
  return doc.slice(start + BEGIN.length, end).trim();
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const doc = readFileSync(CONFIGURATION_DOC, 'utf8');
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start === -1 || end < start) throw new Error(`${CONFIGURATION_DOC} has no ${BEGIN} … ${END} markers`);
  writeFileSync(
    CONFIGURATION_DOC,
    `${doc.slice(0, start + BEGIN.length)}\n${renderConfigurationTable()}\n${doc.slice(end)}`,
  );
}
