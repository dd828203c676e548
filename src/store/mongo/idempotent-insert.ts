// Inserts against the unique indexes, the one write FerretDB v1 and MongoDB
// both do atomically (mongo-store.ts): a duplicate key means "already there".

import { MongoBulkWriteError, MongoServerError, type Collection, type WriteError } from 'mongodb';
import { SEQ_INDEX, TURN_CLAIM_PREFIX, type MessageDocument } from './document-codec.js';

export const DUPLICATE_KEY_CODE = 11000;

export interface InsertOutcome {
  inserted: number;
  alreadyStored: number;
  /** Indexes into the documents given: stored already, the same message. */
  storedAt: number[];
  /** Indexes into the documents given: another message holds the seq. */
  conflicts: number[];
}

/**
 * Inserts the documents (grouped, each group one conversation's), keeping
 * whatever is stored at a seq already: a duplicate key means "already
 * there", and the stored digest tells a copy of the same message from a
 * different one. One unordered insert for all groups, so one stored seq does
 * not stop the rest. An outcome per group, its conflicts as indexes into it.
 */
export async function insertIdempotently(messages: Collection<MessageDocument>, groups: readonly (readonly MessageDocument[])[]): Promise<InsertOutcome[]> {
  const all = groups.flat();
  const outcomes: InsertOutcome[] = groups.map((group) => ({ inserted: group.length, alreadyStored: 0, storedAt: [], conflicts: [] }));
  if (all.length === 0) return outcomes;
  let duplicates: number[];
  try {
    await messages.insertMany(all, { ordered: false });
    return outcomes;
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError) || error.result.getWriteConcernError() !== undefined) throw error;
    const writeErrors = writeErrorsOf(error);
    if (writeErrors.some((writeError) => writeError.code !== DUPLICATE_KEY_CODE)) throw error;
    duplicates = writeErrors.map((writeError) => writeError.index);
    // A connection cut mid-batch also surfaces as a bulk write error, with
    // documents neither inserted nor reported as duplicates: not an answer.
    if (error.insertedCount + duplicates.length !== all.length) throw error;
  }

  // Where each duplicate sits: its group and its index there.
  const groupOf: { group: number; index: number }[] = groups.flatMap((group, g) => group.map((_, index) => ({ group: g, index })));
  const byGroup = new Map<number, number[]>();
  for (const position of duplicates) {
    const at = groupOf[position];
    if (at !== undefined) byGroup.set(at.group, [...(byGroup.get(at.group) ?? []), at.index]);
  }
  await Promise.all(
    [...byGroup].map(async ([g, indexes]) => {
      const group = groups[g]!;
      const first = group[0]!;
      const seqs = indexes.flatMap((index) => group[index]?.seq ?? []);
      const stored = await messages
        .find({ tenant: first.tenant, conversation: first.conversation, seq: { $in: seqs } }, { projection: { _id: 0, seq: 1, digest: 1, turnKey: 1, erased: 1 }, hint: SEQ_INDEX })
        .toArray();
      const storedAtSeq = new Map(stored.map((document) => [document.seq, document]));
      const conflicts = indexes.filter((index) => {
        const document = group[index];
        if (document === undefined) return false;
        const storedThere = storedAtSeq.get(document.seq);
        // Nothing at the seq: the duplicate was the turn's claim, so the turn is stored at
        // other seqs (a conflict); or, for a message claiming only its seq, it is gone
        // again (a racing delete), which counts as stored: there is nothing to conflict with.
        if (storedThere === undefined) return document.claim.startsWith(TURN_CLAIM_PREFIX);
        // An erased message's tombstone (erase-messages.ts): a flush read before the erasure stores nothing there.
        if (storedThere.erased === true) return false;
        // The same message of the same turn: equal text alone is not enough (two turns can
        // get the same reply, and a question can be asked twice).
        return storedThere.digest !== document.digest || storedThere.turnKey !== document.turnKey;
      });
      const storedAt = indexes.filter((index) => !conflicts.includes(index));
      outcomes[g] = { inserted: group.length - indexes.length, alreadyStored: storedAt.length, storedAt, conflicts };
    }),
  );
  return outcomes;
}

export function writeErrorsOf(error: MongoBulkWriteError): readonly WriteError[] {
  const { writeErrors } = error;
  return Array.isArray(writeErrors) ? writeErrors : [writeErrors as WriteError];
}

export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY_CODE;
}
