// contextd's own errors. Each carries its HTTP status and a stable OpenAI-style
// `code`; src/http/send-error.ts is the only place that turns one into a response.

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
