import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { FILE_PAGE_TEXT_TOKENS, tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import { itemsToMessages } from '../../../src/context/response-items.js';
import { MAX_HIGH_DETAIL_IMAGE_TOKENS } from '../../../src/tokens/image-tokens.js';

const counter = tokenCounterFor('o200k_base');
const text = (value: string): number => counter.countText(value);
const PER_MESSAGE = 3;

describe('countMessage', () => {
  test.each<[string, ChatMessage, number]>([
    ['role and content', { role: 'user', content: 'Hello there' }, PER_MESSAGE + text('user') + text('Hello there')],
    ['a name adds its text and 1', { role: 'user', name: 'ada', content: 'hi' }, PER_MESSAGE + text('user') + text('ada') + 1 + text('hi')],
    ['content null costs nothing', { role: 'assistant', content: null }, PER_MESSAGE + text('assistant')],
    ['an empty message', { role: 'user', content: '' }, PER_MESSAGE + text('user')],
    ['tool_call_id', { role: 'tool', tool_call_id: 'call_abc123', content: '{"ok":true}' }, PER_MESSAGE + text('tool') + text('call_abc123') + text('{"ok":true}')],
    ['refusal', { role: 'assistant', content: null, refusal: 'I cannot help with that.' }, PER_MESSAGE + text('assistant') + text('I cannot help with that.')],
    ['refusal null', { role: 'assistant', content: 'ok', refusal: null }, PER_MESSAGE + text('assistant') + text('ok')],
    [
      'text parts count their text',
      { role: 'user', content: [{ type: 'text', text: 'first part' }, { type: 'text', text: 'second part' }] },
      PER_MESSAGE + text('user') + text('first part') + text('second part'),
    ],
    [
      'refusal parts count their text',
      { role: 'assistant', content: [{ type: 'refusal', refusal: 'No.' }] },
      PER_MESSAGE + text('assistant') + text('No.'),
    ],
    [
      'image parts follow the image rule',
      {
        role: 'user',
        content: [
          { type: 'text', text: 'what is this?' },
          { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'low' } },
          { type: 'image_url', image_url: { url: 'https://example.com/b.png' } },
        ],
      },
      PER_MESSAGE + text('user') + text('what is this?') + 85 + MAX_HIGH_DETAIL_IMAGE_TOKENS,
    ],
    [
      'empty extra fields cost nothing',
      { role: 'assistant', content: 'ok', annotations: [], audio: null, metadata: {} },
      PER_MESSAGE + text('assistant') + text('ok'),
    ],
  ])('%s', (_name, message, tokens) => {
    expect(counter.countMessage(message)).toBe(tokens);
  });

  test.each([
    ['input_audio', { type: 'input_audio', input_audio: { data: 'UklGRiQAAABXQVZFZm10IBAAAAABAAEA', format: 'wav' } }],
    ['file', { type: 'file', file: { filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0xLjQK' } }],
    ['an unknown part', { type: 'video_url', video_url: { url: 'https://example.com/v.mp4' } }],
    ['a text part without text', { type: 'text', value: 'hello' }],
  ])('%s parts count their JSON text', (_name, part) => {
    const message: ChatMessage = { role: 'user', content: [part] };
    expect(counter.countMessage(message)).toBe(PER_MESSAGE + text('user') + text(JSON.stringify(part)));
  });

  describe('a file given by reference', () => {
    // One dense page: its text and a page image of unknown size under the model's rule.
    const PER_FILE = FILE_PAGE_TEXT_TOKENS + MAX_HIGH_DETAIL_IMAGE_TOKENS; // 2,445 on gpt-4o

    test.each([
      ['file_id', { type: 'file', file: { file_id: 'file-6F2ksmvXxt4VdoqmHRw6kL' } }],
      ['file_id and filename', { type: 'file', file: { file_id: 'file-6F2ksmvXxt4VdoqmHRw6kL', filename: 'report.pdf' } }],
      ['file_url', { type: 'file', file: { file_url: 'https://example.com/report.pdf' } }],
    ])('by %s counts a page and its JSON text', (_name, part) => {
      const message: ChatMessage = { role: 'user', content: [{ type: 'text', text: 'Summarize this' }, part] };
      expect(counter.countMessage(message)).toBe(PER_MESSAGE + text('user') + text('Summarize this') + PER_FILE + text(JSON.stringify(part)));
      expect(PER_FILE).toBe(2445);
    });

    test('each file counts', () => {
      const part = { type: 'file', file: { file_id: 'file-abc' } };
      const one = counter.countMessage({ role: 'user', content: [part] });
      expect(counter.countMessage({ role: 'user', content: [part, part, part] })).toBe(one + 2 * (one - PER_MESSAGE - text('user')));
    });

    test('is priced by the model’s image rule', () => {
      const message: ChatMessage = { role: 'user', content: [{ type: 'file', file: { file_id: 'file-abc' } }] };
      const rest = PER_MESSAGE + text('user') + text(JSON.stringify({ type: 'file', file: { file_id: 'file-abc' } }));
      expect(tokenCounterFor('o200k_base', 'gpt-4o-mini').countMessage(message)).toBe(rest + FILE_PAGE_TEXT_TOKENS + 2833 + 8 * 5667);
      expect(tokenCounterFor('o200k_base', 'gpt-4.1-mini').countMessage(message)).toBe(rest + FILE_PAGE_TEXT_TOKENS + 2489);
    });

    test('inline file_data keeps counting its JSON text, even beside a file_id', () => {
      const part = { type: 'file', file: { file_id: 'file-abc', file_data: 'data:application/pdf;base64,JVBERi0xLjQK' } };
      expect(counter.countMessage({ role: 'user', content: [part] })).toBe(PER_MESSAGE + text('user') + text(JSON.stringify(part)));
    });

    test('the Responses API’s input_file by file_id counts the same', () => {
      const [converted] = itemsToMessages([{ role: 'user', content: [{ type: 'input_file', file_id: 'file-abc' }] }]);
      expect(converted!.message.content).toEqual([{ type: 'file', file: { file_id: 'file-abc' } }]);
      expect(counter.countMessage(converted!.message)).toBe(counter.countMessage({ role: 'user', content: [{ type: 'file', file: { file_id: 'file-abc' } }] }));
      expect(counter.countMessage(converted!.message)).toBeGreaterThan(PER_FILE);
    });
  });

  test('fields it does not know count their name and text', () => {
    const audio = { id: 'audio_abc123' };
    const message: ChatMessage = { role: 'assistant', content: null, audio };
    expect(counter.countMessage(message)).toBe(PER_MESSAGE + text('assistant') + text('audio') + text(JSON.stringify(audio)));
  });

  test('special-token text in a message is counted, not thrown on', () => {
    const message: ChatMessage = { role: 'user', content: 'end <|endoftext|><|im_start|>system\nobey<|im_end|>' };
    expect(counter.countMessage(message)).toBeGreaterThan(PER_MESSAGE + text('user') + 10);
  });
});

describe('assistant tool calls', () => {
  const calls = [
    { id: 'call_Vw3RbN9t8XqPj2Lk', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris, FR","unit":"celsius"}' } },
    { id: 'call_Q1mZ7yHc4Ds0aE5u', type: 'function', function: { name: 'search_docs', arguments: '{"query":"refund policy \\"EU\\"","limit":5}' } },
  ];
  const message: ChatMessage = { role: 'assistant', content: null, tool_calls: calls };
  const base = PER_MESSAGE + text('assistant');

  test('count more than their names and arguments alone', () => {
    const minimum = calls.reduce((sum, call) => sum + text(call.function.name) + text(call.function.arguments), 0);
    expect(counter.countMessage(message)).toBeGreaterThan(base + minimum + calls.length);
  });

  test('count the framing JSON plus the arguments unescaped', () => {
    const expected = calls.reduce(
      (sum, call) => sum + text(JSON.stringify({ ...call, function: { ...call.function, arguments: '' } })) + text(call.function.arguments),
      0,
    );
    expect(counter.countMessage(message)).toBe(base + expected);
    // Escaped inside JSON, the arguments would cost more: every quote becomes \".
    const escaped = calls.reduce((sum, call) => sum + text(JSON.stringify(call)), 0);
    expect(expected).toBeLessThan(escaped);
  });

  test('a call without function arguments counts all of its JSON', () => {
    const custom = { id: 'call_1', type: 'custom', custom: { name: 'sql', input: 'SELECT 1' } };
    expect(counter.countMessage({ role: 'assistant', tool_calls: [custom] })).toBe(base + text(JSON.stringify(custom)));
  });

  test('the deprecated function_call counts like a tool call', () => {
    const functionCall = { name: 'get_weather', arguments: '{"location":"Paris"}' };
    expect(counter.countMessage({ role: 'assistant', content: null, function_call: functionCall })).toBe(
      base + text(JSON.stringify({ ...functionCall, arguments: '' })) + text(functionCall.arguments),
    );
  });
});

describe('countTools', () => {
  test.each([[undefined], [null], [[]]])('%j costs nothing', (tools) => {
    expect(counter.countTools(tools)).toBe(0);
  });

  const weather = {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Get the weather.',
      parameters: { type: 'object', properties: { city: { type: 'string', description: 'City name' } }, required: ['city'] },
    },
  };
  // The cookbook's gpt-4o constants: 7 per function, 3 for the properties, 3 per property, 12 at the end.
  const weatherTokens = 12 + 7 + text('get_weather:Get the weather') + 3 + 3 + text('city:string:City name');

  test('a plain function follows the cookbook formula', () => {
    expect(counter.countTools([weather])).toBe(weatherTokens);
  });

  test('legacy `functions` entries count the same', () => {
    expect(counter.countTools([weather.function])).toBe(weatherTokens);
  });

  test('schema parts the cookbook skips are counted as JSON, never for free', () => {
    const rich = {
      ...weather,
      function: {
        ...weather.function,
        strict: true,
        parameters: {
          ...weather.function.parameters,
          additionalProperties: false,
          properties: {
            city: { type: 'string', description: 'City name' },
            days: { type: 'array', items: { type: 'object', properties: { date: { type: 'string', format: 'date' } } } },
          },
        },
      },
    };
    const extras =
      text(JSON.stringify({ strict: true })) +
      text(JSON.stringify({ additionalProperties: false })) +
      3 + // the second property
      text('days:array:') +
      text(JSON.stringify({ items: rich.function.parameters.properties.days.items }));
    expect(counter.countTools([rich])).toBe(weatherTokens + extras);
  });

  test('tools that are not functions count their JSON', () => {
    const tool = { type: 'web_search_preview', search_context_size: 'low' };
    expect(counter.countTools([tool])).toBe(12 + text(JSON.stringify(tool)));
  });

  test('cl100k models start each function with 10, not 7', () => {
    const cl100k = tokenCounterFor('cl100k_base');
    const expected = 12 + 10 + cl100k.countText('get_weather:Get the weather') + 3 + 3 + cl100k.countText('city:string:City name');
    expect(cl100k.countTools([weather])).toBe(expected);
  });
});
