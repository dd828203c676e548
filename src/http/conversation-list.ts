import type { ServerResponse } from 'node:http';
import type { TenantId } from '../domain.js';
import { InvalidRequestError } from '../errors.js';
import type { ConversationEntry } from '../store/conversation-directory.js';
import { integerParam, type ConversationApiDeps } from './conversation-api.js';
import { sendJson } from './send-json.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;
/** Cursors the stores write are far shorter (docs/conversation-api.md); anything longer is not one. */
const MAX_CURSOR_CHARS = 512;

/**
 * GET /contextd/v1/conversations?limit=<n≤500>&after=<next_after>: the
 * tenant's conversations, newest activity first, paged by an opaque cursor
 * (the directory's). An empty `after` is the first page.
 */
export async function listConversations(res: ServerResponse, url: URL, tenant: TenantId, deps: ConversationApiDeps): Promise<void> {
  const limit = Math.min(integerParam(url, 'limit', DEFAULT_LIMIT), MAX_LIMIT);
  if (limit === 0) throw new InvalidRequestError('Query parameter limit must be at least 1.', 'limit', 'invalid_value');
  const after = url.searchParams.get('after') || undefined;
  if (after !== undefined && after.length > MAX_CURSOR_CHARS) {
    throw new InvalidRequestError('Query parameter after must be the next_after of an earlier page.', 'after', 'invalid_value');
  }
  const page = await deps.directory.list(tenant, { limit, after });
  sendJson(res, 200, {
    object: 'list',
    data: page.conversations.map(listed),
    has_more: page.next !== undefined,
    next_after: page.next ?? null,
  });
}

function listed(entry: ConversationEntry): Record<string, unknown> {
  return {
    id: entry.conversation,
    message_count: entry.messageCount,
    last_activity_at: new Date(entry.lastActivityMs).toISOString(),
    summary: entry.summary === undefined ? null : { covers_seq: entry.summary.coversSeq, tokens: entry.summary.tokens },
  };
}
