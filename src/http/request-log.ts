/** What one request did, gathered along the path; logged as one line, and turned into metrics, when it ends (record-request.ts). */
export interface RequestLog {
  requestId: string;
  kind: 'memory' | 'passthrough' | 'websocket' | 'ops' | 'unmatched';
  /** On the memory path: the API the request spoke. */
  api?: 'chat' | 'responses';
  route?: string;
  conversation?: string;
  /** previous_response_id named an older response: the conversation this request's branch was copied from. */
  branchedFrom?: string;
  contextTokens?: number;
  /** The upstream's usage.prompt_tokens for the prompt contextd sent (input_tokens on the Responses API). */
  promptTokensReported?: number;
  historyMessages?: number;
  summary?: boolean;
  /** The manifest: the stored messages sent (`<first seq>-<last seq>`), and the seq the summary sent covers. */
  window?: string;
  summaryCovers?: number;
  cache?: string;
  overflow?: 'forwarded' | 'rejected';
  stored?: 'queued' | 'retry' | 'not_stored' | 'dropped';
  notStoredReason?: string;
  /** Stored messages after the summary that did not fit the window (not yet covered by a summary). */
  droppedMessages?: number;
  droppedTokens?: number;
  /** The turn offered the conversation to the summarizer (its job logs a "summary job" line with the outcome, unless one was already running). */
  summaryOffered?: boolean;
  storeDegraded?: boolean;
  /** Request received → request sent upstream (exact; rounded in the log line). */
  addedMs?: number;
  /** Request sent → upstream response head. */
  upstreamMs?: number;
  upstreamStatus?: number;
  clientAborted?: boolean;
  /** Why a request that asked for memory got none (x-contextd-memory). */
  memory?: 'unsupported' | 'bypassed' | 'unavailable';
  /** contextd_memory_skipped_total's reason, when memory was skipped for a reason it counts. */
  memorySkipped?: 'unsupported_path' | 'invalid_tool_sequence' | 'unsendable_history';
}
