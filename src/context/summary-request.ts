import type { ChatMessage, ContentPart, StoredMessage, Summary } from '../domain.js';

// What the summary call sends and how its answer is cut to size. Pure.

/** The messages of the summary call: the route's prompt, then the previous summary and the messages to fold in. */
export function summaryRequestMessages(prompt: string, previous: Summary | undefined, messages: readonly StoredMessage[]): ChatMessage[] {
  const transcript = messages.map((m) => renderMessage(m.message)).join('\n');
  return [
    { role: 'system', content: prompt },
    {
      role: 'user',
      content: `Previous summary:\n${previous?.text ?? '(none)'}\n\nMessages to fold into it, oldest first:\n${transcript}`,
    },
  ];
}

function renderMessage(message: ChatMessage): string {
  const who = message.name !== undefined ? `${message.role} (${message.name})` : message.role;
  const parts: string[] = [];
  const text = contentText(message.content);
  if (text !== '') parts.push(text);
  if (typeof message.refusal === 'string' && message.refusal !== '') parts.push(`(refused: ${message.refusal})`);
  for (const call of message.tool_calls ?? []) parts.push(`(called ${call.function?.name ?? call.type}(${call.function?.arguments ?? ''}) as ${call.id})`);
  if (message.role === 'tool' && message.tool_call_id !== undefined) return `[tool result for ${message.tool_call_id}] ${parts.join(' ')}`;
  return `[${who}] ${parts.join(' ')}`;
}

function contentText(content: ChatMessage['content']): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content.map((part: ContentPart) => (typeof part.text === 'string' ? part.text : `[${part.type}]`)).join(' ');
}

/**
 * The longest prefix of `text` that fits `maxTokens` (by binary search over
 * its length; a cut never leaves half a surrogate pair).
 */
export function cutToTokens(text: string, maxTokens: number, countText: (text: string) => number): string {
  if (maxTokens <= 0) return '';
  if (countText(text) <= maxTokens) return text;
  let low = 0;
  let high = text.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (countText(text.slice(0, mid)) <= maxTokens) low = mid;
    else high = mid - 1;
  }
  let end = low;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return text.slice(0, end);
}

/**
 * Which of the messages before the window to fold: all of them, unless the
 * list was cut short (a cap on one job's work), in which case the fold stops
 * before an unfinished tool exchange so the summary never splits one.
 */
export function foldableMessages(messages: readonly StoredMessage[], isCutShort: boolean): StoredMessage[] {
  if (!isCutShort) return [...messages];
  let end = messages.length;
  while (end > 0) {
    const last = messages[end - 1]!.message;
    const next = messages[end]?.message;
    const callsTools = last.role === 'assistant' && (last.tool_calls?.length ?? 0) > 0;
    if (callsTools || last.role === 'tool' || next?.role === 'tool') end--;
    else break;
  }
  return messages.slice(0, end);
}
