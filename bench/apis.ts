// The APIs the bench speaks, to contextd, the floor and its upstream alike:
// chat completions and the Responses API. Where each is posted, how its paths
// are named in the tables, and how the load generator tells a whole reply
// from a cut one.

export const APIS = ['chat', 'responses'] as const;
export type Api = (typeof APIS)[number];

export const API_PATHS: Readonly<Record<Api, string>> = { chat: '/v1/chat/completions', responses: '/v1/responses' };

/** For headings and notes. */
export const API_TITLES: Readonly<Record<Api, string>> = { chat: 'chat completions', responses: 'the Responses API' };

/** For table rows. */
export const API_LABELS: Readonly<Record<Api, string>> = { chat: 'chat', responses: 'Responses' };

/**
 * What a path's name starts with in the tables. Chat's paths keep the names
 * they had before the Responses API was measured, so that results stay comparable.
 */
export const PATH_PREFIXES: Readonly<Record<Api, string>> = { chat: '', responses: 'Responses: ' };

/** `--apis`: a comma-separated list, the first one the main API (every path and variant; the others get direct, floor and short). */
export function parseApis(value: string): Api[] {
  const names = value.split(',').map((name) => name.trim()).filter((name) => name !== '');
  const unknown = names.filter((name) => !(APIS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0) throw new Error(`--apis takes a comma-separated list of ${APIS.join(', ')}, got ${value}`);
  return [...new Set(names as Api[])];
}

const CHAT_DONE = 'data: [DONE]\n\n';
const RESPONSES_COMPLETED = 'event: response.completed\n';

/**
 * Whether a 200's body is a whole, successful reply. Checked on every measured
 * request, so it is cheap, and a fast error never passes for a fast answer:
 * a chat stream ends with `[DONE]`, a Responses stream's last event is
 * `response.completed` (it has no `[DONE]`); a JSON reply says it stopped or
 * completed.
 */
export function isWholeReply(api: Api, stream: boolean, text: string): boolean {
  if (api === 'chat') return stream ? text.endsWith(CHAT_DONE) : text.includes('"finish_reason":"stop"');
  if (!stream) return text.startsWith('{"id":"resp_') && text.includes('"status":"completed"');
  // Events are separated by a blank line; the last one starts after the last separator.
  return text.endsWith('\n\n') && text.startsWith(RESPONSES_COMPLETED, text.lastIndexOf('\n\nevent: ', text.length - 3) + 2);
}
