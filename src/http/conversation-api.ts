import type { ResponseLinkBook } from '../background/response-link-book.js';
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConversationId, ConversationKey, TenantId, TenantMode } from '../domain.js';
import { AdminOnlyError, InvalidConversationIdError, InvalidRequestError, NotFoundError } from '../errors.js';
import type { ConversationDirectory } from '../store/conversation-directory.js';
import type { ConversationStore } from '../store/conversation-store.js';
import type { MemoryPathDeps } from './with-memory.js';
import { conversationKey, parseConversationId, resolveTenant } from './conversation-identity.js';
import { showContext } from './conversation-context.js';
import { eraseConversation, eraseMessage, type ErasureDeps } from './conversation-erase.js';
import { listConversations } from './conversation-list.js';
import { sendJson } from './send-json.js';

export interface ConversationApiDeps {
  store: ConversationStore;
  /** Links of relayed responses into a conversation go with it. */
  links: Pick<ResponseLinkBook, 'forget'>;
  /** GET /contextd/v1/conversations. */
  directory: ConversationDirectory;
  tenantMode: TenantMode;
  adminToken: string | undefined;
  /** The request path's parts, for the context a request would be sent with (routes, windows, counting). */
  memory: MemoryPathDeps;
  /** What an erasure waits for: this instance's unstored turns, a summary job under way. */
  erasure: ErasureDeps;
}

const ROOT = '/contextd/v1/conversations';
const PREFIX = `${ROOT}/`;
const MAX_PAGE = 500;

/** True when the path belongs to the conversation API. */
export function isConversationApiPath(path: string): boolean {
  return path === ROOT || path.startsWith(PREFIX);
}

/**
 * Self-service conversation API: a caller authenticates as on /v1/ and sees
 * only its own tenant's conversations (another tenant's id is simply not
 * found). The admin token reaches any tenant, named by `?tenant=`.
 *
 *   GET    /contextd/v1/conversations                    the tenant's conversations (conversation-list.ts)
 *   GET    /contextd/v1/conversations/:id/messages       stored messages, paged
 *   GET    /contextd/v1/conversations/:id/context        what would be sent now (conversation-context.ts)
 *   POST   /contextd/v1/conversations/:id/context        a dry run of a request (conversation-context.ts)
 *   DELETE /contextd/v1/conversations/:id                erase it, with a receipt (conversation-erase.ts)
 *   DELETE /contextd/v1/conversations/:id/messages/:seq  erase one message and its tool exchange (conversation-erase.ts)
 */
export async function handleConversationApi(req: IncomingMessage, res: ServerResponse, url: URL, deps: ConversationApiDeps): Promise<void> {
  const notFound = (): NotFoundError => new NotFoundError(`${req.method} ${url.pathname}`);
  if (url.pathname === ROOT || url.pathname === PREFIX) {
    if (req.method !== 'GET') throw notFound();
    await listConversations(res, url, tenantOf(req, url, deps), deps);
    return;
  }
  const [rawId, sub, seqText, ...rest] = url.pathname.slice(PREFIX.length).split('/');
  if (rawId === undefined || rest.length > 0) throw notFound();
  const conversation = parseConversationId({ id: decodedOrUndefined(rawId) }, 'id') as ConversationId | undefined;
  if (conversation === undefined) throw new InvalidConversationIdError('conversation id');
  const key = conversationKey(tenantOf(req, url, deps), conversation);

  if (sub === 'messages' && seqText === undefined && req.method === 'GET') return listMessages(res, url, key, deps);
  if (sub === 'messages' && seqText !== undefined && req.method === 'DELETE') return eraseMessage(req, res, url, key, seqText, deps);
  if (sub === 'context' && seqText === undefined && (req.method === 'GET' || req.method === 'POST')) return showContext(req, res, url, key, deps);
  if (sub === undefined && req.method === 'DELETE') return eraseConversation(res, key, deps);
  throw notFound();
}

async function listMessages(res: ServerResponse, url: URL, key: ConversationKey, deps: ConversationApiDeps): Promise<void> {
  const afterSeq = integerParam(url, 'after', 0);
  const limit = Math.min(integerParam(url, 'limit', 100), MAX_PAGE);
  const [page, head, state] = await Promise.all([
    deps.store.listMessages(key, { afterSeq, limit: limit + 1 }),
    afterSeq === 0 ? undefined : deps.store.listMessages(key, { afterSeq: 0, limit: 1 }),
    deps.store.load(key, { maxMessages: 0, maxTokens: 0 }),
  ]);
  const data = page.slice(0, limit).map((m) => ({ seq: m.seq, message: m.message, tokens: m.tokens, created_at: new Date(m.createdAtMs).toISOString() }));
  if (afterSeq === 0 && data.length === 0 && state.summary === undefined) throw new NotFoundError(`Conversation ${key.conversation}`);
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

export function isAdmin(req: IncomingMessage, adminToken: string | undefined): boolean {
  if (adminToken === undefined || adminToken === '') return false;
  const presented = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '');
  const a = Buffer.from(presented);
  const b = Buffer.from(adminToken);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function integerParam(url: URL, name: string, fallback: number): number {
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
