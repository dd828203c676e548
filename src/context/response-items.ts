// The Responses API's items and chat messages, the one form contextd stores
// (docs/responses.md): a conversation begun on either API continues on the
// other. The mapping is one rule, used for what clients send, for what the
// model answers and for what contextd sends back, so that an item a client
// re-sends is recognised by the same digest as the message stored for it:
// - a `message` item is a message of its role; text parts become text (one
//   text is a string), `input_image` an `image_url` part, `input_file` a
//   `file` part, a `refusal` part the message's `refusal`;
// - a run of assistant-side items (assistant `message`s, `function_call`s)
//   is one assistant message: its text and refusal (text written after a call
//   included: chat puts a message's text before its calls), and one tool call
//   per `function_call` (`call_id` is the call's id);
// - a `function_call_output` is a `tool` message answering `call_id`;
// - an `item_reference` (an earlier item, by the id the upstream gave it) joins
//   the assistant run it stands in: the message is marked as holding one, and
//   only re-sent history may (contextd's stored copy goes in its place).
// Other items (`reasoning`, hosted tools' calls) have no chat form: they go
// upstream in the turn they came in and are not stored.

import type { ChatMessage, ChatRole, ContentPart, ToolCall } from '../domain.js';

type Json = Record<string, unknown>;

/** A message made from the items at [start, end) of the list it came from (items without a chat form inside the range included). */
export interface ItemMessage {
  message: ChatMessage;
  start: number;
  end: number;
  /** The message holds an item_reference: what it stands for only the upstream's store knows. */
  isReference?: true;
}

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** What kind of item this is: a message (typed or "easy"), a function call or its output, or one with no chat form. */
export function itemKind(item: unknown): 'message' | 'function_call' | 'function_call_output' | 'item_reference' | 'other' {
  if (!isRecord(item)) return 'other';
  const type = item.type;
  if (type === 'function_call' || type === 'function_call_output' || type === 'item_reference') return type;
  if (type === 'message' || (type === undefined && typeof item.role === 'string')) return 'message';
  return 'other';
}

/**
 * The items as chat messages, each with the range of items it came from. An
 * item with no chat form belongs to the range of the message after it (or
 * before it, at the end), so that slicing by ranges keeps it in its place.
 */
export function itemsToMessages(items: readonly unknown[]): ItemMessage[] {
  const out: ItemMessage[] = [];
  let pendingStart: number | undefined;
  let assistant: { message: ChatMessage; texts: string[]; parts: ContentPart[]; start: number; end: number; isReference?: true } | undefined;
  const flushAssistant = (): void => {
    if (assistant === undefined) return;
    const { message, texts, parts } = assistant;
    message.content = parts.length > 0 ? [...texts.map((text) => ({ type: 'text', text })), ...parts] : texts.length === 0 ? null : texts.length === 1 ? texts[0]! : texts.map((text) => ({ type: 'text', text }));
    out.push({ message, start: assistant.start, end: assistant.end, ...(assistant.isReference ? { isReference: true as const } : {}) });
    assistant = undefined;
  };
  const openAssistant = (index: number): NonNullable<typeof assistant> => {
    assistant ??= { message: { role: 'assistant', content: null }, texts: [], parts: [], start: pendingStart ?? index, end: index + 1 };
    pendingStart = undefined;
    assistant.end = index + 1;
    return assistant;
  };

  items.forEach((item, index) => {
    const kind = itemKind(item);
    if (kind === 'other') {
      if (assistant !== undefined) assistant.end = index + 1;
      else pendingStart ??= index;
      return;
    }
    const record = item as Json;
    if (kind === 'item_reference') {
      // Clients reference what the model made (the AI SDK, with store on, its earlier replies).
      openAssistant(index).isReference = true;
      return;
    }
    if (kind === 'function_call') {
      const run = openAssistant(index);
      const call: ToolCall = { id: String(record.call_id), type: 'function', function: { name: String(record.name), arguments: String(record.arguments) } };
      (run.message.tool_calls ??= []).push(call);
      return;
    }
    if (kind === 'message' && record.role === 'assistant') {
      // Text after the run's calls joins the run's text: an assistant message with calls
      // must be followed by their results on chat (and a second assistant message there
      // would leave them unanswered), so one message keeps both APIs' tool rules.
      addAssistantContent(openAssistant(index), record.content);
      return;
    }
    flushAssistant();
    const start = pendingStart ?? index;
    pendingStart = undefined;
    if (kind === 'function_call_output') {
      out.push({ message: { role: 'tool', tool_call_id: String(record.call_id), content: outputText(record.output) }, start, end: index + 1 });
      return;
    }
    out.push({ message: { role: record.role as ChatRole, content: inputContent(record.content) }, start, end: index + 1 });
  });
  flushAssistant();
  // Items with no chat form at the end go with the last message.
  const last = out.at(-1);
  if (pendingStart !== undefined && last !== undefined) last.end = items.length;
  return out;
}

