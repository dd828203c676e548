import { describe, expect, test } from 'vitest';
import { createSseParser, type SseEvent } from '../../../src/streaming/sse-parser.js';
import { recordedTextStream } from './recorded-streams.js';

const utf8 = new TextEncoder();

function parse(chunks: readonly Uint8Array[]): { events: SseEvent[]; tail: SseEvent | undefined } {
  const events: SseEvent[] = [];
  const parser = createSseParser((e) => events.push(e));
  for (const c of chunks) parser.push(c);
  return { events, tail: parser.end() };
}

function parseText(text: string): { events: SseEvent[]; tail: SseEvent | undefined } {
  return parse([utf8.encode(text)]);
}

const msg = (data: string, event?: string): SseEvent => ({ event, data });

describe('createSseParser', () => {
  test.each<{ name: string; input: string; events: SseEvent[]; tail?: SseEvent }>([
    { name: 'LF line ends', input: 'data: a\n\ndata: b\n\n', events: [msg('a'), msg('b')] },
    { name: 'CRLF line ends', input: 'data: a\r\n\r\ndata: b\r\n\r\n', events: [msg('a'), msg('b')] },
    { name: 'CR line ends', input: 'data: a\r\rdata: b\r\r', events: [msg('a'), msg('b')] },
    { name: 'mixed line ends', input: 'data: a\r\n\ndata: b\r\rdata: c\n\r\n', events: [msg('a'), msg('b'), msg('c')] },
    { name: 'data: without a space', input: 'data:a\n\n', events: [msg('a')] },
    { name: 'only one leading space is removed', input: 'data:  a \n\n', events: [msg(' a ')] },
    { name: 'multiple data lines joined with LF', input: 'data: a\ndata:\ndata: b\n\n', events: [msg('a\n\nb')] },
    { name: 'comments are skipped', input: ': keep-alive\n\n: x\ndata: a\n: y\n\n', events: [msg('a')] },
    { name: 'event type, reset after each event', input: 'event: error\ndata: a\n\ndata: b\n\n', events: [msg('a', 'error'), msg('b')] },
    { name: 'empty event type is no type', input: 'event:\ndata: a\n\n', events: [msg('a')] },
    { name: 'event without data is not dispatched', input: 'event: ping\n\ndata: a\n\n', events: [msg('a')] },
    { name: 'a bare "data" field is an empty data line', input: 'data\n\n', events: [msg('')] },
    { name: 'id, retry and unknown fields are ignored', input: 'id: 7\nretry: 10\nfoo: bar\ndata: a\n\n', events: [msg('a')] },
    { name: 'a colon inside the value is kept', input: 'data: {"a":"b:c"}\n\n', events: [msg('{"a":"b:c"}')] },
    { name: 'a leading BOM is dropped', input: '\uFEFFdata: a\n\n', events: [msg('a')] },
    { name: 'extra blank lines dispatch nothing', input: '\n\n\ndata: a\n\n\n\n', events: [msg('a')] },
    {
      name: 'a last event without blank line is not dispatched but returned',
      input: 'data: a\n\ndata: [DONE]\n',
      events: [msg('a')],
      tail: msg('[DONE]'),
    },
    { name: 'an unterminated last line is part of the tail', input: 'data: a\n\ndata: [DONE]', events: [msg('a')], tail: msg('[DONE]') },
    { name: 'a tail keeps its event type', input: 'event: error\ndata: x', events: [], tail: msg('x', 'error') },
    { name: 'a tail of comments only is no event', input: 'data: a\n\n: bye\n', events: [msg('a')] },
  ])('$name', ({ input, events, tail }) => {
    const out = parseText(input);
    expect(out.events).toEqual(events);
    expect(out.tail).toEqual(tail);
  });

  const recorded = utf8.encode(recordedTextStream);
  const recordedCrlf = utf8.encode(recordedTextStream.replaceAll('\n', '\r\n'));
  const recordedCr = utf8.encode(recordedTextStream.replaceAll('\n', '\r'));

  test.each([
    { name: 'LF', bytes: recorded },
    { name: 'CRLF', bytes: recordedCrlf },
    { name: 'CR', bytes: recordedCr },
  ])('the recorded $name stream split at every byte boundary parses like the whole', ({ bytes }) => {
    const whole = parse([bytes]);
    expect(whole.events).toHaveLength(10);
    expect(whole.events.at(-1)).toEqual(msg('[DONE]'));
    expect(whole.tail).toBeUndefined();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const split = parse([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(split, `split at byte ${cut}`).toEqual(whole);
    }
  });

  test('the recorded stream fed one byte at a time parses like the whole', () => {
    const bytes = recordedCrlf;
    const oneByOne = parse(Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)));
    expect(oneByOne).toEqual(parse([bytes]));
  });

  test('a multi-byte character split across chunks is decoded whole', () => {
    const bytes = utf8.encode('data: 🌍\n\n');
    // 🌍 is four bytes, starting at offset 6: split it after each of its first three bytes.
    const out = parse([bytes.subarray(0, 7), bytes.subarray(7, 8), bytes.subarray(8, 9), bytes.subarray(9)]);
    expect(out.events).toEqual([msg('🌍')]);
  });

  test('a CR at the end of a chunk and an LF at the start of the next are one line end', () => {
    // Two line ends would make a blank line and split the event in two.
    const out = parse([utf8.encode('data: a\r'), utf8.encode('\ndata: b\r'), utf8.encode('\n\n')]);
    expect(out.events).toEqual([msg('a\nb')]);
  });

  test('an empty chunk between CR and LF does not separate them', () => {
    const out = parse([utf8.encode('data: a\r'), new Uint8Array(0), utf8.encode('\ndata: b\n\n')]);
    expect(out.events).toEqual([msg('a\nb')]);
  });

  test('events are dispatched as soon as their blank line arrives', () => {
    const events: SseEvent[] = [];
    const parser = createSseParser((e) => events.push(e));
    parser.push(utf8.encode('data: a\n'));
    expect(events).toEqual([]);
    parser.push(utf8.encode('\ndata: b'));
    expect(events).toEqual([msg('a')]);
  });
});
