/**
 * The import rules of docs/ARCHITECTURE.md ("Layering"), as data, and a checker that reads every
 * import and re-export of `src/` with the TypeScript parser. A layer is a folder of `src/` or one
 * of its top-level modules. `value` lists what a layer may import; `typeOnly` what it may import
 * with `import type` only (the type is erased, so no code of that layer runs or loads).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

export interface LayerRule {
  value: readonly string[];
  typeOnly?: readonly string[];
}

/** Foundations every layer may use: no I/O of their own, nothing of rotor's below them. */
const BASE = ['errors', 'domain'] as const;

export const LAYER_RULES: Record<string, LayerRule> = {
  errors: { value: [] },
  domain: { value: [] },
  log: { value: ['errors'] },
  config: { value: [...BASE, 'log'] },
  text: { value: [] },
  net: { value: [] },
  manifest: { value: [...BASE] },
  synthetic: { value: [...BASE, 'manifest'] },
  custody: { value: [...BASE, 'config', 'log', 'manifest'] },
  store: { value: [...BASE, 'config', 'log', 'manifest'] },
  verifier: { value: [...BASE, 'log', 'manifest'] },
  http: { value: [...BASE, 'config', 'log', 'manifest', 'store'], typeOnly: ['workflows'] },
  activities: { value: [...BASE, 'config', 'log', 'manifest', 'custody', 'store', 'http'] },
  workflows: { value: [...BASE], typeOnly: ['activities'] },
  rotation: {
    value: [
      ...BASE,
      'manifest',
      'store',
      'synthetic',
      'custody',
      'http',
      'activities',
      'workflows',
      'temporal',
      'embedded',
      'worker',
    ],
  },
  hsm: { value: [...BASE, 'config'] },
  temporal: { value: [...BASE, 'log', 'net', 'store'] },
  embedded: { value: [...BASE, 'log', 'net'] },
  worker: { value: [...BASE, 'config', 'log', 'custody', 'store', 'activities'], typeOnly: ['workflows'] },
  cli: { value: ['*'] },
  demo: { value: ['*'] },
};

export interface ImportEdge {
  file: string;
  line: number;
  from: string;
  to: string;
  specifier: string;
  typeOnly: boolean;
}

/** `src/a/b.ts` → `a`; `src/errors.ts` → `errors`. */
export function layerOf(srcRoot: string, file: string): string {
  const rel = relative(srcRoot, file).split(sep);
  return rel.length > 1 ? rel[0]! : rel[0]!.replace(/\.ts$/, '');
}

/** Every relative import, re-export and dynamic import in one source text that leaves its layer. */
export function importEdges(srcRoot: string, file: string, text: string): ImportEdge[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const from = layerOf(srcRoot, file);
  const edges: ImportEdge[] = [];
  const add = (node: ts.Node, specifier: string, typeOnly: boolean) => {
    if (!specifier.startsWith('.')) return;
    const to = layerOf(srcRoot, resolve(dirname(file), specifier));
    if (to === from) return;
    const line = source.getLineAndCharacterOfPosition(node.getStart()).line + 1;
    edges.push({ file, line, from, to, specifier, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allTypes =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            named !== undefined &&
            ts.isNamedImports(named) &&
            named.elements.length > 0 &&
            named.elements.every((e) => e.isTypeOnly)));
      add(node, node.moduleSpecifier.text, allTypes);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const clause = node.exportClause;
      const allTypes =
        node.isTypeOnly ||
        (clause !== undefined && ts.isNamedExports(clause) && clause.elements.every((e) => e.isTypeOnly));
      add(node, node.moduleSpecifier.text, allTypes);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node, node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

/** The edges `rules` forbid, each as one line naming the file, the import and the rule. */
export function layeringViolations(
  edges: ImportEdge[],
  rules: Record<string, LayerRule> = LAYER_RULES,
): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const rule = rules[e.from];
    if (rule === undefined) {
      out.push(`${e.file}: layer '${e.from}' has no rule in docs/ARCHITECTURE.md's table`);
      continue;
    }
    if (rule.value.includes('*') || rule.value.includes(e.to)) continue;
    if (e.typeOnly && rule.typeOnly?.includes(e.to)) continue;
    const allowed =
      [...rule.value, ...(rule.typeOnly ?? []).map((l) => `${l} (types only)`)].join(', ') || 'nothing';
    out.push(
      `${e.file}:${e.line}: ${e.from} imports ${e.to} ('${e.specifier}'${e.typeOnly ? ', types only' : ''}); ${e.from} may import ${allowed}`,
    );
  }
  return out;
}

/** Every `.ts` file under `dir`. */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out.sort();
}

export function repositoryEdges(srcRoot: string): ImportEdge[] {
  return sourceFiles(srcRoot).flatMap((f) => importEdges(srcRoot, f, readFileSync(f, 'utf8')));
}
