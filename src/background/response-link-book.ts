import type { ConversationKey, TenantId } from '../domain.js';
import type { ResponseLink, ResponseLinkStore } from '../store/response-links.js';
import { Announcements } from './announcements.js';

export interface ResponseLinkBookOptions {
  links: ResponseLinkStore;
  /** Attempts per link write before it is given up (and reported). */
  maxAttempts: number;
  retryDelayMs: (attempt: number) => number;
  onDropped: (responseId: string, error: unknown) => void;
}

/** A link announced before its response id is known: a lookup of an id not yet known waits for it. */
export interface LinkTicket {
  /** Records the link (written to the store in the background) and releases waiting lookups. */
  fill(responseId: string, link: ResponseLink): void;
  /** Releases waiting lookups with no link; a no-op after fill. */
  cancel(): void;
}

/**
 * Response id → conversation links for previous_response_id emulation, with
 * read-your-writes: a link is written after the reply, off the request path,
 * so a follow-up sent the moment a reply ends could otherwise miss it. A
 * ticket is taken in the same tick as the reply's last byte (as the persist
 * queue's turn reservation is); a lookup of an id this instance has not
 * written yet waits for the tenant's open tickets before it asks the store.
 */
export class ResponseLinkBook {
  readonly #options: ResponseLinkBookOptions;
  /** `<tenant> <response id>` → links being written. */
  readonly #writing = new Map<string, ResponseLink>();
  /** Tickets not yet filled or cancelled, by tenant. */
  readonly #open = new Announcements();
  readonly #writes = new Set<Promise<void>>();

  constructor(options: ResponseLinkBookOptions) {
    this.#options = options;
  }

  expect(tenant: TenantId): LinkTicket {
    const announcement = this.#open.announce(tenant);
    return {
      fill: (responseId, link) => {
        if (announcement.isSettled) return;
        this.#write(tenant, responseId, link);
        announcement.settle();
      },
      cancel: () => announcement.settle(),
    };
  }

  /** The link of a response this tenant was relayed, undefined when there is none. */
  async find(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined> {
    const id = `${tenant} ${responseId}`;
    const writing = this.#writing.get(id);
    if (writing !== undefined) return writing;
    await this.#open.settledFor(tenant);
    return this.#writing.get(id) ?? this.#options.links.get(tenant, responseId);
  }

  /** Forgets every link into the conversation (it was deleted); a lookup also finds a link dead once its turn is gone. */
  forget(key: ConversationKey): Promise<void> {
    return this.#options.links.forget(key);
  }

  /** Resolves once every open ticket is settled and every link written or given up. */
  async drain(): Promise<void> {
    await this.#open.allSettled();
    while (this.#writes.size > 0) await Promise.all([...this.#writes]);
  }

  #write(tenant: TenantId, responseId: string, link: ResponseLink): void {
    const id = `${tenant} ${responseId}`;
    this.#writing.set(id, link);
    const write = this.#put(tenant, responseId, link).finally(() => {
      if (this.#writing.get(id) === link) this.#writing.delete(id);
      this.#writes.delete(write);
    });
    this.#writes.add(write);
  }

  async #put(tenant: TenantId, responseId: string, link: ResponseLink): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#options.links.put(tenant, responseId, link);
        return;
      } catch (error) {
        if (attempt >= this.#options.maxAttempts) {
          this.#options.onDropped(responseId, error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.#options.retryDelayMs(attempt)));
      }
    }
  }
}
