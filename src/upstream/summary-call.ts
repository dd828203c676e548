import type { Readable } from 'node:stream';
import type { SummaryRequest } from '../background/summarizer.js';
import { SummaryCallError } from '../errors.js';
import type { UpstreamClient } from './upstream-client.js';

const MAX_REPLY_BYTES = 1024 * 1024;

/** How contextd's own calls reach the upstream: OpenAI's shape, or an Azure deployment with an api-version. */
export type SummaryTarget = { kind: 'openai' } | { kind: 'azure'; apiVersion: string };

/**
 * The summary job's one chat completion: non-streaming, plain JSON (no
 * compression asked for), answered with the assistant's text. Anything else —
 * an error status, a refusal, an empty or unreadable answer — is an error the
 * summarizer retries. On Azure the model names the deployment, and a key of
 * contextd's own goes in `api-key`.
 */
export async function callForSummary(upstream: UpstreamClient, target: SummaryTarget, request: SummaryRequest): Promise<string> {
  const isAzure = target.kind === 'azure';
  const keyHeaders = request.apiKey === undefined ? request.credentialHeaders : isAzure ? { 'api-key': request.apiKey } : { authorization: `Bearer ${request.apiKey}` };
  const response = await upstream.send({
    method: 'POST',
    pathAndQuery: isAzure
      ? `/deployments/${encodeURIComponent(request.model)}/chat/completions?api-version=${encodeURIComponent(target.apiVersion)}`
      : '/chat/completions',
    headers: { ...keyHeaders, 'content-type': 'application/json', 'accept-encoding': 'identity' },
    body: JSON.stringify({ model: request.model, messages: request.messages, max_tokens: request.maxTokens }),
    signal: AbortSignal.timeout(request.timeoutMs),
  });
  const body = await readCapped(response.body);
  if (response.status < 200 || response.status >= 300) throw new SummaryCallError(`the summary call answered ${response.status}`);
  let message: { content?: unknown; refusal?: unknown } | undefined;
  try {
    message = (JSON.parse(body) as { choices?: { message?: { content?: unknown; refusal?: unknown } }[] }).choices?.[0]?.message;
  } catch {
    throw new SummaryCallError('the summary call answered with invalid JSON');
  }
  if (typeof message?.refusal === 'string' && message.refusal !== '') throw new SummaryCallError('the summary call was refused');
  if (typeof message?.content !== 'string' || message.content.trim() === '') throw new SummaryCallError('the summary call answered no text');
  return message.content;
}

async function readCapped(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REPLY_BYTES) {
      body.destroy();
      throw new SummaryCallError('the summary call answered more than 1 MiB');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
