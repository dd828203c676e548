import { describe, expect, test } from 'vitest';
import { InvalidRequestError } from '../../../src/errors.js';
import { checkChatMessages } from '../../../src/http/check-chat-messages.js';

/** The param and code of the 400 `messages` gets, or undefined when it is accepted. */
function problemOf(messages: unknown[]): { param: string | null; code: string } | undefined {
  try {
    checkChatMessages(messages);
    return undefined;
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    expect(error.status).toBe(400);
    expect(error.message).toContain(error.param);
    return { param: error.param, code: error.code };
  }
}

const user = (content: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ role: 'user', content, ...extra });
const assistant = (fields: Record<string, unknown>): Record<string, unknown> => ({ role: 'assistant', ...fields });
const call = (fields: Record<string, unknown> = {}): Record<string, unknown> => ({ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' }, ...fields });
const withCalls = (toolCalls: unknown): unknown[] => [user('q'), assistant({ content: null, tool_calls: toolCalls })];

// OpenAI's request schema (ChatCompletionMessageParam, openai-node 6.x), and what contextd accepted before issue 12.
describe('accepted: every shape OpenAI allows', () => {
  test.each<{ name: string; messages: unknown[] }>([
    { name: 'system, developer and user strings, with names', messages: [{ role: 'system', content: 'be brief', name: 'ops' }, { role: 'developer', content: 'json only' }, user('hi', { name: 'ana' })] },
    { name: 'system and developer text parts', messages: [{ role: 'system', content: [{ type: 'text', text: 'be brief' }] }, { role: 'developer', content: [{ type: 'text', text: 'x' }] }] },
    { name: 'user text parts', messages: [user([{ type: 'text', text: 'a' }, { type: 'text', text: 'b', prompt_cache_breakpoint: { mode: 'explicit' } }])] },
    { name: 'an image_url part with detail', messages: [user([{ type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'low' } }])] },
    { name: 'an image_url part as a bare URL string (counted today)', messages: [user([{ type: 'image_url', image_url: 'https://example.com/a.png' }])] },
    { name: 'an input_audio part', messages: [user([{ type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }])] },
    { name: 'file parts by id and by data', messages: [user([{ type: 'file', file: { file_id: 'file-1' } }, { type: 'file', file: { file_data: 'JVBERi0=', filename: 'a.pdf' } }])] },
    { name: 'a part type OpenAI adds later', messages: [user([{ type: 'input_video', input_video: { url: 'https://example.com/v.mp4' } }])] },
    { name: 'empty content parts and an empty string', messages: [user([]), user('')] },
    { name: 'an assistant string reply', messages: [user('q'), assistant({ content: 'a', name: 'bot' })] },
    { name: 'an assistant reply re-sent from the SDK object', messages: [user('q'), assistant({ content: 'a', refusal: null, tool_calls: null, function_call: null, audio: null, annotations: [] })] },
    { name: 'an assistant refusal', messages: [user('q'), assistant({ content: null, refusal: 'I cannot help with that.' })] },
    { name: 'assistant text and refusal parts', messages: [user('q'), assistant({ content: [{ type: 'text', text: 'a' }, { type: 'refusal', refusal: 'no' }] })] },
    { name: 'assistant audio by id', messages: [user('q'), assistant({ content: null, audio: { id: 'audio_1' } })] },
    { name: 'tool calls with content null, then their results', messages: [...withCalls([call(), call({ id: 'call_2' })]), { role: 'tool', tool_call_id: 'call_1', content: 'r1' }, { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: 'r2' }] }] },
    { name: 'tool calls without content', messages: [user('q'), assistant({ tool_calls: [call()] })] },
    { name: 'a tool call without type (read as function)', messages: withCalls([{ id: 'call_1', function: { name: 'f', arguments: '{}' } }]) },
    { name: 'a tool call with empty arguments', messages: withCalls([call({ function: { name: 'f', arguments: '' } })]) },
    { name: 'arguments that are not JSON (the model may write any text)', messages: withCalls([call({ function: { name: 'f', arguments: '{"q": oops' } })]) },
    { name: 'a custom tool call', messages: withCalls([{ id: 'call_1', type: 'custom', custom: { name: 'grammar', input: 'SELECT 1' } }]) },
    { name: 'a tool call type OpenAI adds later', messages: withCalls([{ id: 'call_1', type: 'mcp', mcp: { server: 's' } }]) },
    { name: 'tool_calls: [] (the SDK says "none" so)', messages: [user('q'), assistant({ content: 'a', tool_calls: [] })] },
    { name: 'the legacy function_call and a function result', messages: [user('q'), assistant({ content: null, function_call: { name: 'f', arguments: '{}' } }), { role: 'function', name: 'f', content: 'r' }] },
    { name: 'a function result with content null', messages: [{ role: 'function', name: 'f', content: null }] },
    { name: 'null name, refusal and tool_call_id', messages: [user('hi', { name: null, refusal: null, tool_call_id: null })] },
    { name: 'fields OpenAI or a vendor adds, of any shape', messages: [user('hi', { cache_control: { type: 'ephemeral' }, x_meta: [1, { a: null }] }), assistant({ content: 'a', reasoning_content: 'hmm' })] },
  ])('$name', ({ messages }) => {
    expect(problemOf(messages)).toBeUndefined();
  });
});

