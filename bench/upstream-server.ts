// The benchmark's upstream, in its own process so that its CPU is not the load
// generator's or the proxy's. Prints {"url": ...} on its first stdout line.
//
// It answers chat completions as OpenAI does, with a reply of about 300 tokens
// of prose (`--reply-tokens`), one of a fixed pool chosen by the last user
// message, so a reply can be checked against what its request should get.
// Streams send one token per SSE event (content deltas cut at o200k_base token
// boundaries, as OpenAI's are), each write on its own turn of the event loop
// (`--events-per-write`, default 1), so a proxy meets the reply in the pieces
// a real one arrives in. It never tokenizes a request: its cost per request
// does not grow with the prompt beyond parsing the JSON.
//
// Per request, from headers the proxies forward like any other:
//   x-bench-reply   a scripted reply (base64url UTF-8), for set-up turns;
//   x-bench-fault   `reset-after=N`: the connection is reset (RST) after N
//                   events (a JSON reply: after half its body);
//                   `pace=MS`: MS of idle between writes (a slow stream that
//                   a client can leave in the middle of).
// The parent asks for counters over IPC ({ type: 'stats' }).

import { Buffer } from 'node:buffer';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { decode, encode } from 'gpt-tokenizer/encoding/o200k_base';
import { DEFAULT_REPLY_TOKENS, replyIndex, replyTexts } from './replies.js';
import { FAULT_HEADER, REPLY_HEADER, type ListeningLine, type UpstreamStatsMessage } from './protocol.js';

const { values: flags } = parseArgs({
  options: {
    'reply-tokens': { type: 'string', default: String(DEFAULT_REPLY_TOKENS) },
    'events-per-write': { type: 'string', default: '1' },
  },
});
const REPLY_TOKENS = Number(flags['reply-tokens']);
const EVENTS_PER_WRITE = Math.max(1, Number(flags['events-per-write']));
const FINGERPRINT = 'fp_bench_upstream';

interface Reply {
  text: string;
  /** JSON string literals of the streamed deltas, one o200k_base token each. */
  pieces: readonly string[];
  completionTokens: number;
}

function replyOf(text: string): Reply {
  const tokens = encode(text);
  let pieces = tokens.map((token) => decode([token]));
  // Prose is ASCII, so tokens decode one by one; should one not, send words instead.
  if (pieces.join('') !== text) pieces = text.match(/\s*\S+/g) ?? [text];
  return { text, pieces: pieces.map((piece) => JSON.stringify(piece)), completionTokens: tokens.length };
}

let chatRequests = 0;
let bodyBytes = 0;
let resets = 0;
let sequence = 0;

function lastUserText(body: { messages?: unknown }): string {
  const messages = Array.isArray(body.messages) ? (body.messages as { role?: unknown; content?: unknown }[]) : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role !== 'user') continue;
    return typeof message.content === 'string' ? message.content : JSON.stringify(message.content ?? '');
  }
  return '';
}

function parseFault(value: string | string[] | undefined): { resetAfter?: number; paceMs?: number } {
  if (typeof value !== 'string') return {};
  const [name, arg] = value.split('=');
  if (name === 'reset-after') return { resetAfter: Number(arg) };
  if (name === 'pace') return { paceMs: Number(arg) };
  return {};
}

function usageJson(promptTokens: number, completionTokens: number): string {
  return `{"prompt_tokens":${promptTokens},"completion_tokens":${completionTokens},"total_tokens":${promptTokens + completionTokens},"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`;
}

async function answer(req: IncomingMessage, res: ServerResponse, pool: readonly Reply[]): Promise<void> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  const raw = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  if (req.method !== 'POST' || !(req.url ?? '').split('?')[0]!.endsWith('/chat/completions')) {
    res.writeHead(req.url?.startsWith('/v1/models') ? 200 : 404, { 'content-type': 'application/json' }).end('{"object":"list","data":[]}');
    return;
  }
  chatRequests += 1;
  bodyBytes += raw.length;
  let body: { model?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown }; messages?: unknown };
  try {
    body = JSON.parse(raw.toString('utf8')) as typeof body;
  } catch {
    res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"We could not parse the JSON body of your request.","type":"invalid_request_error","param":null,"code":null}}');
    return;
  }
  const scripted = req.headers[REPLY_HEADER];
  const reply = typeof scripted === 'string' ? replyOf(Buffer.from(scripted, 'base64url').toString('utf8')) : pool[replyIndex(lastUserText(body))]!;
  const fault = parseFault(req.headers[FAULT_HEADER]);
  const id = `chatcmpl-bench-${++sequence}`;
  const created = Math.floor(Date.now() / 1000);
  const model = JSON.stringify(typeof body.model === 'string' ? body.model : 'gpt-4o-mini');
  const promptTokens = Math.max(1, Math.ceil(raw.length / 4));
  const headers = { 'x-request-id': `req_${sequence}`, 'openai-version': '2020-10-01', 'openai-processing-ms': '1' };

  if (body.stream !== true) {
    const json = Buffer.from(
      `{"id":"${id}","object":"chat.completion","created":${created},"model":${model},"choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(reply.text)},"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":${usageJson(promptTokens, reply.completionTokens)},"service_tier":"default","system_fingerprint":"${FINGERPRINT}"}`,
    );
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length, ...headers });
    if (fault.resetAfter === undefined) {
      res.end(json);
      return;
    }
    res.write(json.subarray(0, json.length >> 1));
    await nextTurn();
    resets += 1;
    req.socket.resetAndDestroy();
    return;
  }

  const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${model},"service_tier":"default","system_fingerprint":"${FINGERPRINT}","choices":`;
  const events = [`${head}[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}\n\n`];
  for (const piece of reply.pieces) events.push(`${head}[{"index":0,"delta":{"content":${piece}},"logprobs":null,"finish_reason":null}]}\n\n`);
  events.push(`${head}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n`);
  if (body.stream_options?.include_usage === true) events.push(`${head}[],"usage":${usageJson(promptTokens, reply.completionTokens)}}\n\n`);
  events.push('data: [DONE]\n\n');

  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
  res.flushHeaders();
  let closed = false;
  res.once('close', () => (closed = true));
  for (let at = 0; at < events.length; at += EVENTS_PER_WRITE) {
    if (fault.resetAfter !== undefined && at >= fault.resetAfter) {
      resets += 1;
      req.socket.resetAndDestroy();
      return;
    }
    // Each write on a turn of its own (or after the pace), so the events leave in separate segments.
    if (fault.paceMs !== undefined && at > 0) await delay(fault.paceMs);
    else await nextTurn();
    if (closed) return;
    const chunk = EVENTS_PER_WRITE === 1 ? events[at]! : events.slice(at, at + EVENTS_PER_WRITE).join('');
    if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
  }
  res.end();
}

async function serve(): Promise<void> {
  const pool = replyTexts(REPLY_TOKENS).map(replyOf);
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, noDelay: true }, (req, res) => {
    answer(req, res, pool).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  process.on('message', (message: unknown) => {
    if ((message as { type?: unknown }).type !== 'stats') return;
    const stats: UpstreamStatsMessage = { type: 'stats', chatRequests, bodyBytes, resets };
    process.send?.(stats);
  });
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  // The parent died or closed the channel: never outlive it.
  process.once('disconnect', stop);
  const listening: ListeningLine = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` };
  process.stdout.write(JSON.stringify(listening) + '\n');
}

serve().catch((error: unknown) => {
  console.error('bench upstream failed', error);
  process.exit(1);
});
