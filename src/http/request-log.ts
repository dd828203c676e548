/** What one request did, gathered along the path and logged as one line when it ends. */
export interface RequestLog {
  requestId: string;
  kind: 'memory' | 'passthrough' | 'websocket' | 'ops' | 'unmatched';
  route?: string;
  conversation?: string;
  contextTokens?: number;
  historyMessages?: number;
  summary?: boolean;
  cache?: string;
  overflow?: 'forwarded' | 'rejected';
  stored?: 'queued' | 'retry' | 'not_stored' | 'dropped';
  notStoredReason?: string;
  /** Stored messages after the summary that did not fit the window (not yet covered by a summary). */
  droppedMessages?: number;
  droppedTokens?: number;
  storeDegraded?: boolean;
  addedMs?: number;
  upstreamMs?: number;
  upstreamStatus?: number;
  clientAborted?: boolean;
  /** Why a request that asked for memory got none (x-contextd-memory). */
  memory?: 'unsupported' | 'bypassed' | 'unavailable';
}
