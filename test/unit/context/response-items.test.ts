import { describe, expect, test } from 'vitest';
import { digestMessage } from '../../../src/context/message-digest.js';
import { itemsToMessages, messagesToItems } from '../../../src/context/response-items.js';
import type { ChatMessage } from '../../../src/domain.js';

const messagesOf = (items: unknown[]): ChatMessage[] => itemsToMessages(items).map((m) => m.message);

describe('itemsToMessages', () => {
  test('messages of every role, "easy" and typed, text parts as text, one text as a string', () => {
    expect(
      messagesOf([
        { role: 'developer', content: 'be brief' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'hello', annotations: [] }], id: 'msg_1', status: 'completed' },
        { role: 'user', content: [{ type: 'input_text', text: 'look' }, { type: 'input_image', image_url: 'https://x/y.png', detail: 'low' }] },
      ]),
    ).toEqual([
      { role: 'developer', content: 'be brief' },
      { role: 'user', content: [{ type: 'text', text: 'hi' }] },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } }] },
    ]);
  });

  test('a run of assistant items is one assistant message: its text, then one tool call per function_call; outputs are tool messages', () => {
    const items = [
      { role: 'user', content: 'weather in Oslo and Rome?' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }] },
      { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}', status: 'completed' },
      { type: 'function_call', id: 'fc_2', call_id: 'call_b', name: 'weather', arguments: '{"city":"Rome"}' },
      { type: 'function_call_output', call_id: 'call_a', output: 'rain' },
      { type: 'function_call_output', call_id: 'call_b', output: [{ type: 'input_text', text: 'sun' }] },
    ];
    expect(itemsToMessages(items)).toEqual([
      { message: { role: 'user', content: 'weather in Oslo and Rome?' }, start: 0, end: 1 },
      {
        message: {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
            { id: 'call_b', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } },
          ],
        },
        start: 1,
        end: 4,
      },
      { message: { role: 'tool', tool_call_id: 'call_a', content: 'rain' }, start: 4, end: 5 },
      { message: { role: 'tool', tool_call_id: 'call_b', content: 'sun' }, start: 5, end: 6 },
    ]);
  });

  test('items with no chat form (reasoning, hosted tools) have no message but stay in the range of the message after them, or the last', () => {
    const items = [
      { role: 'user', content: 'think' },
      { type: 'reasoning', id: 'rs_1', summary: [] },
      { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c', output: 'ok' },
      { type: 'web_search_call', id: 'ws_1', status: 'completed' },
    ];
    expect(itemsToMessages(items).map(({ message, start, end }) => [message.role, start, end])).toEqual([
      ['user', 0, 1],
      ['assistant', 1, 3],
      ['tool', 3, 5],
    ]);
    expect(itemsToMessages([{ type: 'reasoning', id: 'rs_only' }])).toEqual([]);
  });

  test('text after a run of calls joins the run (a chat message with calls must be followed by their results); a refusal part is the refusal', () => {
    expect(
      messagesOf([
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Looking.' }] },
        { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Done soon.' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'refusal', refusal: 'no' }] },
      ]),
    ).toEqual([
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Looking.' },
          { type: 'text', text: 'Done soon.' },
        ],
        refusal: 'no',
        tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }],
      },
    ]);
  });
});

describe('messagesToItems and back: one conversation, either API', () => {
  const conversation: ChatMessage[] = [
    { role: 'user', content: 'weather in Oslo?' },
    { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
    { role: 'tool', tool_call_id: 'call_a', content: 'rain' },
    { role: 'assistant', content: 'It rains.' },
    { role: 'user', content: [{ type: 'text', text: 'and this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'high' } }] },
    { role: 'assistant', content: null, refusal: 'I cannot.' },
  ];

  test('chat messages become items OpenAI takes as input', () => {
    expect(messagesToItems(conversation)).toEqual([
      { type: 'message', role: 'user', content: 'weather in Oslo?' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }] },
      { type: 'function_call', call_id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}' },
      { type: 'function_call_output', call_id: 'call_a', output: 'rain' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'It rains.' }] },
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'and this?' },
          { type: 'input_image', image_url: 'data:image/png;base64,AAAA', detail: 'high' },
        ],
      },
      { type: 'message', role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] },
    ]);
  });

  test('items made from stored messages are recognised as those messages: every digest survives the round trip', () => {
    const back = messagesOf(messagesToItems(conversation));
    expect(back.map(digestMessage)).toEqual(conversation.map(digestMessage));
  });
});
