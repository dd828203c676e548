// Every error class contextd defines lives here, in two groups:
//
// - Errors that reach clients: ContextdError and its subclasses. Each carries
//   its HTTP status and a stable OpenAI-style `code`; src/http/send-error.ts is
//   the only place that turns one into a response (OpenAI's error shape), and
//   README.md's "Errors" table lists every code (test/error-table.test.ts).
// - Internal errors (plain Error subclasses): signals between contextd's own
//   modules, never sent to a client as such (send-error.ts answers anything
//   that is not a ContextdError with a bare 500 `internal_error`).
//
// This module imports nothing from src (test/architecture.test.ts).

// ---- Errors that reach clients ----

export type OpenAIErrorType = 'invalid_request_error' | 'server_error' | 'api_error' | 'timeout_error';

export abstract class ContextdError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  readonly type: OpenAIErrorType = 'invalid_request_error';
  readonly param: string | null = null;
}

export class InvalidJsonError extends ContextdError {
  readonly status = 400;
  readonly code = 'invalid_json';
  constructor(detail: string) {
    super(`We could not parse the JSON body of your request: ${detail}`);
  }
}

export class BodyTooLargeError extends ContextdError {
  readonly status = 413;
  readonly code = 'request_too_large';
  constructor(limitBytes: number) {
    super(`Request body is larger than the ${limitBytes} bytes this route accepts (server.body_limit).`);
  }
}

export class RequestTimeoutError extends ContextdError {
  readonly status = 408;
  readonly code = 'request_timeout';
  override readonly type = 'timeout_error' as const;
  constructor() {
    super('contextd did not receive the whole request in time (server.header_timeout, server.request_timeout).');
  }
}

export class RequestHeadersTooLargeError extends ContextdError {
  readonly status = 431;
  readonly code = 'request_headers_too_large';
  constructor(limitBytes: number) {
    super(`Request headers are larger than the ${limitBytes} bytes contextd accepts.`);
  }
}

export class InvalidRequestError extends ContextdError {
  readonly status = 400;
  readonly code: string;
  override readonly param: string | null;
  constructor(message: string, param: string | null, code = 'invalid_request') {
    super(message);
    this.param = param;
    this.code = code;
  }
}

export class InvalidConversationIdError extends ContextdError {
  readonly status = 400;
  readonly code = 'invalid_conversation_id';
  constructor(header: string) {
    super(`Header ${header} must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'.`);
  }
}

export class ContextLengthExceededError extends ContextdError {
  readonly status = 400;
  readonly code = 'context_length_exceeded';
  override readonly param = 'messages';
  constructor(neededTokens: number, budgetTokens: number, route: string) {
    super(
      `The instructions and new messages alone take ${neededTokens} tokens, over the ${budgetTokens}-token budget of route "${route}" (on_overflow: reject).`,
    );
  }
}

export class ConversationStateConflictError extends ContextdError {
  readonly status = 400;
  readonly code = 'conversation_state_conflict';
  override readonly param: string;
  /** `param` names the field (previous_response_id, conversation) or the item (input[3], an item_reference). */
  constructor(param: string, conversationHeader: string) {
    super(
      param.startsWith('input[')
        ? `${param} is an item_reference in the new turn, an item only the upstream's own store holds; with ${conversationHeader} (contextd's memory) send the items themselves (the AI SDK: providerOptions.openai.store = false). In re-sent history, before the new turn, contextd's stored copy takes its place.`
        : `This request names '${param}' (state the upstream keeps) and ${conversationHeader} (contextd's memory): the history would be sent twice. Send one of them.`,
    );
    this.param = param;
  }
}

/** An emulating route's `previous_response_id` names a response of another conversation than the header does. */
export class PreviousResponseConflictError extends ContextdError {
  readonly status = 400;
  readonly code = 'conversation_state_conflict';
  override readonly param = 'previous_response_id';
  constructor(responseId: string, conversationHeader: string) {
    super(`previous_response_id '${responseId}' belongs to another conversation than ${conversationHeader} names. Send one of them, or both naming the same conversation.`);
  }
}

/** An emulating route was asked to continue a response it never relayed to this tenant, or whose conversation is gone: OpenAI's own answer. */
export class PreviousResponseNotFoundError extends ContextdError {
  readonly status = 404;
  readonly code = 'previous_response_not_found';
  override readonly param = 'previous_response_id';
  constructor(responseId: string) {
    super(`Previous response with id '${responseId}' not found.`);
  }
}

export class UpstreamUnreachableError extends ContextdError {
  readonly status = 502;
  readonly code = 'upstream_unreachable';
  override readonly type = 'api_error' as const;
  constructor(cause: unknown) {
    super('contextd could not reach the upstream API.', { cause });
  }
}

export class UpstreamInterruptedError extends ContextdError {
  readonly status = 502;
  readonly code = 'upstream_interrupted';
  override readonly type = 'api_error' as const;
  constructor(cause: unknown) {
    super('The upstream API broke off its reply.', { cause });
  }
}

export class UpstreamTimeoutError extends ContextdError {
  readonly status = 504;
  readonly code = 'upstream_timeout';
  override readonly type = 'timeout_error' as const;
  constructor(timeoutMs: number) {
    super(`The upstream API did not answer within ${timeoutMs} ms (upstream.timeout).`);
  }
}

export class StoreUnavailableError extends ContextdError {
  readonly status = 503;
  readonly code = 'contextd_store_unavailable';
  override readonly type = 'server_error' as const;
  constructor(cause: unknown) {
    super('The conversation store did not answer.', { cause });
  }
}

export class NotFoundError extends ContextdError {
  readonly status = 404;
  readonly code = 'not_found';
  constructor(what: string) {
    super(`${what} not found.`);
  }
}

export class AdminOnlyError extends ContextdError {
  readonly status = 401;
  readonly code = 'admin_token_required';
  constructor() {
    super('With conversation.tenant: none the conversation API answers only to the admin token.');
  }
}

// ---- Internal errors: never sent to a client ----

/** Cache mode: Redis does not hold the conversation; seed it from MongoDB with warm() and append again. */
export class ColdConversationError extends Error {
  constructor(key: { readonly tenant: string; readonly conversation: string }) {
    super(`Redis does not hold conversation ${key.conversation} of tenant ${key.tenant}`);
    this.name = 'ColdConversationError';
  }
}

/** A store tier call outlived its deadline (src/store/store-health.ts callTier). `tier` is a TierName. */
export class StoreTimeoutError extends Error {
  constructor(tier: string, operation: string, timeoutMs: number) {
    super(`${tier} ${operation} took longer than ${timeoutMs} ms`);
  }
}

/** The summary job's call failed: an error status, a refusal, an empty or unreadable answer (src/upstream/summary-call.ts). */
export class SummaryCallError extends Error {}

/** The config file is invalid or unreadable: contextd does not start, and says every problem at once. */
export class ConfigError extends Error {
  /** One line per problem, each naming the file and the path. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