describe('refused: a 400 naming the parameter', () => {
  test.each<{ name: string; messages: unknown[]; param: string; code: string }>([
    { name: 'a message that is a string', messages: ['hi'], param: 'messages[0]', code: 'invalid_type' },
    { name: 'a null message', messages: [user('a'), null], param: 'messages[1]', code: 'invalid_type' },
    { name: 'a message that is an array', messages: [[user('a')]], param: 'messages[0]', code: 'invalid_type' },
    { name: 'no role', messages: [{ content: 'hi' }], param: 'messages[0].role', code: 'missing_required_parameter' },
    { name: 'an unknown role', messages: [{ role: 'wizard', content: 'hi' }], param: 'messages[0].role', code: 'invalid_value' },
    { name: 'a role that is not a string', messages: [{ role: 1, content: 'hi' }], param: 'messages[0].role', code: 'invalid_value' },
    { name: 'content as an object', messages: [user({ text: 'hi' })], param: 'messages[0].content', code: 'invalid_type' },
    { name: 'content as a number', messages: [user('a'), assistant({ content: 'b' }), user(42)], param: 'messages[2].content', code: 'invalid_type' },
    { name: 'content as a boolean', messages: [user(false)], param: 'messages[0].content', code: 'invalid_type' },
    { name: 'a null part', messages: [user([{ type: 'text', text: 'a' }, null])], param: 'messages[0].content[1]', code: 'invalid_type' },
    { name: 'a string part', messages: [user(['hi'])], param: 'messages[0].content[0]', code: 'invalid_type' },
    { name: 'an array part', messages: [user([[{ type: 'text', text: 'a' }]])], param: 'messages[0].content[0]', code: 'invalid_type' },
    { name: 'a part without type', messages: [user([{ text: 'a' }])], param: 'messages[0].content[0].type', code: 'missing_required_parameter' },
    { name: 'a part type that is not a string', messages: [user([{ type: 1 }])], param: 'messages[0].content[0].type', code: 'invalid_type' },
    { name: 'a text part without text', messages: [user([{ type: 'text' }])], param: 'messages[0].content[0].text', code: 'missing_required_parameter' },
    { name: 'a text part whose text is an object', messages: [user([{ type: 'text', text: { value: 'a' } }])], param: 'messages[0].content[0].text', code: 'invalid_type' },
    { name: 'a refusal part without refusal', messages: [user('q'), assistant({ content: [{ type: 'refusal' }] })], param: 'messages[1].content[0].refusal', code: 'missing_required_parameter' },
    { name: 'an image_url part without image_url', messages: [user([{ type: 'image_url' }])], param: 'messages[0].content[0].image_url', code: 'missing_required_parameter' },
    { name: 'an image_url that is a number', messages: [user([{ type: 'image_url', image_url: 3 }])], param: 'messages[0].content[0].image_url', code: 'invalid_type' },
    { name: 'an image_url without url', messages: [user([{ type: 'image_url', image_url: { detail: 'low' } }])], param: 'messages[0].content[0].image_url.url', code: 'missing_required_parameter' },
    { name: 'name as a number', messages: [user('hi', { name: 5 })], param: 'messages[0].name', code: 'invalid_type' },
    { name: 'refusal as an object', messages: [user('q'), assistant({ content: null, refusal: { text: 'no' } })], param: 'messages[1].refusal', code: 'invalid_type' },
    { name: 'a tool message without tool_call_id', messages: [{ role: 'tool', content: 'r' }], param: 'messages[0].tool_call_id', code: 'missing_required_parameter' },
    { name: 'a tool message with tool_call_id null', messages: [{ role: 'tool', tool_call_id: null, content: 'r' }], param: 'messages[0].tool_call_id', code: 'invalid_type' },
    { name: 'a tool_call_id that is a number', messages: [{ role: 'tool', tool_call_id: 7, content: 'r' }], param: 'messages[0].tool_call_id', code: 'invalid_type' },
    { name: 'tool_calls as an object', messages: withCalls(call()), param: 'messages[1].tool_calls', code: 'invalid_type' },
    { name: 'tool_calls as a string', messages: withCalls('call_1'), param: 'messages[1].tool_calls', code: 'invalid_type' },
    { name: 'tool_calls: [null]', messages: withCalls([null]), param: 'messages[1].tool_calls[0]', code: 'invalid_type' },
    { name: 'a second tool call that is a string', messages: withCalls([call(), 'call_2']), param: 'messages[1].tool_calls[1]', code: 'invalid_type' },
    { name: 'a tool call without id', messages: withCalls([{ type: 'function', function: { name: 'f', arguments: '{}' } }]), param: 'messages[1].tool_calls[0].id', code: 'missing_required_parameter' },
    { name: 'a tool call id that is a number', messages: withCalls([call({ id: 1 })]), param: 'messages[1].tool_calls[0].id', code: 'invalid_type' },
    { name: 'a tool call type that is not a string', messages: withCalls([call({ type: ['function'] })]), param: 'messages[1].tool_calls[0].type', code: 'invalid_type' },
    { name: 'a tool call without function', messages: withCalls([{ id: 'call_1', type: 'function' }]), param: 'messages[1].tool_calls[0].function', code: 'missing_required_parameter' },
    { name: 'a tool call without type or function', messages: withCalls([{ id: 'call_1' }]), param: 'messages[1].tool_calls[0].function', code: 'missing_required_parameter' },
    { name: 'function: null', messages: withCalls([call({ function: null })]), param: 'messages[1].tool_calls[0].function', code: 'invalid_type' },
    { name: 'function as a string', messages: withCalls([call({ function: 'lookup' })]), param: 'messages[1].tool_calls[0].function', code: 'invalid_type' },
    { name: 'a function without name', messages: withCalls([call({ function: { arguments: '{}' } })]), param: 'messages[1].tool_calls[0].function.name', code: 'missing_required_parameter' },
    { name: 'a function without arguments', messages: withCalls([call({ function: { name: 'f' } })]), param: 'messages[1].tool_calls[0].function.arguments', code: 'missing_required_parameter' },
    { name: 'arguments as an object', messages: withCalls([call({ function: { name: 'f', arguments: { q: 1 } } })]), param: 'messages[1].tool_calls[0].function.arguments', code: 'invalid_type' },
    { name: 'arguments: null', messages: withCalls([call({ function: { name: 'f', arguments: null } })]), param: 'messages[1].tool_calls[0].function.arguments', code: 'invalid_type' },
    { name: 'a custom call without custom', messages: withCalls([{ id: 'call_1', type: 'custom' }]), param: 'messages[1].tool_calls[0].custom', code: 'missing_required_parameter' },
    { name: 'a custom call without input', messages: withCalls([{ id: 'call_1', type: 'custom', custom: { name: 'g' } }]), param: 'messages[1].tool_calls[0].custom.input', code: 'missing_required_parameter' },
    { name: 'an unknown call type with function: null (the digest reads function)', messages: withCalls([{ id: 'call_1', type: 'mcp', function: null }]), param: 'messages[1].tool_calls[0].function', code: 'invalid_type' },
    { name: 'function_call as a string', messages: [user('q'), assistant({ content: null, function_call: 'f' })], param: 'messages[1].function_call', code: 'invalid_type' },
    { name: 'function_call without arguments', messages: [user('q'), assistant({ content: null, function_call: { name: 'f' } })], param: 'messages[1].function_call.arguments', code: 'missing_required_parameter' },
  ])('$name → $param ($code)', ({ messages, param, code }) => {
    expect(problemOf(messages)).toEqual({ param, code });
  });

  test('the message reads as OpenAI words it', () => {
    expect(() => checkChatMessages([user('a'), user({})])).toThrow("Invalid type for 'messages[1].content': expected a string, an array of content parts or null, but got an object instead.");
    expect(() => checkChatMessages(withCalls([{ id: 'c', type: 'function' }]))).toThrow("Missing required parameter: 'messages[1].tool_calls[0].function'.");
  });
});
