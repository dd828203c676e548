// What the benchmark's processes agree on: headers the load generator sends
// through the proxies to the upstream, and the upstream's IPC answer.

/** A set-up request's scripted reply (base64url UTF-8); the proxies forward it like any other header. */
export const REPLY_HEADER = 'x-bench-reply';

/**
 * A fault the upstream plays on this request (the load bench's faults phase):
 * `reset-after=N` resets the connection after N stream events (a JSON reply after
 * half its body); `pace=MS` idles MS between writes, a slow stream to leave early.
 */
export const FAULT_HEADER = 'x-bench-fault';

/** The upstream's counters, sent over IPC when the parent asks with `{ type: 'stats' }`. */
export interface UpstreamStatsMessage {
  type: 'stats';
  /** Chat completions and Responses requests answered. */
  modelRequests: number;
  /** Request body bytes received, summed: shows that every path sends the upstream the same prompt size. */
  bodyBytes: number;
  /** Connections reset on a `reset-after` fault. */
  resets: number;
}

/** The first stdout line of each child (upstream, floor proxy): where it listens. */
export interface ListeningLine {
  url: string;
}
