// Several turns of one conversation appended in one write: the merge of an
// unmerged conversation (store/outage-merge.ts) brings every turn Redis took
// while MongoDB could not answer, often dozens, and one append per turn (two
// round trips each) kept a busy FerretDB from ever catching up. Here the head
// is read once, the turns' documents are laid out after it, one turn after
// another (each first message claiming its turn key), and inserted with one
// ordered insertMany. Anything else in the way (another append took the seqs,
// a turn is there already from a merge that ran before) stops the insert at
// that document; the caller appends the rest one turn at a time, which
// handles each of those cases.

import { MongoBulkWriteError, type Collection } from 'mongodb';
import type { ConversationKey, NewMessage } from '../../domain.js';
import { digestOfTurn, turnDocuments, type Head, type MessageDocument } from './document-codec.js';
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
