// Response links in MongoDB (alone, or the durable tier behind Redis): one
// document per (tenant, response id) in `response_links`:
//   { _id: '<tenant>:<response id>', tenant, responseId, conversation, turnKey, createdAt }
// In _id, '%' and ':' in the tenant are percent-escaped, so the first ':' ends
// it and no two pairs share an _id. Nothing expires: conversations here are
// durable too, and forget (the conversation was deleted) removes its links.
// Only plain commands FerretDB v1 runs: findOne by _id, replaceOne upserting
// by _id, deleteMany, one index per createIndexes (mongo-store.ts says why).

import type { Collection, Db } from 'mongodb';
import type { ConversationId, ConversationKey, TenantId } from '../../domain.js';
import type { ResponseLink, ResponseLinkStore } from '../response-links.js';
import { isDuplicateKey } from './idempotent-insert.js';

export interface MongoResponseLinksOptions {
  /** The MongoStore's Db (main.ts owns the client). */
  db: Db;
}

interface LinkDocument {
  _id: string;
  tenant: string;
  responseId: string;
  conversation: string;
  turnKey: string;
  createdAt: Date;
}

const CONVERSATION_LINKS_INDEX = 'tenant_conversation';

export class MongoResponseLinks implements ResponseLinkStore {
  readonly #links: Collection<LinkDocument>;
  /** The index, created once by the first put (links exist only after one); cleared when that failed, so the next put tries again. */
  #indexes: Promise<void> | undefined;

  constructor(options: MongoResponseLinksOptions) {
    this.#links = options.db.collection<LinkDocument>('response_links');
  }

  async put(tenant: TenantId, responseId: string, link: ResponseLink): Promise<void> {
    await this.#ensureIndexes();
    const _id = linkId(tenant, responseId);
    const document: LinkDocument = { _id, tenant, responseId, conversation: link.conversation, turnKey: link.turnKey, createdAt: new Date(link.createdAtMs) };
    try {
      await this.#links.replaceOne({ _id }, document, { upsert: true });
    } catch (error) {
      // Two upserts of one new _id raced and this one lost the insert: the document exists now, so replacing it is a plain update.
      if (!isDuplicateKey(error)) throw error;
      await this.#links.replaceOne({ _id }, document, { upsert: true });
    }
  }

  async get(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined> {
    const document = await this.#links.findOne({ _id: linkId(tenant, responseId) }, { projection: { conversation: 1, turnKey: 1, createdAt: 1 } });
    if (document === null) return undefined;
    return { conversation: document.conversation as ConversationId, turnKey: document.turnKey, createdAtMs: document.createdAt.getTime() };
  }

  async forget(key: ConversationKey): Promise<void> {
    await this.#links.deleteMany({ tenant: key.tenant, conversation: key.conversation });
  }

  #ensureIndexes(): Promise<void> {
    this.#indexes ??= this.#links
      .createIndexes([{ key: { tenant: 1, conversation: 1 }, name: CONVERSATION_LINKS_INDEX }])
      .then(() => undefined)
      .catch((error: unknown) => {
        this.#indexes = undefined;
        throw error;
      });
    return this.#indexes;
  }
}

function linkId(tenant: TenantId, responseId: string): string {
  return `${tenant.replace(/[%:]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)}:${responseId}`;
}
