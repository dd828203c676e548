// The invariant of issue 10, over random stored conversations and random
// requests: whatever a client sends, the prompt that leaves contextd keeps
// OpenAI's tool-message rules (every tool message answers a call of the
// assistant message before it, every call is answered before the next
// non-tool message, no id twice), unless the client's own request breaks them
// (then it goes as it came); the stored state never breaks them; re-sent
// history, however the client re-serialised it, is never stored again.
//
// The steps are those of the request path (src/http/plan-prompt.ts):
// split → the client's own check → results for unanswered calls → (a chunked
// window's start) → assemble.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { assemblePrompt, pinnedHistoryStart } from '../../../src/context/assemble-prompt.js';
import { digestMessage } from '../../../src/context/message-digest.js';
import { splitRequest } from '../../../src/context/split-request.js';
import { describeToolSequenceProblem, findStoreProblem, findToolSequenceProblem } from '../../../src/context/tool-sequence.js';
import { resultsForUnansweredCalls } from '../../../src/context/unanswered-calls.js';
import { chunkedStart } from '../../../src/context/window-policy.js';
import type { ChatMessage, StoredMessage } from '../../../src/domain.js';

type UnitSpec = { kind: 'user' | 'assistant'; tokens: number } | { kind: 'tools'; tokens: number; calls: number; answered: number };

const arbTokens = fc.integer({ min: 4, max: 40 });
const arbUnit: fc.Arbitrary<UnitSpec> = fc.oneof(
  fc.record({ kind: fc.constant('user' as const), tokens: arbTokens }),
  fc.record({ kind: fc.constant('assistant' as const), tokens: arbTokens }),
  fc.integer({ min: 1, max: 3 }).chain((calls) => fc.record({ kind: fc.constant('tools' as const), tokens: arbTokens, calls: fc.constant(calls), answered: fc.constant(calls) })),
);
/** A last unit that may still wait for (some of) its results. */
const arbOpenTail: fc.Arbitrary<UnitSpec | null> = fc.option(
  fc.integer({ min: 1, max: 3 }).chain((calls) => fc.record({ kind: fc.constant('tools' as const), tokens: arbTokens, calls: fc.constant(calls), answered: fc.integer({ min: 0, max: calls - 1 }) })),
);

let callNo = 0;
function buildHistory(units: readonly UnitSpec[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const unit of units) {
    if (unit.kind === 'user') messages.push({ role: 'user', content: `question ${messages.length}` });
    else if (unit.kind === 'assistant') messages.push({ role: 'assistant', content: `answer ${messages.length}` });
    else if (unit.kind === 'tools') {
      const ids = Array.from({ length: unit.calls }, () => `call_${++callNo}`);
      messages.push({
        role: 'assistant',
        content: null,
        tool_calls: ids.map((id, i) => ({ id, type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: `item ${i}`, n: i }) } })),
      });
      for (const id of ids.slice(0, unit.answered)) messages.push({ role: 'tool', tool_call_id: id, content: `result of ${id}` });
    }
  }
  return messages;
}

/**
 * As the stores hold them: running totals, and a turn key on each turn's first
 * message. A user message opens a turn; so does the first tool result after a
 * call, as in an agent's tool loop, where each request sends only the results.
 */
const stored = (messages: readonly ChatMessage[]): StoredMessage[] =>
  messages.map((message, i) => {
    const opensTurn = message.role === 'user' || (message.role === 'tool' && messages[i - 1]?.tool_calls !== undefined);
    return { message, tokens: 10, digest: digestMessage(message), seq: i + 1, createdAtMs: 0, cumTokens: 10 * (i + 1), ...(opensTurn ? { turnKey: `turn ${i}` } : {}) };
  });

/** How an app's own copy of a message differs from the stored bytes. */
function reserialise(message: ChatMessage, style: number): ChatMessage {
  const copy: ChatMessage = { ...message };
  if (copy.tool_calls !== undefined) {
    copy.tool_calls = copy.tool_calls.map((call) => {
      const args = JSON.parse(call.function!.arguments) as Record<string, unknown>;
      const reordered = Object.fromEntries(Object.entries(args).reverse());
      return { id: call.id, function: { name: call.function!.name, arguments: JSON.stringify(style % 2 === 0 ? args : reordered, null, style % 3) }, type: 'function' };
    });
  }
  if (typeof copy.content === 'string' && style % 2 === 1) copy.content = [{ type: 'text', text: copy.content }];
  if (copy.role === 'assistant' && style % 3 === 0) Object.assign(copy, { refusal: null, annotations: [], content: copy.content ?? '' });
  return copy;
}

