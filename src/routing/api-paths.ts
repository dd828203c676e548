// Which API a request path names, and where it goes upstream. Pure.
//
// Clients reach contextd under two prefixes:
// - `/v1/…`, the OpenAI shape (and `AzureOpenAI` given `base_url=<contextd>/v1`,
//   which sends `/v1/deployments/{deployment}/chat/completions`);
// - `/openai/…`, Azure's shape (`AzureOpenAI` given `azure_endpoint=<contextd>`:
//   `/openai/deployments/{deployment}/chat/completions?api-version=…`, or Azure's
//   v1 API, `/openai/v1/chat/completions`).

/** How the upstream lays out its paths; the config's `upstream.kind` takes these values. */
export const UPSTREAM_KINDS = ['openai', 'azure'] as const;
export type UpstreamKind = (typeof UPSTREAM_KINDS)[number];

export interface ChatCompletionsPath {
  /** The Azure deployment named in the path; it stands for the model. */
  deployment: string | undefined;
}

const DEPLOYMENT_CHAT = /^\/(?:v1|openai)\/deployments\/([^/]+)\/chat\/completions$/;
const PLAIN_CHAT = new Set(['/v1/chat/completions', '/openai/v1/chat/completions']);

/** The chat-completions API in any of its paths (query string excluded), else undefined. */
export function matchChatCompletions(path: string): ChatCompletionsPath | undefined {
  if (PLAIN_CHAT.has(path)) return { deployment: undefined };
  const deployment = DEPLOYMENT_CHAT.exec(path)?.[1];
  if (deployment === undefined) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(deployment);
  } catch {
    return undefined;
  }
  return name === '' ? undefined : { deployment: name };
}

const RESPONSES = new Set(['/v1/responses', '/openai/v1/responses', '/openai/responses']);

/** The Responses API's create path, `POST /v1/responses` (and Azure's `/openai/responses`, `/openai/v1/responses`), query string excluded. */
export function isResponsesCreate(path: string): boolean {
  return RESPONSES.has(path);
}

/**
 * Where a request path (query included) goes, relative to `upstream.base_url`,
 * or undefined for a path contextd does not proxy.
 * - openai (base_url with its version prefix): `/v1/<rest>` and `/openai/<rest>` go to `<base_url>/<rest>`.
 * - azure (base_url is `https://<resource>.openai.azure.com/openai`): `/openai/<rest>` and
 *   `/v1/deployments/<rest>` go to `<base_url>/…` unchanged; any other `/v1/<rest>` goes to
 *   Azure's v1 API, `<base_url>/v1/<rest>`.
 */
export function upstreamPathFor(kind: UpstreamKind, pathAndQuery: string): string | undefined {
  if (pathAndQuery.startsWith('/openai/')) return pathAndQuery.slice('/openai'.length);
  if (!pathAndQuery.startsWith('/v1/')) return undefined;
  if (kind === 'azure' && !pathAndQuery.startsWith('/v1/deployments/')) return pathAndQuery;
  return pathAndQuery.slice('/v1'.length);
}
