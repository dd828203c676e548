import { describe, expect, test } from 'vitest';
import { InvalidRequestError } from '../../../src/errors.js';
import { checkJsonDepth, MAX_JSON_DEPTH } from '../../../src/http/check-json-depth.js';
import { parseChatRequest } from '../../../src/http/parse-chat-request.js';

/** The param of the 400 a body gets for its depth, or 'accepted'. */
function verdict(json: string, maxDepth = MAX_JSON_DEPTH): string | null {
  try {
    checkJsonDepth(Buffer.from(json), maxDepth);
    return 'accepted';
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    expect(error.code).toBe('nesting_above_max_depth');
    expect(error.status).toBe(400);
    return error.param;
  }
}

const deepObject = (levels: number): string => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const deepArray = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const body = (extra: string): string => `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]${extra}}`;

describe('checkJsonDepth', () => {
  test('the limit is 128 levels, the body itself being level 1', () => {
    expect(MAX_JSON_DEPTH).toBe(128);
    expect(verdict(deepObject(128))).toBe('accepted');
    expect(verdict(deepObject(129))).toBe('a.a.a');
    expect(verdict(deepArray(128))).toBe('accepted');
    expect(verdict(deepArray(129))).toBe('[0][0][0]');
  });

  test.each([
    { name: 'in a message', json: `{"messages":[{"role":"user","content":"hi"},{"role":"user","content":${deepArray(10_000)}}]}`, param: 'messages[1].content' },
    { name: 'in metadata', json: body(`,"metadata":${deepObject(10_000)}`), param: 'metadata.a.a' },
    { name: 'in tool definitions', json: body(`,"tools":[{"type":"function","function":{"name":"f","parameters":${deepObject(10_000)}}}]`), param: 'tools[0].function' },
    { name: 'in tool-call arguments sent as an object', json: `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":${deepObject(10_000)}}}]}]}`, param: 'messages[0].tool_calls' },
    { name: 'just under a top-level key', json: `{"x":${deepArray(10_000)}}`, param: 'x[0][0]' },
    { name: 'a million levels', json: `{"x":${deepArray(1_000_000)}}`, param: 'x[0][0]' },
    { name: 'after the third element and an escaped key', json: `{"messages":[1,2,3,{"a\\"b":${deepObject(200)}}]}`, param: 'messages[3].a"b' },
    { name: 'in malformed JSON that never closes', json: `{"x":${'['.repeat(200)}`, param: 'x[0][0]' },
  ])('nesting $name is refused, naming where', ({ json, param }) => {
    expect(verdict(json)).toBe(param);
  });

  test.each([
    { name: 'brackets inside strings', json: body(`,"metadata":{"note":"${'['.repeat(500)}{{{"}`) },
    { name: 'escaped quotes before the brackets of a long string', json: body(`,"metadata":{"note":"${'x'.repeat(100)}\\"${'['.repeat(500)}\\""}`) },
    { name: 'escaped quotes in short strings', json: `{"a":"\\"[[[[","b":${deepArray(120)}}` },
    { name: 'a string ending in an escaped backslash, then real nesting within the limit', json: `{"a":"${'x'.repeat(40)}\\\\","b":${deepArray(120)}}` },
    { name: 'non-ASCII text', json: body(`,"metadata":{"note":"héllo wörld — 你好 😀 [[[["}`) },
    { name: 'tool-call arguments holding deep JSON as a string', json: `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":${JSON.stringify(deepArray(10_000))}}}]}]}` },
    { name: 'closing brackets past the start (not JSON: left to JSON.parse)', json: ']]]' },
    { name: 'an unterminated string', json: '{"a":"[[[[[[' },
  ])('$name: accepted', ({ json }) => {
    expect(verdict(json, 121)).toBe('accepted');
  });

  test('escaped and unescaped quotes are told apart at every length (backslash runs of 0–5, inline and long strings)', () => {
    for (const padding of [0, 10, 31, 32, 33, 100]) {
      for (let backslashes = 0; backslashes <= 5; backslashes++) {
        // An odd run escapes the quote, so the string goes on and `[[1]]` is text in it; an even run ends it.
        const start = `{"a":["${'x'.repeat(padding)}${'\\'.repeat(backslashes)}",[[1]]`;
        const json = backslashes % 2 === 1 ? `${start}"]}` : `${start}]}`;
        expect(() => JSON.parse(json), json).not.toThrow();
        const parsedDepth = backslashes % 2 === 1 ? 2 : 4;
        expect(verdict(json, parsedDepth), json).toBe('accepted');
        expect(verdict(json, parsedDepth - 1), json).not.toBe('accepted');
      }
    }
  });
});

describe('parseChatRequest', () => {
  test('refuses a too-deep body before parsing it, wherever the nesting is', () => {
    expect(() => parseChatRequest(Buffer.from(body(`,"metadata":${deepObject(10_000)}`)))).toThrow(/more than 128 levels deep/);
  });

  test('checks message shapes after parsing', () => {
    expect(() => parseChatRequest(Buffer.from('{"messages":[{"role":"user","content":7}]}'))).toThrow(expect.objectContaining({ param: 'messages[0].content', code: 'invalid_type' }) as Error);
  });

  test('gives back the body as sent, unknown fields included', () => {
    const parsed = parseChatRequest(Buffer.from(body(`,"stream":true,"metadata":${deepObject(100)},"x_vendor":{"k":[1]}`)));
    expect(parsed).toMatchObject({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    expect(parsed.raw.x_vendor).toEqual({ k: [1] });
  });
});
