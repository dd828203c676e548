import { describe, expect, test } from 'vitest';
import { interpolateDocument, interpolateString } from '../../../src/config/interpolate.js';

describe('interpolateString', () => {
  const env = { A: 'alpha', EMPTY: '', HASH: '#: x' };
  test.each([
    ['no references', 'plain', 'plain', false],
    ['${A}', '${A}', 'alpha', true],
    ['two references', '${A}-${A}', 'alpha-alpha', true],
    ['${EMPTY} (set, empty)', '[${EMPTY}]', '[]', true],
    ['${MISSING:-fallback}', '${MISSING:-fallback}', 'fallback', false],
    ['${EMPTY:-fallback}', '${EMPTY:-fallback}', 'fallback', false],
    ['${MISSING:-} (empty default)', 'x${MISSING:-}y', 'xy', false],
    ['a default with : and /', '${MISSING:-https://api.openai.com/v1}', 'https://api.openai.com/v1', false],
    ['$${ (escaped)', 'a$${A}b', 'a${A}b', false],
    ['$ on its own', 'cost: $5 and $', 'cost: $5 and $', false],
    ['a value holding # and :', '${HASH}', '#: x', true],
  ])('%s', (_name, text, value, usedEnv) => {
    expect(interpolateString(text, env)).toEqual({ kind: 'ok', value, usedEnv });
  });

  test.each([
    ['${MISSING}', ['environment variable MISSING is not set (write ${MISSING:-} to allow it to be unset)']],
    ['${MISSING} ${OTHER}', [
      'environment variable MISSING is not set (write ${MISSING:-} to allow it to be unset)',
      'environment variable OTHER is not set (write ${OTHER:-} to allow it to be unset)',
    ]],
    ['${A', ['malformed "${": write ${VAR}, ${VAR:-default}, or $${ for a literal "${"']],
    ['${1A}', ['malformed "${": write ${VAR}, ${VAR:-default}, or $${ for a literal "${"']],
    ['${A:?required}', ['malformed "${": write ${VAR}, ${VAR:-default}, or $${ for a literal "${"']],
  ])('%s is an error', (text, messages) => {
    expect(interpolateString(text, env)).toEqual({ kind: 'error', messages });
  });
});

describe('interpolateDocument', () => {
  test('interpolates strings at any depth, records which took env values, and leaves other scalars alone', () => {
    const result = interpolateDocument(
      { a: '${A}', b: [1, '${MISSING:-d}', { c: '${A}' }], d: true, e: null, f: '${NOPE}' },
      { A: 'alpha' },
    );
    expect(result.document).toEqual({ a: 'alpha', b: [1, 'd', { c: 'alpha' }], d: true, e: null, f: undefined });
    expect(result.interpolatedPaths).toEqual([['a'], ['b', 2, 'c']]);
    expect(result.problems).toEqual([{ path: ['f'], message: expect.stringContaining('NOPE is not set') }]);
  });
});
