/**
 * Issue 16, point 7: the layering of docs/ARCHITECTURE.md is enforced, not just written down.
 * The checker reads `src/` with the TypeScript parser; the rules table lives in
 * test/helpers/layering.ts and the architecture document's table must say the same.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  importEdges,
  LAYER_RULES,
  layeringViolations,
  repositoryEdges,
  sourceFiles,
} from '../helpers/layering';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

describe('layering (docs/ARCHITECTURE.md)', () => {
  it('every import in src/ follows the table', () => {
    const edges = repositoryEdges(SRC);
    // The checker saw the code: cross-layer imports exist, so an empty result means something.
    expect(edges.length).toBeGreaterThan(100);
    expect(layeringViolations(edges)).toEqual([]);
  });

  it('every layer of src/ has a rule', () => {
    const layers = new Set(
      sourceFiles(SRC).map((f) =>
        f
          .slice(SRC.length + 1)
          .split('/')[0]!
          .replace(/\.ts$/, ''),
      ),
    );
    expect([...layers].filter((l) => !(l in LAYER_RULES))).toEqual([]);
  });

  it('a deliberately wrong import is caught, naming the file, the line and the rule', () => {
    const file = join(SRC, 'manifest', 'sign.ts');
    const text = "import { ok } from '../errors';\nimport { pool } from '../store/db';\n";
    expect(layeringViolations(importEdges(SRC, file, text))).toEqual([
      `${file}:2: manifest imports store ('../store/db'); manifest may import errors, domain`,
    ]);
  });

  it('types-only allowances admit `import type` and nothing else', () => {
    const file = join(SRC, 'http', 'service.ts');
    const typeOnly = "import type { RotationStatus } from '../workflows/rotation-api';\n";
    const inlineTypes = "import { type RotationStatus } from '../workflows/rotation-api';\n";
    const value = "import { statusQuery } from '../workflows/rotation-api';\n";
    expect(layeringViolations(importEdges(SRC, file, typeOnly))).toEqual([]);
    expect(layeringViolations(importEdges(SRC, file, inlineTypes))).toEqual([]);
    expect(layeringViolations(importEdges(SRC, file, value))).toHaveLength(1);
    // Re-exports and dynamic imports count too.
    const reexport = "export { statusQuery } from '../workflows/rotation-api';\n";
    const dynamic = "const m = await import('../workflows/rotation-api');\n";
    expect(layeringViolations(importEdges(SRC, file, reexport))).toHaveLength(1);
    expect(layeringViolations(importEdges(SRC, file, dynamic))).toHaveLength(1);
  });

  it("the architecture document's table states the same rules", () => {
    const doc = readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
    for (const [layer, rule] of Object.entries(LAYER_RULES)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| ${layer} |`));
      expect(row, `docs/ARCHITECTURE.md has no "Layering" row for ${layer}`).toBeDefined();
      const cells = row!.split('|').map((c) => c.trim());
      expect(cells[2], layer).toBe(rule.value.includes('*') ? 'everything' : rule.value.join(', ') || '-');
      expect(cells[3], layer).toBe((rule.typeOnly ?? []).join(', ') || '-');
    }
  });
});
