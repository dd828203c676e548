// Redis alone: the listing of a tenant's conversations. Redis keeps no index
// of them (one would be a write on every append and a key that never
// expires), so a listing SCANs the tenant's meta keys (MATCH on the tenant's
// part of the hash tag, COUNT 1000; on every master of a Cluster), reads each
// meta hash, and sorts: O(keyspace) per call, every page. It lists what Redis
// still holds: a conversation is gone once its keys expire (storage.redis.ttl
// after its last use).
//
// Per conversation: lastSeq (the message count), coversSeq and activeAt, the
// time of the last append, which the APPEND script sets (lua-turns.ts). A
// meta hash written before activeAt existed takes its newest message's
// createdAtMs instead (0 when none is left). The summary's size is read for
// the page's entries only, since the summary is stored whole, text and all.

import type { Cluster, Redis } from 'ioredis';
import type { TenantId } from '../../domain.js';
import type { ConversationDirectory, ConversationEntry, ConversationPage } from '../conversation-directory.js';
import { decodeCursor, isAfter, pageFrom, byActivity } from '../directory-order.js';
import { decodeEntry } from './entry-codec.js';
import { DEFAULT_KEY_PREFIX, isCluster, metaKeyTag, parseHashTag, tenantMetaKeyPattern } from './keys.js';

const SCAN_COUNT = 1_000;

export interface RedisDirectoryOptions {
  /** The store's client (Redis or Cluster). */
  client: Redis | Cluster;
  /** The store's key prefix; default 'contextd:'. */
  keyPrefix?: string;
}

export class RedisDirectory implements ConversationDirectory {
  readonly #client: Redis | Cluster;
  readonly #prefix: string;

  constructor(options: RedisDirectoryOptions) {
    this.#client = options.client;
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  }

  async list(tenant: TenantId, page: { limit: number; after: string | undefined }): Promise<ConversationPage> {
    // A cursor that does not parse is refused before the keyspace is scanned.
    const position = page.after === undefined ? undefined : decodeCursor(page.after);
    const client = this.#client;
    const nodes = isCluster(client) ? client.nodes('master') : [client];
    const found = new Map<string, Found>();
    await Promise.all(
      nodes.map(async (node) => {
        for (const each of await this.#scanNode(node, tenant)) found.set(each.entry.conversation, each);
      }),
    );
    const ordered = [...found.values()]
      .map((each) => each.entry)
      .filter((entry) => position === undefined || isAfter(entry, position))
      .sort(byActivity);
    const listed = pageFrom(ordered, page.limit);
    await this.#readSummaryTokens(listed.conversations.map((entry) => found.get(entry.conversation)!));
    return listed;
  }

  /** The tenant's conversations on one node (a standalone Redis, or one master). */
  async #scanNode(node: Redis, tenant: TenantId): Promise<Found[]> {
    const pattern = tenantMetaKeyPattern(this.#prefix, tenant);
    const found: Found[] = [];
    let cursor = '0';
    do {
      const [next, metaKeys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (metaKeys.length > 0) found.push(...(await this.#readMeta(node, tenant, metaKeys)));
    } while (cursor !== '0');
    return found;
  }

  /**
   * One pipeline of HMGETs for a SCAN batch, on the node that returned it (so
   * a Cluster's keys are read where they live), and one of LINDEXes for the
   * hashes without activeAt. A key that expired since the SCAN, or moved to
   * another master meanwhile, is left out.
   */
  async #readMeta(node: Redis, tenant: TenantId, metaKeys: readonly string[]): Promise<Found[]> {
    const read = node.pipeline();
    for (const metaKey of metaKeys) read.hmget(metaKey, 'lastSeq', 'coversSeq', 'activeAt');
    const replies = (await read.exec()) ?? [];
    const found: Found[] = [];
    const withoutActivity: { each: Found; msgsKey: string }[] = [];
    metaKeys.forEach((metaKey, index) => {
      const [error, fields] = replies[index] ?? [null, undefined];
      const tag = metaKeyTag(this.#prefix, metaKey);
      const key = parseHashTag(tag);
      if (error !== null || !Array.isArray(fields) || key === undefined || key.tenant !== tenant) return;
      const [lastSeq, coversSeq, activeAt] = fields as (string | null)[];
      if (lastSeq === null || lastSeq === undefined) return;
      const each: Found = {
        metaKey,
        entry: {
          conversation: key.conversation,
          messageCount: Number(lastSeq),
          lastActivityMs: Number(activeAt ?? 0),
          summary: Number(coversSeq ?? 0) > 0 ? { coversSeq: Number(coversSeq), tokens: 0 } : undefined,
        },
      };
      found.push(each);
      if (activeAt === null || activeAt === undefined) withoutActivity.push({ each, msgsKey: `${metaKey.slice(0, -':meta'.length)}:msgs` });
    });
    if (withoutActivity.length > 0) {
      const newest = node.pipeline();
      for (const { msgsKey } of withoutActivity) newest.lindex(msgsKey, -1);
      const entries = (await newest.exec()) ?? [];
      withoutActivity.forEach(({ each }, index) => {
        const [error, entry] = entries[index] ?? [null, null];
        if (error === null && typeof entry === 'string') each.entry.lastActivityMs = decodeEntry(entry).createdAtMs;
      });
    }
    return found;
  }

  /** The summaries' sizes, for the page's entries that have one: parsed from the stored summary. */
  async #readSummaryTokens(listed: readonly Found[]): Promise<void> {
    const withSummary = listed.filter((each) => each.entry.summary !== undefined);
    const texts = await Promise.all(withSummary.map((each) => this.#client.hget(each.metaKey, 'summary')));
    withSummary.forEach((each, index) => {
      const json = texts[index];
      const tokens = typeof json === 'string' ? (JSON.parse(json) as { tokens?: unknown }).tokens : undefined;
      if (each.entry.summary !== undefined) each.entry.summary.tokens = typeof tokens === 'number' ? tokens : 0;
    });
  }
}

interface Found {
  metaKey: string;
  entry: ConversationEntry;
}
