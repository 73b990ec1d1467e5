/**
 * Errors meant for a person: one line that says what is wrong and, where there is one, the fix.
 * The CLI prints `message` alone (no stack) and exits with `exitCode`.
 */
export class RotorError extends Error {
  override readonly name: string = 'RotorError';
  constructor(
    message: string,
    /** Stable machine-readable code, e.g. `ENV_DATABASE_UNREACHABLE`. */
    readonly code: string,
    /** 2 = bad usage or unreadable input, 1 = the operation ran and said no, 3 = environment. */
    readonly exitCode: number = 1,
  ) {
    super(message);
  }
}

/** Bad usage or unreadable input: the CLI exits 2. */
export class UsageError extends RotorError {
  override readonly name = 'UsageError';
  constructor(message: string, code = 'USAGE') {
    super(message, code, 2);
  }
}

/** The machine lacks something rotor needs (a server, a binary, a library): exit 3. */
export class EnvironmentError extends RotorError {
  override readonly name = 'EnvironmentError';
  constructor(message: string, code = 'ENVIRONMENT') {
    super(message, code, 3);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * A rotation policy that cannot be honoured (offsets out of order, a size that is not positive):
 * bad input, never retried. Here rather than in the workflow code so activities can recognise it
 * without importing the workflow layer.
 */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}
