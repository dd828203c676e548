// What the benchmark sends on the Responses API (`POST /v1/responses`): the
// chat workload's texts, as an app using that API would send them. The system
// prompt goes as `instructions` (pinned: contextd sends it every turn and never
// stores it); each turn is one new `message` input item. Direct and floor
// clients keep their own history and send it as items, in the form contextd
// sends its window upstream (docs/responses.md), so the upstream receives the
// same on every path; contextd clients send the new item and the conversation
// header. `store: false`: the app, or contextd, keeps the state, not OpenAI.

import { Buffer } from 'node:buffer';
import { API_PATHS } from './apis.js';
import { REPLY_HEADER } from './protocol.js';
import { API_KEY, MODEL, SYSTEM_PROMPT, type ApiClient, type RequestSpec, type Turn, type Workload } from './workload.js';

const RESPONSES_PATH = API_PATHS.responses;

const userItem = (text: string): Record<string, unknown> => ({ type: 'message', role: 'user', content: text });
const assistantItem = (text: string): Record<string, unknown> => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });

export class ResponsesWorkload implements ApiClient {
  readonly api = 'responses';
  /** Everything before the new item on every direct request: serialised once, as an app's own cache of its history would be. */
  readonly #directPrefix: Record<'json' | 'stream', string>;
  #directRequests = 0;

  constructor(readonly texts: Workload) {
    const history = texts.directHistory.flatMap((turn) => [userItem(turn.user), assistantItem(turn.assistant)]);
    // Drop the closing "]}" so the new item can follow.
    const prefix = (stream: boolean): string => JSON.stringify(this.#body(stream, history)).slice(0, -2);
    this.#directPrefix = { json: prefix(false), stream: prefix(true) };
  }

  startsConversation(count: number): boolean {
    return this.texts.startsConversation(count);
  }

  direct(stream: boolean): RequestSpec {
    const content = this.texts.nextUserText();
    const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    const body = this.startsConversation(this.#directRequests++)
      ? JSON.stringify(this.#body(stream, [userItem(content)]))
      : `${this.#directPrefix[stream ? 'stream' : 'json']},${JSON.stringify(userItem(content))}]}`;
    return { api: 'responses', path: RESPONSES_PATH, headers, user: content, body };
  }

  withMemory(conversation: string, stream: boolean): RequestSpec {
    return this.#withMemory(conversation, stream, this.texts.nextUserText());
  }

  setupTurn(conversation: string, turn: Turn): RequestSpec {
    const spec = this.#withMemory(conversation, false, turn.user);
    spec.headers[REPLY_HEADER] = Buffer.from(turn.assistant, 'utf8').toString('base64url');
    return spec;
  }

  #withMemory(conversation: string, stream: boolean, content: string): RequestSpec {
    return {
      api: 'responses',
      path: RESPONSES_PATH,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': conversation },
      user: content,
      body: JSON.stringify(this.#body(stream, [userItem(content)])),
    };
  }

  /** `input` last, so that a serialised body ends with its closing "]}". */
  #body(stream: boolean, input: readonly unknown[]): Record<string, unknown> {
    return { model: MODEL, instructions: SYSTEM_PROMPT, store: false, ...(stream ? { stream: true } : {}), input };
  }
}
