// The load bench's clients: each one a user in a conversation of its own,
// sending one turn at a time and reading every reply to the end, streaming
// or not. Every turn sent to contextd goes into a ledger with how it ended and
// when it was sent and answered, so the stores can be checked against what
// the clients were acknowledged, and in what order.

import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Dispatcher, Pool } from 'undici';
import { seededRandom } from '../test/support/seeded-random.js';
import { FAULT_HEADER } from './protocol.js';
import { replyIndex } from './replies.js';
import type { RequestSpec, Workload } from './workload.js';

/**
 * How a turn ended for its client. `acked`: it read the whole reply (the
 * terminal event, or every byte of the JSON), so the turn must be stored.
 * `cut`: the upstream reset the connection mid-reply (injected). `left`: the
 * client went away mid-stream (injected). `failed`: anything else, an error.
 */
export type TurnOutcome = 'acked' | 'cut' | 'left' | 'failed';

/**
 * The clock of the ledger's times, and of any moment compared with them (the
 * load bench's Redis outage starts): milliseconds since the epoch, but
 * monotonic (performance's), so a wall-clock step cannot reorder two events.
 */
export function ledgerClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface TurnRecord {
  user: string;
  outcome: TurnOutcome;
  stream: boolean;
  /** For `failed`, and for an injected fault that did not end as planned. */
  detail?: string;
  /** contextd's x-contextd-memory answer header (e.g. `unavailable`: no store answered, the turn went without memory and is not stored). */
  memory?: string;
  /** When the client sent the request (ledgerClockMs). */
  sentAtMs: number;
  /** For `acked`: when the client had the whole answer, its last byte read (ledgerClockMs). */
  answeredAtMs?: number;
}

/** Every turn sent to contextd, by conversation, in the order each conversation's client sent them. */
export type Ledger = Map<string, TurnRecord[]>;

/** A fault for one request: the upstream resets after `resetAfter` events, or streams slowly and the client leaves after `leaveAfter`. */
export type InjectedFault = { kind: 'reset'; resetAfter: number } | { kind: 'leave'; leaveAfter: number; paceMs: number };

export interface PathSamples {
  /** Non-streaming requests: call to last byte. */
  jsonMs: number[];
  /** Streaming requests: call to the first body byte (the first SSE event), and to the last. */
  streamFirstByteMs: number[];
  streamMs: number[];
  /** Requests that ended in an error the run did not inject, with the first few messages. */
  errors: number;
  errorExamples: string[];
  /** Requests whose injected fault played out as planned (the client saw the cut, or left). */
  injected: { reset: number; leave: number };
  completed: number;
}

export function emptySamples(): PathSamples {
  return { jsonMs: [], streamFirstByteMs: [], streamMs: [], errors: 0, errorExamples: [], injected: { reset: 0, leave: 0 }, completed: 0 };
}

export interface ClientOptions {
  workload: Workload;
  /** The reply pool the fake upstream answers from (replyTexts()). */
  replies: readonly string[];
  /** Share of requests with stream: true. */
  streamShare: number;
  /** After each turn, the chance that the client's next turn starts a new conversation. */
  newShare: number;
  /** Check every `verifyEvery`-th streamed reply's text against the expected reply (the terminal event is checked on all). */
  verifyEvery: number;
}

export interface Outcome {
  outcome: TurnOutcome;
  detail?: string;
  /** The x-contextd-memory header of the answer, when there was one. */
  memory?: string;
  /** For `acked`: when the whole answer was read (ledgerClockMs). */
  answeredAtMs?: number;
}

const DONE = 'data: [DONE]\n\n';
const CONTENT = /"delta":\{"content":("(?:[^"\\]|\\.)*")\}/g;

/** The text of a streamed reply: its content deltas, joined. */
function streamedText(sse: string): string {
  let text = '';
  for (const match of sse.matchAll(CONTENT)) text += JSON.parse(match[1]!) as string;
  return text;
}

function countEvents(text: string): number {
  let count = 0;
  for (let at = text.indexOf('data: '); at >= 0; at = text.indexOf('data: ', at + 6)) count++;
  return count;
}

/**
 * Sends one request and reads its reply whole (or leaves it as `fault` says),
 * checking that a reply that claims to be whole is the one expected.
 */