function openCallIds(history: readonly ChatMessage[]): string[] {
  let start = history.length;
  while (start > 0 && history[start - 1]!.role === 'tool') start--;
  const call = history[start - 1];
  if (call?.tool_calls === undefined) return [];
  const answered = new Set(history.slice(start).map((m) => m.tool_call_id));
  return call.tool_calls.map((c) => c.id).filter((id) => !answered.has(id));
}

const SYSTEM: ChatMessage = { role: 'system', content: 'pinned instructions' };

type Client =
  | { kind: 'new_message_only'; answerOpen: number; withUser: boolean }
  | { kind: 'full_history'; keepFrom: number; style: number; answerOpen: number; withUser: boolean }
  | { kind: 'hostile'; messages: ChatMessage[] };

const arbHostileMessage: fc.Arbitrary<ChatMessage> = fc.oneof(
  fc.constant<ChatMessage>({ role: 'user', content: 'hi' }),
  fc.integer({ min: 1, max: 12 }).map<ChatMessage>((n) => ({ role: 'tool', tool_call_id: `call_${n}`, content: 'r' })),
  fc.integer({ min: 1, max: 12 }).map<ChatMessage>((n) => ({
    role: 'assistant',
    content: null,
    tool_calls: [{ id: `call_${n}`, type: 'function', function: { name: 'lookup', arguments: '{}' } }],
  })),
  fc.constant<ChatMessage>({ role: 'assistant', content: 'ok' }),
);

const arbClient: fc.Arbitrary<Client> = fc.oneof(
  fc.record({ kind: fc.constant('new_message_only' as const), answerOpen: fc.nat(3), withUser: fc.boolean() }),
  fc.record({ kind: fc.constant('full_history' as const), keepFrom: fc.nat(30), style: fc.nat(5), answerOpen: fc.nat(3), withUser: fc.boolean() }),
  fc.record({ kind: fc.constant('hostile' as const), messages: fc.array(arbHostileMessage, { minLength: 1, maxLength: 5 }) }),
);

/**
 * The request the client sends, and whether it breaks the rules on its own: a
 * client that re-sends a call in its own history and goes on without all of its
 * results makes a request OpenAI would refuse whatever contextd does.
 */
function requestOf(client: Client, history: readonly ChatMessage[]): { messages: ChatMessage[]; isSelfInvalid: boolean } {
  if (client.kind === 'hostile') return { messages: [SYSTEM, ...client.messages], isSelfInvalid: false };
  const open = openCallIds(history);
  const answers = open.slice(0, client.answerOpen).map<ChatMessage>((id) => ({ role: 'tool', tool_call_id: id, content: `late result of ${id}` }));
  // A turn answers the open calls or goes on; an empty one is no request.
  const fresh: ChatMessage[] = [...answers, ...(client.withUser || answers.length === 0 ? [{ role: 'user' as const, content: `new question ${++callNo}` }] : [])];
  if (client.kind === 'new_message_only') return { messages: [SYSTEM, ...fresh], isSelfInvalid: false };
  // The app's own copy of its history, maybe missing an older part, in its own serialisation.
  let from = Math.min(client.keepFrom, history.length);
  while (from < history.length && history[from]!.role === 'tool') from++;
  const resent = history.slice(from);
  const resendsOpenCall = open.length > 0 && resent.some((m) => m.tool_calls?.some((c) => c.id === open[0]));
  return { messages: [SYSTEM, ...resent.map((m, i) => reserialise(m, client.style + i)), ...fresh], isSelfInvalid: resendsOpenCall && answers.length < open.length };
}

