// The fake upstream of bench/prefix-cache.ts, on loopback, in the bench's own
// process (nothing here is timed). For each chat completion of a conversation
// (the x-bench-conversation header the client sends, which contextd forwards)
// it tokenizes the prompt as the model sees it, takes the longest common prefix
// with the conversation's previous request, and records what a prefix cache
// could have served; its `usage` says the same (prompt_tokens,
// prompt_tokens_details.cached_tokens), as OpenAI's does. It answers with a
// reply of about 150 tokens (bench/replies.ts's pool, chosen by the user
// message), and contextd's own summary calls (model SUMMARY_MODEL) with a
// summary of fixed size whose text changes with every call, as a model's does.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chatCompletionJson, lastChatUserText } from './chat-reply.js';
import { prose } from './prose.js';
import { cacheableTokens, commonPrefixTokens, firstChangedMessage, PromptTokenizer, REPLY_PRIMING_TOKENS, type PromptMessage } from './prompt-prefix.js';
import { replyIndex, replyTexts } from './replies.js';
import { replyOf, type Reply } from './upstream-reply.js';

export const CONVERSATION_HEADER = 'x-bench-conversation';
export const SUMMARY_MODEL = 'bench-summarizer';

/** Where this request's prompt first differs from the previous one's: nowhere (it only appended), or in which part. */
export type PrefixChange = 'first request' | 'appended' | 'instructions' | 'summary' | 'window start';

export interface PrefixRecord {
  promptTokens: number;
  messages: number;
  commonPrefixTokens: number;
  cacheableTokens: number;
  change: PrefixChange;
  /** The body besides `messages` (model, max_tokens …) differs from the previous request's. */
  isOtherBodyChanged: boolean;
}

interface Previous {
  tokens: number[];
  messageJsons: string[];
  otherBody: string;
}

export interface PrefixUpstream {
  /** OpenAI-style base URL, for contextd's config. */
  baseUrl: string;
  /** Every request of a conversation so far, in arrival order. */
  records(conversation: string): readonly PrefixRecord[];
  /** contextd's summary calls answered so far, and requests of any kind being answered now. */
  activity(): { summaryCallsAnswered: number; requestsInFlight: number };
  stop(): Promise<void>;
}

export interface PrefixUpstreamOptions {
  replyTokens: number;
  summaryTokens: number;
}

/** Which part of the prompt the first changed message is: the client's instructions, contextd's summary (a system message after them), or the history. */
function changeOf(index: number, previous: readonly string[], next: readonly unknown[]): PrefixChange {
  if (index === 0) return 'instructions';
  const isSystem = (message: unknown): boolean => (message as PromptMessage | undefined)?.role === 'system';
  const before = previous[index];
  return isSystem(next[index]) || (before !== undefined && isSystem(JSON.parse(before))) ? 'summary' : 'window start';
}

export async function startPrefixUpstream(options: PrefixUpstreamOptions): Promise<PrefixUpstream> {
  const replies = replyTexts(options.replyTokens).map(replyOf);
  const tokenizer = new PromptTokenizer();
  const previous = new Map<string, Previous>();
  const records = new Map<string, PrefixRecord[]>();
  const activity = { summaryCallsAnswered: 0, requestsInFlight: 0 };
  let sequence = 0;

  const observe = (conversation: string, body: Record<string, unknown>): PrefixRecord => {
    const messages = body.messages as PromptMessage[];
    const tokens = tokenizer.tokens(messages);
    const messageJsons = messages.map((m) => JSON.stringify(m));
    const { messages: _messages, ...rest } = body;
    const otherBody = JSON.stringify(rest);
    const before = previous.get(conversation);
    const promptTokens = tokens.length + REPLY_PRIMING_TOKENS;
    const prefix = before === undefined ? 0 : commonPrefixTokens(before.tokens, tokens);
    const changed = before === undefined ? undefined : firstChangedMessage(before.messageJsons, messageJsons);
    const record: PrefixRecord = {
      promptTokens,
      messages: messages.length,
      commonPrefixTokens: prefix,
      cacheableTokens: cacheableTokens(prefix, promptTokens),
      change: before === undefined ? 'first request' : changed === undefined ? 'appended' : changeOf(changed, before.messageJsons, messages),
      isOtherBodyChanged: before !== undefined && before.otherBody !== otherBody,
    };
    previous.set(conversation, { tokens, messageJsons, otherBody });
    const list = records.get(conversation) ?? [];
    list.push(record);
    records.set(conversation, list);
    return record;
  };

  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    if (req.method !== 'POST' || !(req.url ?? '').endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}');
      return;
    }
    const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
    sequence += 1;
    const meta = { id: `chatcmpl-prefix-${sequence}`, createdSeconds: Math.floor(Date.now() / 1000), model: JSON.stringify(body.model ?? 'gpt-4o-mini') };
    let json: string;
    if (body.model === SUMMARY_MODEL) {
      const text = prose(700_000 + sequence, Math.round(options.summaryTokens * 4.4));
      json = chatCompletionJson(replyOf(text), { ...meta, promptTokens: 1 });
      activity.summaryCallsAnswered += 1;
    } else {
      const conversation = String(req.headers[CONVERSATION_HEADER] ?? '');
      const record = observe(conversation, body);
      const reply: Reply = replies[replyIndex(lastChatUserText(body))]!;
      // OpenAI's usage, with the cache hit this prompt would have had.
      json = chatCompletionJson(reply, { ...meta, promptTokens: record.promptTokens }).replace('"cached_tokens":0', `"cached_tokens":${record.cacheableTokens}`);
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json);
  };

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    // Counted from the head on: a summary call is in flight before its body is read.
    activity.requestsInFlight += 1;
    answer(req, res)
      .catch((error: unknown) => {
        console.error('prefix-cache upstream:', error);
        res.destroy();
      })
      .finally(() => (activity.requestsInFlight -= 1));
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    records: (conversation) => records.get(conversation) ?? [],
    activity: () => ({ ...activity }),
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