export async function sendTurn(
  pool: Pool,
  spec: RequestSpec,
  stream: boolean,
  expected: string,
  options: { verify: boolean; fault?: InjectedFault; samples: PathSamples },
): Promise<Outcome> {
  const { fault, samples } = options;
  const headers = fault === undefined ? spec.headers : { ...spec.headers, [FAULT_HEADER]: fault.kind === 'reset' ? `reset-after=${fault.resetAfter}` : `pace=${fault.paceMs}` };
  const startedAt = performance.now();
  let firstByteAt = 0;
  let text = '';
  let response: Dispatcher.ResponseData | undefined;
  try {
    response = await pool.request({ path: spec.path, method: 'POST', headers, body: spec.body });
    response.body.setEncoding('utf8');
    for await (const chunk of response.body as AsyncIterable<string>) {
      if (firstByteAt === 0) firstByteAt = performance.now();
      text += chunk;
      if (fault?.kind === 'leave' && countEvents(text) >= fault.leaveAfter) {
        response.body.destroy();
        samples.injected.leave += 1;
        return { outcome: 'left' };
      }
    }
  } catch (error) {
    if (fault?.kind === 'reset') {
      samples.injected.reset += 1;
      return { outcome: 'cut' };
    }
    return failed(samples, `${spec.headers['x-conversation-id'] ?? 'direct'}: ${(error as Error).message}`);
  }
  const endedAt = performance.now();
  const memoryHeader = response.headers['x-contextd-memory'];
  const memory = typeof memoryHeader === 'string' ? { memory: memoryHeader } : {};
  const isWhole = stream ? text.endsWith(DONE) : text.includes('"finish_reason":"stop"');
  if (response.statusCode !== 200 || !isWhole) {
    if (fault?.kind === 'reset') {
      samples.injected.reset += 1;
      return { outcome: 'cut' };
    }
    return failed(samples, `${spec.headers['x-conversation-id'] ?? 'direct'}: status ${response.statusCode}, ${isWhole ? 'whole' : 'incomplete'} reply: ${text.slice(0, 200)}`);
  }
  if (options.verify || !stream) {
    const got = stream ? streamedText(text) : ((JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]?.message.content ?? '');
    if (got !== expected) return failed(samples, `${spec.headers['x-conversation-id'] ?? 'direct'}: reply is not the one expected (${got.length} of ${expected.length} characters)`);
  }
  const answeredAtMs = performance.timeOrigin + endedAt; // ledgerClockMs() at the last byte
  if (fault !== undefined) return { outcome: 'acked', detail: `injected ${fault.kind} did not happen: the client got the whole reply`, ...memory, answeredAtMs };
  samples.completed += 1;
  if (stream) {
    samples.streamFirstByteMs.push((firstByteAt || endedAt) - startedAt);
    samples.streamMs.push(endedAt - startedAt);
  } else {
    samples.jsonMs.push(endedAt - startedAt);
  }
  return { outcome: 'acked', ...memory, answeredAtMs };
}

function failed(samples: PathSamples, detail: string): Outcome {
  samples.errors += 1;
  if (samples.errorExamples.length < 5) samples.errorExamples.push(detail);
  return { outcome: 'failed', detail };
}

/** A user of contextd: one conversation at a time, one turn at a time; starts a new conversation now and then. */
export class ConversationClient {
  readonly #random: () => number;
  #conversation: string;
  #started = 0;
  #sent = 0;

  constructor(
    readonly index: number,
    readonly prefix: string,
    readonly options: ClientOptions,
    readonly ledger: Ledger,
  ) {
    this.#random = seededRandom(7_919 * (index + 1));
    this.#conversation = this.#newId();
  }

  #newId(): string {
    return `${this.prefix}-c${this.index}-${this.#started++}`;
  }

  /** Sends the next turn of its conversation; records it in the ledger. */
  async turn(pool: Pool, samples: PathSamples, fault?: (stream: boolean) => InjectedFault | undefined): Promise<void> {
    const stream = this.#random() < this.options.streamShare;
    const spec = this.options.workload.withMemory(this.#conversation, stream);
    const user = spec.user!;
    const expected = this.options.replies[replyIndex(user)]!;
    const injected = fault?.(stream);
    const verify = this.#sent++ % this.options.verifyEvery === 0;
    // Taken just before sendTurn starts the request: never later than the send, so the order check
    // counts a turn as made after a Redis outage began only if it surely was.
    const record: TurnRecord = { user, outcome: 'failed', stream, sentAtMs: ledgerClockMs() };
    let turns = this.ledger.get(this.#conversation);
    if (turns === undefined) this.ledger.set(this.#conversation, (turns = []));
    turns.push(record);
    const { outcome, detail, memory, answeredAtMs } = await sendTurn(pool, spec, stream, expected, { verify, samples, ...(injected === undefined ? {} : { fault: injected }) });
    record.outcome = outcome;
    if (detail !== undefined) record.detail = detail;
    if (memory !== undefined) record.memory = memory;
    if (answeredAtMs !== undefined) record.answeredAtMs = answeredAtMs;
    if (this.#random() < this.options.newShare) this.#conversation = this.#newId();
  }
}

/** A client without contextd: it sends its history itself (none when it starts a conversation: the workload's newEvery). */
export async function directTurn(pool: Pool, options: ClientOptions, samples: PathSamples, random: () => number, verify: boolean): Promise<void> {
  const stream = random() < options.streamShare;
  const spec = options.workload.direct(stream);
  await sendTurn(pool, spec, stream, options.replies[replyIndex(spec.user!)]!, { verify, samples });
}

/**
 * Runs `requests` turns over `workers` workers (worker i is client i), each
 * sending its next turn when the last one ended; with `intervalMs`, each waits
 * for its next slot instead (a paced load: workers × 1000 / intervalMs req/s).
 */
export async function drive(
  workers: number,
  requests: number,
  turn: (worker: number) => Promise<void>,
  options: { intervalMs?: number; until?: () => boolean; onProgress?: (done: number) => void } = {},
): Promise<{ wallMs: number; sent: number }> {
  let issued = 0;
  let done = 0;
  const startedAt = performance.now();
  const worker = async (id: number): Promise<void> => {
    // Paced workers start spread over one interval, so the load is even from the first second.
    let nextAt = startedAt + (options.intervalMs === undefined ? 0 : (options.intervalMs * id) / workers);
    while (issued < requests && options.until?.() !== true) {
      if (options.intervalMs !== undefined) {
        const wait = nextAt - performance.now();
        if (wait > 0) await delay(wait);
        nextAt += options.intervalMs;
        if (options.until?.() === true) break;
      }
      issued += 1;
      await turn(id);
      done += 1;
      options.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, id) => worker(id)));
  return { wallMs: performance.now() - startedAt, sent: issued };
}
