import { hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { ConversationId, ConversationKey, TenantId, TenantMode } from '../domain.js';
import { InvalidConversationIdError, InvalidRequestError } from '../errors.js';
import { firstHeader } from './request-headers.js';

const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;
// No ':' in a tenant, so `<tenant>:<conversation>` can only be read one way.
const VALID_TENANT = /^[A-Za-z0-9._-]{1,128}$/;

/** The conversation id of a request, `undefined` when it asks for no memory; the only maker of ConversationId. */
export function parseConversationId(headers: IncomingHttpHeaders, header: string): ConversationId | undefined {
  const value = firstHeader(headers, header);
  if (value === undefined) return undefined;
  if (!VALID_ID.test(value)) throw new InvalidConversationIdError(header);
  return value as ConversationId;
}

/**
 * The tenant a request belongs to. With `authorization`, a digest of the API key
 * (Authorization bearer token, or Azure's api-key header): one key can never
 * name another's conversations, and the key itself is never stored.
 */
export function resolveTenant(headers: IncomingHttpHeaders, mode: TenantMode): TenantId {
  switch (mode.kind) {
    case 'none':
      return 'default' as TenantId;
    case 'header': {
      const value = firstHeader(headers, mode.header);
      if (value === undefined || !VALID_TENANT.test(value)) {
        throw new InvalidRequestError(`Header ${mode.header} must name the tenant (1-128 characters of A-Z, a-z, 0-9, '.', '_', '-').`, null, 'invalid_tenant');
      }
      return `t.${value}` as TenantId;
    }
    case 'authorization': {
      const authorization = firstHeader(headers, 'authorization');
      const credential = authorization?.replace(/^Bearer\s+/i, '') ?? firstHeader(headers, 'api-key');
      if (credential === undefined || credential === '') return 'anonymous' as TenantId;
      return `k.${hash('sha256', credential, 'base64url').slice(0, 22)}` as TenantId;
    }
  }
}

export function conversationKey(tenant: TenantId, conversation: ConversationId): ConversationKey {
  return { tenant, conversation };
}
