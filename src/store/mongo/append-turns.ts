// Several turns of one conversation appended in one write: the merge of an
// unmerged conversation (store/outage-merge.ts) brings every turn Redis took
// while MongoDB could not answer, often dozens, and one append per turn (two
// round trips each) kept a busy FerretDB from ever catching up. Here the head
// is read once, the turns' documents are laid out after it, one turn after
// another (each first message claiming its turn key), and inserted with one
// ordered insertMany. Anything else in the way (another append took the seqs,
// a turn is there already from a merge that ran before) stops the insert at
// that document; the caller appends the rest one turn at a time, which
// handles each of those cases. Turns a merge that ran before put in whole are
// found first, from two reads (storedWhole).

import { MongoBulkWriteError, type Collection } from 'mongodb';
import type { AppendResult, ConversationKey, NewMessage } from '../../domain.js';
import { CLAIM_INDEX, digestOfTurn, keyFilter, SEQ_INDEX, turnClaim, turnDocuments, type Head, type MessageDocument } from './document-codec.js';
import { DUPLICATE_KEY_CODE, writeErrorsOf } from './idempotent-insert.js';

export interface TurnToAppend {
  messages: readonly NewMessage[];
  turnKey: string;
  createdAtMs: number;
}

/**
 * Inserts the turns after `head`; resolves with how many of them went in
 * whole, with their seqs. A turn the insert stopped inside (only its first
 * documents went in) is not counted: appended again by its key, its missing
 * messages are filled in.
 */
export async function appendTurnsAfter(
  messages: Collection<MessageDocument>,
  key: ConversationKey,
  head: Head,
  turns: readonly TurnToAppend[],
): Promise<{ seqs: number[][] }> {
  const laidOut: MessageDocument[][] = [];
  let at = head;
  for (const turn of turns) {
    const encoded = turn.messages.map((incoming) => ({ incoming, messageJson: JSON.stringify(incoming.message) }));
    const documents = turnDocuments({ key, encoded, turnKey: turn.turnKey, turnDigest: digestOfTurn(turn.messages), createdAt: new Date(turn.createdAtMs) }, at);
    laidOut.push(documents);
    const last = documents.at(-1);
    if (last !== undefined) at = { lastSeq: last.turnLastSeq, lastCum: last.turnLastCum };
  }
  const all = laidOut.flat();
  let inserted = all.length;
  try {
    if (all.length > 0) await messages.insertMany(all, { ordered: true });
  } catch (error) {
    const writeError = error instanceof MongoBulkWriteError && error.result.getWriteConcernError() === undefined ? writeErrorsOf(error)[0] : undefined;
    if (writeError?.code !== DUPLICATE_KEY_CODE) throw error;
    inserted = writeError.index;
  }
  const seqs: number[][] = [];
  let counted = 0;
  for (const documents of laidOut) {
    if (counted + documents.length > inserted) break;
    counted += documents.length;
    seqs.push(documents.map((document) => document.seq));
  }
  return { seqs };
}

/**
 * The leading turns MongoDB holds whole already under their keys (same turn,
 * every message in), as duplicates at their seqs, from two reads: a merge
 * tried again after a timeout finds its first turns in already, and appending
 * them one at a time would time out again on a busy server. Stops at the first
 * turn that is not there whole.
 */
export async function storedWhole(messages: Collection<MessageDocument>, key: ConversationKey, turns: readonly TurnToAppend[]): Promise<AppendResult[]> {
  const firsts = await messages
    .find({ ...keyFilter(key), claim: { $in: turns.map((turn) => turnClaim(turn.turnKey)) } }, { projection: { _id: 0, claim: 1, seq: 1, turnDigest: 1, turnLastSeq: 1 }, hint: CLAIM_INDEX })
    .toArray();
  if (firsts.length === 0) return [];
  const byClaim = new Map(firsts.map((document) => [document.claim, document]));
  const leading: number[][] = [];
  for (const turn of turns) {
    const first = byClaim.get(turnClaim(turn.turnKey));
    if (first === undefined || first.turnDigest !== digestOfTurn(turn.messages) || first.turnLastSeq - first.seq + 1 !== turn.messages.length) break;
    leading.push(Array.from({ length: turn.messages.length }, (_, index) => first.seq + index));
  }
  if (leading.length === 0) return [];
  const present = new Set(
    (await messages.find({ ...keyFilter(key), seq: { $in: leading.flat() } }, { projection: { _id: 0, seq: 1 }, hint: SEQ_INDEX }).toArray()).map((document) => document.seq),
  );
  const results: AppendResult[] = [];
  for (const seqs of leading) {
    if (!seqs.every((seq) => present.has(seq))) break;
    results.push({ seqs, duplicate: true });
  }
  return results;
}
