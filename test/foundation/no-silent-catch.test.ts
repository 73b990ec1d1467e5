/**
 * No error is swallowed without a word in src/: every `catch` or `.catch()` that does nothing
 * says why (test/helpers/silent-catches.ts). The checker itself is shown to catch one.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { silentCatches, silentCatchesIn } from '../helpers/silent-catches';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('error handlers in src/', () => {
  it('none swallows an error silently', () => {
    // A handler listed here: log the error, or say in a comment (inside it or just above its
    // statement) why dropping it is right.
    expect(silentCatches(ROOT, 'src').map((s) => `${s.file}:${s.line} ${s.text}`)).toEqual([]);
  });

  it('the checker finds a silent one and accepts a commented or acting one', () => {
    const found = silentCatchesIn(
      'fixture.ts',
      [
        'try { a(); } catch {}',
        'p.catch(() => {});',
        'q.catch(() => undefined);',
        'try { a(); } catch {\n  // the cache is optional\n}',
        '// shutting down: nothing to report\nr.catch(() => {});',
        'try { a(); } catch (err) { log(err); }',
        's.catch((err) => report(err));',
      ].join('\n'),
    );
    expect(found.map((f) => f.line)).toEqual([1, 2, 3]);
  });
});