describe('tool-message rules, over random conversations and requests', () => {
  test('prompt valid unless the request itself breaks the rules; stored state valid; re-sent history never stored again', () => {
    fc.assert(
      fc.property(
        fc.array(arbUnit, { maxLength: 12 }),
        arbOpenTail,
        fc.nat(6),
        arbClient,
        fc.integer({ min: 60, max: 600 }),
        fc.oneof(fc.constant('text' as const), fc.constant('fresh call' as const), fc.integer({ min: 1, max: 12 })),
        fc.option(fc.double({ min: 0.1, max: 0.9, noNaN: true })),
        (units, openTail, loadCut, client, budgetTokens, replyKind, chunkedWatermark) => {
          const history = buildHistory(openTail === null ? units : [...units, openTail]);
          const all = stored(history);
          // The load returns the newest messages (at least the newest one, as the stores'
          // "plus the one that crosses" guarantees); it may start inside a tool exchange, but
          // never inside the last one (the request path reads on to its call).
          let from = Math.min(loadCut, Math.max(0, all.length - 1));
          if (from < all.length && all.slice(from).every((m) => m.message.role === 'tool')) while (from > 0 && all[from]!.message.role === 'tool') from--;
          const loaded = all.slice(from);
          const { messages, isSelfInvalid } = requestOf(client, history);
          const isWellBehaved = client.kind !== 'hostile' && !isSelfInvalid;

          const split = splitRequest({ messages, digestAt: (i) => digestMessage(messages[i]!), stored: loaded, idempotencyKey: undefined, nowMs: 0, retryWindowMs: 0 });
          const clientProblem = findToolSequenceProblem(messages.slice(split.instructionCount), { allowLeadingResults: true });
          // Every request that breaks the rules on its own is found to (it then goes as it came), and no other.
          if (isWellBehaved || isSelfInvalid) expect(clientProblem !== undefined).toBe(isSelfInvalid);
          const requestTurn = messages.slice(split.turnStart);
          const turn = [...resultsForUnansweredCalls(split.history, requestTurn), ...requestTurn];
          const countedTurn = turn.map((message) => ({ message, tokens: 10 }));
          // A chunked window (when the option is drawn) starts where its policy says; the assembly goes on from there.
          const instructionTokens = 10 * split.instructionCount;
          const chunk =
            chunkedWatermark === null
              ? undefined
              : chunkedStart(split.history, 10 * countedTurn.length, budgetTokens - instructionTokens - 3, chunkedWatermark, pinnedHistoryStart(split.history, countedTurn));
          const prompt = assemblePrompt({
            instructions: messages.slice(0, split.instructionCount).map((message) => ({ message, tokens: 10 })),
            summary: undefined,
            history: split.history.slice(chunk?.start ?? 0),
            turn: countedTurn,
            fixedTokens: 3,
            budgetTokens,
            summaryMaxTokens: 50,
          });
          const promptProblem = findToolSequenceProblem(prompt.messages);
          if (isWellBehaved) {
            expect(promptProblem === undefined ? 'valid' : describeToolSequenceProblem(promptProblem)).toBe('valid');
            expect(prompt.messages[0]).toEqual(SYSTEM);
            // Nothing the store holds comes back in the turn.
            const storedDigests = new Set(all.map((m) => m.digest));
            for (const message of requestTurn) expect(storedDigests.has(digestMessage(message))).toBe(false);
          }

          // The store guard of the request path, whatever the client sent: a turn it lets through
          // leaves the stored state (as far as it was loaded) valid.
          // The reply: text, a call with a new id, or (a careless upstream) a call reusing an id.
          const replyCall = (id: string): ChatMessage => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: '{}' } }] });
          const reply: ChatMessage =
            replyKind === 'text' ? { role: 'assistant', content: 'reply' } : replyCall(replyKind === 'fresh call' ? `call_reply_${++callNo}` : `call_${replyKind}`);
          const guard = findStoreProblem(
            promptProblem,
            split.history.map((m) => m.message),
            turn,
            reply,
          );
          if (isWellBehaved && typeof replyKind === 'string') expect(guard === undefined ? 'stored' : describeToolSequenceProblem(guard)).toBe('stored');
          if (guard !== undefined) return;
          const after = [...loaded.map((m) => m.message), ...turn, reply];
          const storedProblem = findToolSequenceProblem(after, { allowLeadingResults: true, allowOpenTail: true });
          expect(storedProblem === undefined ? 'valid' : describeToolSequenceProblem(storedProblem)).toBe('valid');
        },
      ),
      { numRuns: 5000 },
    );
  });
});
