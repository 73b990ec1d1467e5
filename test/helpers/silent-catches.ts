/**
 * Finds error handlers that swallow an error without a word: a `catch` clause or a `.catch(fn)`
 * callback whose body does nothing (an empty block, or only `undefined`/`null`/`false`/`NaN`)
 * and that carries no comment saying why the error may be dropped, inside it or just before its
 * statement. A handler that does something (returns a verdict, records a problem, logs, throws)
 * has decided what the error means and is not silent. Used by test/foundation/no-silent-catch.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

export interface SilentCatch {
  file: string;
  line: number;
  text: string;
}

const COMMENT = /\/\/|\/\*/;

/** A comment inside the node, or before the statement that holds it (its leading trivia). */
function hasComment(sourceText: string, node: ts.Node): boolean {
  if (COMMENT.test(sourceText.slice(node.getStart(), node.getEnd()))) return true;
  let statement: ts.Node = node;
  while (statement.parent && !ts.isBlock(statement.parent) && !ts.isSourceFile(statement.parent))
    statement = statement.parent;
  return COMMENT.test(sourceText.slice(statement.getFullStart(), statement.getStart()));
}

/** An empty block, or an expression body that is only a placeholder value. */
function doesNothing(body: ts.Node): boolean {
  if (ts.isBlock(body)) return body.statements.length === 0;
  const text = body.getText().replace(/\s/g, '');
  return /^(undefined|null|false|true|Number\.NaN|NaN|\(\{\}\)|\{\})$/.test(text);
}

export function silentCatchesIn(file: string, text: string): SilentCatch[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: SilentCatch[] = [];
  const report = (node: ts.Node) => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart());
    found.push({ file, line: line + 1, text: node.getText().split('\n')[0]!.slice(0, 80) });
  };
  const visit = (node: ts.Node) => {
    if (ts.isCatchClause(node)) {
      if (doesNothing(node.block) && !hasComment(text, node)) report(node);
    } else if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === 'catch' &&
      node.arguments.length === 1
    ) {
      const handler = node.arguments[0]!;
      if (ts.isArrowFunction(handler) || ts.isFunctionExpression(handler)) {
        if (doesNothing(handler.body) && !hasComment(text, node)) report(node);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

export function silentCatches(root: string, dir: string): SilentCatch[] {
  const out: SilentCatch[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts'))
        out.push(...silentCatchesIn(relative(root, path), readFileSync(path, 'utf8')));
    }
  };
  walk(join(root, dir));
  return out;
}
