/**
 * Every use of the process's environment in a source file, found with the TypeScript parser:
 * `process.env` read, written, spread or passed on, `process['env']`, `const { env } = process`,
 * and `env` imported from `node:process`. test/foundation/configuration.test.ts allows these only
 * where src/config.ts's comment and its own table name them.
 */
import ts from 'typescript';

export type EnvUseKind =
  /** `process.env.X`, `process.env[x]`: a variable read (or written, below). */
  | 'read'
  /** `process.env.X = …`, `delete process.env.X`, `Object.assign(process.env, …)`. */
  | 'write'
  /** `{ ...process.env, X: … }`: the environment passed on to a child process. */
  | 'spread'
  /** `process.env` as a value: a default argument, an argument, a variable. */
  | 'value';

export interface EnvUse {
  line: number;
  kind: EnvUseKind;
  text: string;
}

function isProcess(node: ts.Node): boolean {
  return (
    (ts.isIdentifier(node) && node.text === 'process') ||
    (ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'globalThis' &&
      node.name.text === 'process')
  );
}

/** `process.env` or `process['env']`. */
function isProcessEnv(node: ts.Node): boolean {
  if (ts.isPropertyAccessExpression(node)) return node.name.text === 'env' && isProcess(node.expression);
  if (ts.isElementAccessExpression(node))
    return (
      ts.isStringLiteralLike(node.argumentExpression) &&
      node.argumentExpression.text === 'env' &&
      isProcess(node.expression)
    );
  return false;
}

function isAssignedTo(node: ts.Node): boolean {
  const parent = node.parent;
  if (ts.isBinaryExpression(parent) && parent.left === node)
    return (
      parent.operatorToken.kind >= ts.SyntaxKind.FirstAssignment &&
      parent.operatorToken.kind <= ts.SyntaxKind.LastAssignment
    );
  if (ts.isDeleteExpression(parent)) return true;
  if ((ts.isPrefixUnaryExpression(parent) || ts.isPostfixUnaryExpression(parent)) && parent.operand === node)
    return true;
  return false;
}

function kindOf(env: ts.Node): EnvUseKind {
  const parent = env.parent;
  if (
    (ts.isPropertyAccessExpression(parent) && parent.expression === env) ||
    (ts.isElementAccessExpression(parent) && parent.expression === env)
  ) {
    return isAssignedTo(parent) ? 'write' : 'read';
  }
  if (isAssignedTo(env)) return 'write';
  if (ts.isSpreadAssignment(parent)) return 'spread';
  if (
    ts.isCallExpression(parent) &&
    parent.arguments[0] === env &&
    ts.isPropertyAccessExpression(parent.expression) &&
    ts.isIdentifier(parent.expression.expression) &&
    parent.expression.expression.text === 'Object' &&
    ['assign', 'defineProperty', 'defineProperties'].includes(parent.expression.name.text)
  )
    return 'write';
  return 'value';
}

export function processEnvUses(fileName: string, text: string): EnvUse[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const uses: EnvUse[] = [];
  const add = (node: ts.Node, kind: EnvUseKind) => {
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    uses.push({ line, kind, text: node.parent.getText(source).split('\n')[0]!.slice(0, 120) });
  };
  const visit = (node: ts.Node): void => {
    if (isProcessEnv(node)) {
      add(node, kindOf(node));
      return;
    }
    // const { env } = process
    if (
      ts.isVariableDeclaration(node) &&
      node.initializer &&
      isProcess(node.initializer) &&
      ts.isObjectBindingPattern(node.name) &&
      node.name.elements.some((e) => (e.propertyName ?? e.name).getText(source) === 'env')
    ) {
      add(node.name, 'value');
    }
    // import { env } from 'node:process' / 'process'
    if (
      ts.isImportDeclaration(node) &&
      ts.isStringLiteral(node.moduleSpecifier) &&
      ['process', 'node:process'].includes(node.moduleSpecifier.text)
    ) {
      const named = node.importClause?.namedBindings;
      if (
        named &&
        ts.isNamedImports(named) &&
        named.elements.some((e) => (e.propertyName ?? e.name).text === 'env')
      )
        add(node.moduleSpecifier, 'value');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return uses;
}
