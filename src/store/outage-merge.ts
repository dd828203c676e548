// The end of an unmerged conversation (docs/storage.md, "Unmerged
// conversations"). Redis took it while MongoDB could not tell its state (down,
// or slower than the cold-read deadline), so its seqs are provisional, from 1.
// Once MongoDB answers, the flusher hands it here:
//   1. its turns are appended to MongoDB after whatever MongoDB holds, oldest
//      first, each under its turn key, up to 32 in one write
//      (MongoStore.appendTurns). MongoDB numbers them; its unique claim index
//      makes a turn that is there already a duplicate (and fills in one whose
//      insert was cut short), so a merge repeated after a crash, or run by two
//      instances at once, stores none twice and keeps the order;
//   2. Redis is rebased (redis/lua-outbox.ts, REBASE): replaced in one step by what a
//      warm seeds from MongoDB now, the history MongoDB had in front of the
//      merged turns, under a new incarnation. Only if no turn was appended
//      since step 1 read the conversation: those are merged too, and the
//      rebase is tried again.
// Every turn the two-tier store writes carries a turn key (TieredStore.append
// gives one), so the turns are told apart in the list by the key on their
// first message; a message without one stays with the turn before it.

import type { ConversationKey, NewMessage, StoredMessage } from '../domain.js';
import type { FlushSource, FlushTarget, MergedTurnKey, Unflushed, UnmergedMerge, UnmergedMergeResult } from './conversation-store.js';
import { callTier, type StoreHealth } from './store-health.js';
import { readWarmState } from './warm-state.js';

export interface OutageMergeOptions {
  hot: Pick<FlushSource, 'unflushed' | 'rebase'>;
  durable: Pick<FlushTarget, 'appendTurns' | 'load' | 'conversationState'>;
  health: StoreHealth;
  redisTimeoutMs: number;
  mongoTimeoutMs: number;
  /** How many recent messages the rebased conversation starts with (as a warm). */
  maxCachedMessages: number;
}

/** Turns appended to MongoDB in one write: a merge of many stays within the call's deadline on a busy server. */
const TURNS_PER_WRITE = 32;
/** Rebase attempts in one merge: each failed one means a turn was appended meanwhile. */
const MAX_REBASE_ATTEMPTS = 5;
/** The key of a turn stored without one, stable for the incarnation, so a repeated merge finds it. */
const SYNTHETIC_KEY_PREFIX = 'unmerged:';

interface OutageTurn {
  turnKey: string;
  createdAtMs: number;
  messages: NewMessage[];
}

export class OutageMerge implements UnmergedMerge {
  readonly #o: OutageMergeOptions;

  constructor(options: OutageMergeOptions) {
    this.#o = options;
  }

  async merge(key: ConversationKey, unflushed: Unflushed & { unmergedIncarnation: string }): Promise<UnmergedMergeResult | undefined> {
    const { hot, durable } = this.#o;
    const incarnation = unflushed.unmergedIncarnation;
    // The turns this merge has put in MongoDB, by turn key: a rebase tried again appends only the newer ones.
    const merged = new Map<string, MergedTurnKey & { isNew: boolean }>();
    let messages = unflushed.messages;
    for (let attempt = 1; ; attempt++) {
      const pending = turnsOf(messages, incarnation).filter((turn) => !merged.has(turn.turnKey));
      for (let at = 0; at < pending.length; at += TURNS_PER_WRITE) {
        const turns = pending.slice(at, at + TURNS_PER_WRITE);
        const results = await this.#mongo('appendTurns', () => durable.appendTurns(key, turns));
        turns.forEach((turn, index) => {
          const result = results[index] ?? { seqs: [], duplicate: true };
          merged.set(turn.turnKey, { turnKey: turn.turnKey, firstSeq: result.seqs[0] ?? 0, count: result.seqs.length, isNew: !result.duplicate });
        });
      }
      const state = await readWarmState(durable, key, this.#o.maxCachedMessages, (operation, call) => this.#mongo(operation, call));
      const lastSeq = messages.at(-1)?.seq ?? 0;
      const turnKeys = [...merged.values()].filter((turn) => !turn.turnKey.startsWith(SYNTHETIC_KEY_PREFIX));
      const outcome = await this.#redis('rebase', () => hot.rebase(key, { incarnation, lastSeq }, state, turnKeys));
      if (outcome === 'gone') return undefined;
      if (outcome === 'rebased') {
        const turns = [...merged.values()];
        const count = (isNew: boolean): number => turns.filter((turn) => turn.isNew === isNew).reduce((sum, turn) => sum + turn.count, 0);
        return {
          throughSeq: state.lastSeq,
          seqs: turns.flatMap((turn) => Array.from({ length: turn.count }, (_, index) => turn.firstSeq + index)),
          inserted: count(true),
          alreadyStored: count(false),
        };
      }
      // Turns were appended since the conversation was read: merge them too.
      if (attempt >= MAX_REBASE_ATTEMPTS) throw new Error(`the unmerged conversation ${key.conversation} kept growing during ${MAX_REBASE_ATTEMPTS} merges`);
      const again = await this.#redis('unflushed', () => hot.unflushed(key));
      if (again.unmergedIncarnation !== incarnation) return undefined;
      messages = again.messages;
    }
  }

  #redis<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'redis', operation, this.#o.redisTimeoutMs, call);
  }

  #mongo<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'mongodb', operation, this.#o.mongoTimeoutMs, call, { background: true });
  }
}

/** The list's messages as turns, oldest first: a message with a turn key starts one. */
function turnsOf(messages: readonly StoredMessage[], incarnation: string): OutageTurn[] {
  const turns: OutageTurn[] = [];
  for (const stored of messages) {
    const incoming: NewMessage = { message: stored.message, tokens: stored.tokens, digest: stored.digest };
    const current = turns.at(-1);
    if (current !== undefined && stored.turnKey === undefined) {
      current.messages.push(incoming);
      continue;
    }
    turns.push({ turnKey: stored.turnKey ?? `${SYNTHETIC_KEY_PREFIX}${incarnation}:${stored.seq}`, createdAtMs: stored.createdAtMs, messages: [incoming] });
  }
  return turns;
}
