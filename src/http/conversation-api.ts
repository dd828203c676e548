import type { ResponseLinkBook } from '../background/response-link-book.js';
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConversationId, TenantId, TenantMode } from '../domain.js';
import { AdminOnlyError, InvalidConversationIdError, InvalidRequestError, NotFoundError } from '../errors.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { conversationKey, parseConversationId, resolveTenant } from './conversation-identity.js';
import { sendJson } from './send-json.js';

export interface ConversationApiDeps {
  store: ConversationStore;
  /** Links of relayed responses into a conversation go with it. */
  links: Pick<ResponseLinkBook, 'forget'>;
  tenantMode: TenantMode;
  adminToken: string | undefined;
}

const PREFIX = '/contextd/v1/conversations/';
const MAX_PAGE = 500;

/** True when the path belongs to the conversation API. */
export function isConversationApiPath(path: string): boolean {
  return path.startsWith(PREFIX);
}

/**
 * Self-service conversation API: a caller authenticates as on /v1/ and sees
 * only its own tenant's conversations (another tenant's id is simply not
 * found). The admin token reaches any tenant, named by `?tenant=`.
 */
export async function handleConversationApi(req: IncomingMessage, res: ServerResponse, url: URL, deps: ConversationApiDeps): Promise<void> {
  const [rawId, sub, ...rest] = url.pathname.slice(PREFIX.length).split('/');
  if (rawId === undefined || rest.length > 0) throw new NotFoundError(`${req.method} ${url.pathname}`);
  const conversation = parseConversationId({ id: decodedOrUndefined(rawId) }, 'id') as ConversationId | undefined;
  if (conversation === undefined) throw new InvalidConversationIdError('conversation id');
  const key = conversationKey(tenantOf(req, url, deps), conversation);

  if (sub === 'messages' && req.method === 'GET') {
    const afterSeq = integerParam(url, 'after', 0);
    const limit = Math.min(integerParam(url, 'limit', 100), MAX_PAGE);
    const [page, head, state] = await Promise.all([
      deps.store.listMessages(key, { afterSeq, limit: limit + 1 }),
      afterSeq === 0 ? undefined : deps.store.listMessages(key, { afterSeq: 0, limit: 1 }),
      deps.store.load(key, { maxMessages: 0, maxTokens: 0 }),
    ]);
    const data = page.slice(0, limit).map((m) => ({ seq: m.seq, message: m.message, tokens: m.tokens, created_at: new Date(m.createdAtMs).toISOString() }));
    if (afterSeq === 0 && data.length === 0 && state.summary === undefined) throw new NotFoundError(`Conversation ${conversation}`);
    // What this store no longer holds (folded into the summary and dropped, trimmed, expired) is said, not silently missing.
    const firstRetainedSeq = (head ?? page)[0]?.seq ?? null;
    sendJson(res, 200, {
      object: 'list',
      data,
      has_more: page.length > limit,
      next_after: data.at(-1)?.seq ?? afterSeq,
      first_retained_seq: firstRetainedSeq,
      last_seq: state.lastSeq,
      earlier_not_retained: firstRetainedSeq === null ? state.lastSeq > 0 : firstRetainedSeq > 1,
      summary:
        state.summary === undefined
          ? null
          : { covers_seq: state.summary.coversSeq, tokens: state.summary.tokens, text: state.summary.text, created_at: new Date(state.summary.createdAtMs).toISOString() },
    });
    return;
  }
  if (sub === undefined && req.method === 'DELETE') {
    await deps.store.delete(key);
    await deps.links.forget(key);
    sendJson(res, 200, { id: conversation, object: 'conversation.deleted', deleted: true });
    return;
  }
  throw new NotFoundError(`${req.method} ${url.pathname}`);
}

function tenantOf(req: IncomingMessage, url: URL, deps: ConversationApiDeps): TenantId {
  if (isAdmin(req, deps.adminToken)) {
    const tenant = url.searchParams.get('tenant');
    if (deps.tenantMode.kind === 'none') return 'default' as TenantId;
    if (tenant === null || !/^[A-Za-z0-9._-]{1,128}$/.test(tenant)) {
      throw new InvalidRequestError('With the admin token, name the tenant: ?tenant=<tenant id as stored>.', 'tenant', 'missing_tenant');
    }
    return tenant as TenantId;
  }
  if (deps.tenantMode.kind === 'none') throw new AdminOnlyError();
  return resolveTenant(req.headers, deps.tenantMode);
}

function isAdmin(req: IncomingMessage, adminToken: string | undefined): boolean {
  if (adminToken === undefined || adminToken === '') return false;
  const presented = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '');
  const a = Buffer.from(presented);
  const b = Buffer.from(adminToken);
  return a.length === b.length && timingSafeEqual(a, b);
}

function integerParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new InvalidRequestError(`Query parameter ${name} must be a non-negative integer.`, name, 'invalid_value');
  return value;
}

/** The path segment percent-decoded, or undefined when its encoding is malformed (`%E0%A4%A`): then not a valid id. */
function decodedOrUndefined(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
