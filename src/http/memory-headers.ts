import type { AssembledPrompt } from '../context/assemble-prompt.js';
import type { ConversationSnapshot } from '../domain.js';

/** The x-contextd-* headers of a reply with memory: what the model was sent. */
export function memoryHeaders(prompt: AssembledPrompt, snapshot: ConversationSnapshot): Record<string, string> {
  const headers: Record<string, string> = {
    'x-contextd-context-tokens': String(prompt.contextTokens),
    'x-contextd-history-messages': String(prompt.historyMessages),
    'x-contextd-summary': prompt.summaryUsed ? 'yes' : 'no',
    'x-contextd-cache': snapshot.cache,
  };
  if (prompt.isOverflow) headers['x-contextd-overflow'] = 'forwarded';
  return headers;
}
