// Response links in Redis (Redis alone, or the hot tier in front of MongoDB).
// Two kinds of key, on the RedisStore's prefix:
//   <prefix>rlink:<tenant>:<response id>   STRING  the link, {"c":conversation,"t":turnKey,"at":createdAtMs}
//   <prefix>{<tenant>:<conversation>}:rlinks SET   the response ids linked into the conversation, for forget
// A link key carries no hash tag: a lookup knows only the tenant and the
// response id, so links spread over a Cluster by their own names. The set
// carries the conversation's tag (keys.ts), so it sits in the conversation's
// slot. No command here names keys of two slots: a put is a SET and a MULTI on
// the set, a forget one single-key script per link.
//
// In a link key, '%', '{' and '}' are percent-escaped in both ids and ':' in
// the tenant too (as keys.ts escapes the hash tag), so the first ':' after
// `rlink:` ends the tenant, no two pairs spell one key, and no id opens a hash
// tag that would pin links to one slot.
//
// TTL: links live as long as their conversation keeps getting turns. Each put
// (one per relayed response, so one per turn on an emulating route) refreshes
// the set and every link in it to ttlMs, the conversation's own TTL, which its
// turns refresh too; a read refreshes the link it reads (GETEX, Redis >= 6.2).
// One command per link key, sent together: they live in slots of their own.
// A link read on and on with no new turn in its conversation can outlive the
// set and escape forget; the caller's check that the conversation still holds
// the turn covers that.

import type { Cluster, Redis } from 'ioredis';
import type { ConversationId, ConversationKey, TenantId } from '../../domain.js';
import type { ResponseLink, ResponseLinkStore } from '../response-links.js';
import { DEFAULT_KEY_PREFIX, hashTag, tagBase } from './keys.js';

export interface RedisResponseLinksOptions {
  /** The request path's client (main.ts owns it): Redis or Cluster. */
  client: Redis | Cluster;
  /** The conversations' TTL: a link expires this long after its conversation's newest link was made, or it was last read. */
  ttlMs: number;
  /** The RedisStore's prefix (default 'contextd:'); must not contain '{' or '}'. */
  keyPrefix?: string;
}

/**
 * Deletes a link only while it still points into the conversation (ARGV[1] is
 * the start of its value): a response id put again into another conversation
 * stays when the first one is forgotten. A prefix compare, not cjson: the
 * value is ours, written with `c` first, and compared byte for byte.
 */
const FORGET_LINK = `
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

interface LinkCommands {
  contextdForgetLink(linkKey: string, valuePrefix: string): Promise<number>;
}

/** A link as stored: short names, conversation first (FORGET_LINK relies on it). */
interface StoredLink {
  c: string;
  t: string;
  at: number;
}

export class RedisResponseLinks implements ResponseLinkStore {
  readonly #client: Redis | Cluster;
  readonly #commands: LinkCommands;
  readonly #ttlMs: number;
  readonly #prefix: string;

  constructor(options: RedisResponseLinksOptions) {
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0) throw new RangeError(`RedisResponseLinks option ttlMs must be a positive integer, got ${String(options.ttlMs)}`);
    const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (/[{}]/.test(prefix)) throw new RangeError(`RedisResponseLinks keyPrefix must not contain '{' or '}', got ${prefix}`);
    this.#client = options.client;
    this.#ttlMs = options.ttlMs;
    this.#prefix = prefix;
    // EVALSHA, falling back to EVAL on NOSCRIPT; defining it again (another instance on the client) replaces it with the same script.
    options.client.defineCommand('contextdForgetLink', { numberOfKeys: 1, lua: FORGET_LINK });
    this.#commands = options.client as unknown as LinkCommands;
  }

  async put(tenant: TenantId, responseId: string, link: ResponseLink): Promise<void> {
    const stored: StoredLink = { c: link.conversation, t: link.turnKey, at: link.createdAtMs };
    const setKey = this.#setKey({ tenant, conversation: link.conversation });
    // Two slots on a Cluster: two calls, sent together. The MULTI keeps the set from living on without a TTL.
    const [, results] = await Promise.all([
      this.#client.set(this.#linkKey(tenant, responseId), JSON.stringify(stored), 'PX', this.#ttlMs),
      this.#client.multi().sadd(setKey, responseId).pexpire(setKey, this.#ttlMs).smembers(setKey).exec(),
    ]);
    if (results === null) throw new Error('RedisResponseLinks.put: the MULTI was discarded');
    for (const [error] of results) if (error !== null) throw error;
    // The conversation has a new turn: its earlier links live on with it.
    const linked = (results[2]?.[1] ?? []) as string[];
    await Promise.all(linked.filter((id) => id !== responseId).map((id) => this.#client.pexpire(this.#linkKey(tenant, id), this.#ttlMs)));
  }

  async get(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined> {
    const value = await this.#client.getex(this.#linkKey(tenant, responseId), 'PX', this.#ttlMs);
    if (value === null) return undefined;
    const stored = JSON.parse(value) as StoredLink;
    return { conversation: stored.c as ConversationId, turnKey: stored.t, createdAtMs: stored.at };
  }

  async forget(key: ConversationKey): Promise<void> {
    const setKey = this.#setKey(key);
    const responseIds = await this.#client.smembers(setKey);
    const valuePrefix = `{"c":${JSON.stringify(key.conversation)},`;
    // One key per command: links live in slots of their own.
    await Promise.all(responseIds.map((responseId) => this.#commands.contextdForgetLink(this.#linkKey(key.tenant, responseId), valuePrefix)));
    // Last, so a forget that failed midway can be run again.
    await this.#client.del(setKey);
  }

  #linkKey(tenant: TenantId, responseId: string): string {
    return `${this.#prefix}rlink:${escapeId(tenant, /[%{}:]/g)}:${escapeId(responseId, /[%{}]/g)}`;
  }

  #setKey(key: ConversationKey): string {
    return `${tagBase(this.#prefix, hashTag(key))}:rlinks`;
  }
}

function escapeId(id: string, special: RegExp): string {
  return id.replace(special, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}
