// A request with memory, of either API, as the request path reads it: its
// messages in the one canonical form (chat messages; the Responses API's items
// are mapped by context/response-items.ts), and how to write the body that goes
// upstream, with the assembled prompt or as the client sent it.

import { itemsWithoutChatFormTokens } from '../context/resent-run.js';
import { itemKind } from '../context/response-items.js';
import type { ChatMessage } from '../domain.js';
import { responsesUpstreamBody, type PromptLayout } from '../upstream/responses-body.js';
import { upstreamBody } from '../upstream/upstream-body.js';
import { parseChatRequest } from './parse-chat-request.js';
import { parseResponsesRequest, type ResponsesRequestBody } from './parse-responses-request.js';

/** The APIs contextd gives memory to: chat completions and the Responses API. */
export type MemoryApi = 'chat' | 'responses';

export interface MemoryRequest {
  api: MemoryApi;
  model: string | undefined;
  /** The request as chat messages, pinned instructions first. */
  messages: ChatMessage[];
  /** A chat stream's client asked for the usage chunk (its terminal event then). */
  usageRequested: boolean;
  /** Tool definitions in chat-completions shape, for counting. */
  tools: unknown;
  /** The output format (chat `response_format`, Responses `text.format`) and `tool_choice`, for counting; absent when the request has none. */
  responseFormat?: unknown;
  toolChoice?: unknown;
  /** Responses API: `previous_response_id`, the upstream's state or, on an emulating route, contextd's. */
  previousResponseId: string | undefined;
  /** Other state the upstream keeps that the request names (Responses API: `conversation`), which memory cannot work with. */
  serverState: string | undefined;
  /** Responses API: the first item_reference (`input[i]`), if any; memory takes one only as re-sent history. */
  itemReference?: string;
  /** Responses API: whether message `index` holds an item_reference (the split takes it as re-sent history). */
  isReference?(index: number): boolean;
  /** Responses API: the first item_reference among the messages from `index` on (`input[i]`), if any. */
  referenceFrom?(index: number): string | undefined;
  /** Responses API: the rough count of the items with no chat form that go upstream (context/resent-run.ts); none on chat. */
  unstoredItemTokens?(instructionCount: number, turnStart: number): number;
  /** The body upstream with the assembled prompt in place of the client's messages or input. */
  withPrompt(layout: PromptLayout): string;
  /** The body as the client sent it. */
  asSent(): string;
  /** The same request without `previous_response_id`: contextd answers it (emulation), so the upstream must not see it. */
  withoutPreviousResponseId(): MemoryRequest;
}

/** Parses and checks a body of `api` once; no later step meets a shape it does not expect. */
export function parseMemoryRequest(api: MemoryApi, body: Buffer): MemoryRequest {
  if (api === 'responses') return responsesRequest(parseResponsesRequest(body));
  const request = parseChatRequest(body);
  const chat: MemoryRequest = {
    api,
    model: request.model,
    messages: request.messages,
    usageRequested: request.usageRequested,
    tools: request.tools,
    responseFormat: request.responseFormat,
    toolChoice: request.toolChoice,
    previousResponseId: undefined,
    serverState: undefined,
    withPrompt: (layout) => upstreamBody(request.raw, layout.messages),
    asSent: () => JSON.stringify(request.raw),
    withoutPreviousResponseId: () => chat,
  };
  return chat;
}

function responsesRequest(request: ResponsesRequestBody): MemoryRequest {
  return {
    api: 'responses',
    model: request.model,
    messages: request.messages,
    usageRequested: false,
    tools: request.tools,
    responseFormat: request.responseFormat,
    toolChoice: request.toolChoice,
    previousResponseId: request.previousResponseId,
    serverState: request.serverState,
    ...(request.itemReference === undefined ? {} : referencesOf(request, request.itemReference)),
    unstoredItemTokens: (instructionCount, turnStart) => itemsWithoutChatFormTokens(request, instructionCount, turnStart),
    withPrompt: (layout) => responsesUpstreamBody(request, layout),
    asSent: () => JSON.stringify(request.raw),
    withoutPreviousResponseId: () => {
      const { previous_response_id: _answered, ...raw } = request.raw;
      return responsesRequest({ ...request, previousResponseId: undefined, raw });
    },
  };
}

/** A Responses request's item_references, as the split and the turn's check read them. */
function referencesOf(request: ResponsesRequestBody, first: string): Pick<MemoryRequest, 'itemReference' | 'isReference' | 'referenceFrom'> {
  const held = new Set(request.referenceMessages);
  const offset = request.hasInstructionsField ? 1 : 0;
  return {
    itemReference: first,
    isReference: (index) => held.has(index),
    referenceFrom: (index) => {
      const message = request.referenceMessages.find((i) => i >= index);
      if (message === undefined) return undefined;
      const { start, end } = request.sources[message - offset]!;
      for (let item = start; item < end; item++) if (itemKind(request.items[item]) === 'item_reference') return `input[${item}]`;
      return `input[${start}]`;
    },
  };
}
