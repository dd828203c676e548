import type { AssembledPrompt } from '../context/assemble-prompt.js';
import type { ConversationSnapshot, StoredMessage } from '../domain.js';

/** The x-contextd-* headers of a reply with memory: what the model was sent, and which stored messages and summary (the manifest). */
export function memoryHeaders(prompt: AssembledPrompt, snapshot: ConversationSnapshot, window: readonly StoredMessage[], prefixStable: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    'x-contextd-context-tokens': String(prompt.contextTokens),
    'x-contextd-history-messages': String(prompt.historyMessages),
    'x-contextd-summary': prompt.summaryUsed ? 'yes' : 'no',
    'x-contextd-cache': snapshot.cache,
  };
  if (window.length > 0) headers['x-contextd-window'] = `${window[0]!.seq}-${window.at(-1)!.seq}`;
  if (prompt.summaryUsed && snapshot.summary !== undefined) headers['x-contextd-summary-covers'] = String(snapshot.summary.coversSeq);
  headers['x-contextd-prefix-stable'] = prefixStable ? 'yes' : 'no';
  if (prompt.isOverflow) headers['x-contextd-overflow'] = 'forwarded';
  return headers;
}
