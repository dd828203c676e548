import type { ConversationKey, ConversationSnapshot, StoredMessage } from '../domain.js';
import type { ConversationStore, LoadLimits } from '../store/conversation-store.js';
import type { PendingTurn, PersistQueue } from './persist-queue.js';

/**
 * Loads a conversation as the next request must see it: the store's window
 * with this instance's turns that are queued but not yet stored added after
 * it. Turns are written after the reply, so without this a follow-up sent the
 * moment a reply ends could miss the turn before it.
 */
export class ReadYourWrites {
  readonly #store: Pick<ConversationStore, 'load'>;
  readonly #persist: Pick<PersistQueue, 'pendingFor'>;

  constructor(store: Pick<ConversationStore, 'load'>, persist: Pick<PersistQueue, 'pendingFor'>) {
    this.#store = store;
    this.#persist = persist;
  }

  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    // Taken before the read: a turn whose append lands during the read is then
    // in one of the two, and withPendingTurns keeps it from being in both.
    const pending = await this.#persist.pendingFor(key);
    return withPendingTurns(await this.#store.load(key, limits), pending);
  }
}

/**
 * The snapshot with the pending turns added, numbered on from its last seq.
 * A turn whose append landed while the snapshot was read is added only if the
 * snapshot does not already hold it: by its seqs once the append has
 * answered, and by its turn key (every turn has one) before that, since the
 * store may show the turn before the append's answer is back.
 */
export function withPendingTurns(snapshot: ConversationSnapshot, pending: readonly PendingTurn[]): ConversationSnapshot {
  if (pending.length === 0) return snapshot;
  const heldTurnKeys = new Set<string>();
  for (const m of snapshot.messages) if (m.turnKey !== undefined) heldTurnKeys.add(m.turnKey);
  const messages = [...snapshot.messages];
  let lastSeq = snapshot.lastSeq;
  for (const turn of pending) {
    const lastStored = turn.storedSeqs?.at(-1);
    if (lastStored !== undefined && lastStored <= snapshot.lastSeq) continue;
    if (turn.options.turnKey !== undefined && heldTurnKeys.has(turn.options.turnKey)) continue;
    for (const m of turn.messages) {
      lastSeq++;
      const provisional: StoredMessage = { ...m, seq: lastSeq, createdAtMs: turn.createdAtMs };
      if (turn.options.turnKey !== undefined && m === turn.messages[0]) provisional.turnKey = turn.options.turnKey;
      messages.push(provisional);
    }
  }
  return { ...snapshot, messages, lastSeq };
}