function addAssistantContent(run: { message: ChatMessage; texts: string[]; parts: ContentPart[] }, content: unknown): void {
  if (typeof content === 'string') {
    if (content !== '') run.texts.push(content);
    return;
  }
  if (!Array.isArray(content)) return;
  for (const part of content) {
    if (!isRecord(part)) continue;
    if ((part.type === 'output_text' || part.type === 'input_text' || part.type === 'text') && typeof part.text === 'string') run.texts.push(part.text);
    else if (part.type === 'refusal' && typeof part.refusal === 'string') run.message.refusal = (run.message.refusal ?? '') + part.refusal;
    else run.parts.push(part as ContentPart);
  }
}

/** A user, system or developer message's content: a string, or parts in chat's shape (unknown parts kept as they are). */
function inputContent(content: unknown): ChatMessage['content'] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  return content.map((part): ContentPart => {
    if (!isRecord(part)) return part as ContentPart;
    if ((part.type === 'input_text' || part.type === 'output_text') && typeof part.text === 'string') return { type: 'text', text: part.text };
    if (part.type === 'input_image') {
      const url = typeof part.image_url === 'string' ? part.image_url : typeof part.file_id === 'string' ? `file-id:${part.file_id}` : '';
      return { type: 'image_url', image_url: { url, ...(typeof part.detail === 'string' ? { detail: part.detail } : {}) } };
    }
    if (part.type === 'input_file') {
      const { type: _type, ...file } = part;
      return { type: 'file', file };
    }
    return part as ContentPart;
  });
}

/** A function call's output: a string, or its text parts joined (an output of other parts is kept as JSON). */
function outputText(output: unknown): string {
  if (typeof output === 'string') return output;
  if (Array.isArray(output) && output.every((part) => isRecord(part) && typeof part.text === 'string')) return output.map((part) => (part as { text: string }).text).join('');
  return JSON.stringify(output ?? '');
}

/** Chat messages as Responses input items (history contextd sends; the reverse of itemsToMessages). */
export function messagesToItems(messages: readonly ChatMessage[]): Json[] {
  const items: Json[] = [];
  for (const message of messages) {
    if (message.role === 'tool') {
      items.push({ type: 'function_call_output', call_id: message.tool_call_id ?? '', output: textOf(message.content) });
      continue;
    }
    if (message.role === 'assistant') {
      const content: Json[] = [];
      for (const text of textsOf(message.content)) content.push({ type: 'output_text', text });
      if (typeof message.refusal === 'string' && message.refusal !== '') content.push({ type: 'refusal', refusal: message.refusal });
      if (content.length > 0) items.push({ type: 'message', role: 'assistant', content });
      for (const call of message.tool_calls ?? []) {
        items.push({ type: 'function_call', call_id: call.id, name: call.function?.name ?? '', arguments: call.function?.arguments ?? '' });
      }
      continue;
    }
    items.push({ type: 'message', role: message.role === 'function' ? 'user' : message.role, content: inputParts(message.content) });
  }
  return items;
}

function textsOf(content: ChatMessage['content']): string[] {
  if (typeof content === 'string') return content === '' ? [] : [content];
  if (!Array.isArray(content)) return [];
  return content.flatMap((part) => (part?.type === 'text' && typeof part.text === 'string' ? [part.text] : []));
}

function textOf(content: ChatMessage['content']): string {
  return textsOf(content).join('');
}

function inputParts(content: ChatMessage['content']): string | Json[] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part): Json => {
    if (part?.type === 'text') return { type: 'input_text', text: part.text ?? '' };
    if (part?.type === 'image_url' && part.image_url !== undefined) {
      const { url, detail } = part.image_url;
      const image: Json = url.startsWith('file-id:') ? { type: 'input_image', file_id: url.slice('file-id:'.length) } : { type: 'input_image', image_url: url };
      image.detail = detail ?? 'auto';
      return image;
    }
    if (part?.type === 'file' && isRecord(part.file)) return { type: 'input_file', ...part.file };
    return part as Json;
  });
}
