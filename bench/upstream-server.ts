// The benchmark's upstream, in its own process so that its CPU is not the load
// generator's or the proxy's. Prints {"url": ...} on its first stdout line.
//
// It answers chat completions and the Responses API as OpenAI does (the bodies
// and events: chat-reply.ts, responses-reply.ts), with a reply of about 300
// tokens of prose (`--reply-tokens`), one of a fixed pool chosen by the last
// user message, so a reply can be checked against what its request should get;
// both APIs send the same replies. Streams send one token per SSE event
// (deltas cut at o200k_base token boundaries, as OpenAI's are), each write on
// its own turn of the event loop (`--events-per-write`, default 1), so a proxy
// meets the reply in the pieces a real one arrives in. It never tokenizes a
// request: its cost per request does not grow with the prompt beyond parsing
// the JSON.
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
import { chatCompletionEvents, chatCompletionJson, lastChatUserText } from './chat-reply.js';
import { DEFAULT_REPLY_TOKENS, replyIndex, replyTexts } from './replies.js';
import { FAULT_HEADER, REPLY_HEADER, type ListeningLine, type UpstreamStatsMessage } from './protocol.js';
import { lastResponsesUserText, responsesEcho, responsesEvents, responsesJson } from './responses-reply.js';
import { replyOf, type Reply, type ReplyMeta } from './upstream-reply.js';

const { values: flags } = parseArgs({
  options: {
    'reply-tokens': { type: 'string', default: String(DEFAULT_REPLY_TOKENS) },
    'events-per-write': { type: 'string', default: '1' },
  },
});
const REPLY_TOKENS = Number(flags['reply-tokens']);
const EVENTS_PER_WRITE = Math.max(1, Number(flags['events-per-write']));

let modelRequests = 0;
let bodyBytes = 0;
let resets = 0;
let sequence = 0;

interface Fault {
  resetAfter?: number;
  paceMs?: number;
}

function parseFault(value: string | string[] | undefined): Fault {
  if (typeof value !== 'string') return {};
  const [name, arg] = value.split('=');
  if (name === 'reset-after') return { resetAfter: Number(arg) };
  if (name === 'pace') return { paceMs: Number(arg) };
  return {};
}

/** Which API a request speaks, by its path; undefined for anything else. */
function apiOf(req: IncomingMessage): 'chat' | 'responses' | undefined {
  if (req.method !== 'POST') return undefined;
  const path = (req.url ?? '').split('?')[0]!;
  if (path.endsWith('/chat/completions')) return 'chat';
  if (path.endsWith('/responses')) return 'responses';
  return undefined;
}

async function answer(req: IncomingMessage, res: ServerResponse, pool: readonly Reply[]): Promise<void> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  const raw = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const api = apiOf(req);
  if (api === undefined) {
    res.writeHead(req.url?.startsWith('/v1/models') ? 200 : 404, { 'content-type': 'application/json' }).end('{"object":"list","data":[]}');
    return;
  }
  modelRequests += 1;
  bodyBytes += raw.length;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  } catch {
    res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"We could not parse the JSON body of your request.","type":"invalid_request_error","param":null,"code":null}}');
    return;
  }
  const scripted = req.headers[REPLY_HEADER];
  const userText = api === 'chat' ? lastChatUserText(body) : lastResponsesUserText(body);
  const reply = typeof scripted === 'string' ? replyOf(Buffer.from(scripted, 'base64url').toString('utf8')) : pool[replyIndex(userText)]!;
  const fault = parseFault(req.headers[FAULT_HEADER]);
  sequence += 1;
  const meta: ReplyMeta = {
    id: api === 'chat' ? `chatcmpl-bench-${sequence}` : `resp_bench${sequence}`,
    createdSeconds: Math.floor(Date.now() / 1000),
    model: JSON.stringify(typeof body.model === 'string' ? body.model : 'gpt-4o-mini'),
    promptTokens: Math.max(1, Math.ceil(raw.length / 4)),
  };
  const headers = { 'x-request-id': `req_${sequence}`, 'openai-version': '2020-10-01', 'openai-processing-ms': '1' };

  if (body.stream !== true) {
    const json = Buffer.from(api === 'chat' ? chatCompletionJson(reply, meta) : responsesJson(reply, meta, responsesEcho(body)));
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

  const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
  const events = api === 'chat' ? chatCompletionEvents(reply, meta, streamOptions?.include_usage === true) : responsesEvents(reply, meta, responsesEcho(body));
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
  res.flushHeaders();
  await writeEvents(req, res, events, fault);
}

/** The events, `EVENTS_PER_WRITE` to a write, each write on a turn of its own (or after the fault's pace), so they leave in separate segments. */
async function writeEvents(req: IncomingMessage, res: ServerResponse, events: readonly string[], fault: Fault): Promise<void> {
  let closed = false;
  res.once('close', () => (closed = true));
  for (let at = 0; at < events.length; at += EVENTS_PER_WRITE) {
    if (fault.resetAfter !== undefined && at >= fault.resetAfter) {
      resets += 1;
      req.socket.resetAndDestroy();
      return;
    }
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
    const stats: UpstreamStatsMessage = { type: 'stats', modelRequests, bodyBytes, resets };
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
