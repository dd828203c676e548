import { describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, Summary, TenantId } from '../../../src/domain.js';
import { SentPrefixes, type SentPrefix } from '../../../src/http/sent-prefixes.js';

const key = (conversation: string): ConversationKey => ({ tenant: 't' as TenantId, conversation: conversation as ConversationId });
const summary = (coversSeq: number, createdAtMs = 1): Summary => ({ text: 's', tokens: 10, coversSeq, createdAtMs });
const prefix = (sent: Summary | undefined, pinned = 'p'): SentPrefix => ({ summary: sent, pinned });
const same = { summary: false, pinned: false };

describe('SentPrefixes', () => {
  test('unknown first, then whether the summary sent differs from the last one sent', () => {
    const sent = new SentPrefixes(10);
    expect(sent.record(key('a'), prefix(undefined))).toBeUndefined();
    expect(sent.record(key('a'), prefix(undefined))).toEqual(same);
    expect(sent.record(key('a'), prefix(summary(4)))).toEqual({ summary: true, pinned: false });
    expect(sent.record(key('a'), prefix(summary(4)))).toEqual(same);
    expect(sent.record(key('a'), prefix(summary(4, 2)))).toEqual({ summary: true, pinned: false }); // refolded: same coverage, new text
    expect(sent.record(key('b'), prefix(summary(4, 2)))).toBeUndefined();
  });

  test('the pinned part (instructions, tools) changed, apart from the summary', () => {
    const sent = new SentPrefixes(10);
    sent.record(key('a'), prefix(summary(4), 'v1'));
    expect(sent.record(key('a'), prefix(summary(4), 'v2'))).toEqual({ summary: false, pinned: true });
    expect(sent.record(key('a'), prefix(summary(5), 'v3'))).toEqual({ summary: true, pinned: true });
    expect(sent.record(key('a'), prefix(summary(5), 'v3'))).toEqual(same);
  });

  test('peek answers what record would, and records nothing (a dry run leaves the next request its answer)', () => {
    const sent = new SentPrefixes(2);
    expect(sent.peek(key('a'), prefix(summary(4)))).toBeUndefined();
    expect(sent.record(key('a'), prefix(undefined))).toBeUndefined();
    expect(sent.peek(key('a'), prefix(summary(4)))).toEqual({ summary: true, pinned: false });
    expect(sent.peek(key('a'), prefix(summary(4)))).toEqual({ summary: true, pinned: false });
    expect(sent.peek(key('a'), prefix(undefined))).toEqual(same);
    expect(sent.record(key('a'), prefix(summary(4)))).toEqual({ summary: true, pinned: false });
    expect(sent.peek(key('a'), prefix(summary(4)))).toEqual(same);
    // Peeking is not using: it does not save a conversation from being forgotten.
    sent.record(key('b'), prefix(undefined));
    sent.peek(key('a'), prefix(summary(4)));
    sent.record(key('c'), prefix(undefined));
    expect(sent.peek(key('a'), prefix(summary(4)))).toBeUndefined();
  });

  test('bounded: the least recently sent conversation is forgotten first', () => {
    const sent = new SentPrefixes(2);
    sent.record(key('a'), prefix(undefined));
    sent.record(key('b'), prefix(undefined));
    sent.record(key('a'), prefix(undefined));
    sent.record(key('c'), prefix(undefined));
    expect(sent.record(key('a'), prefix(undefined))).toEqual(same);
    expect(sent.record(key('b'), prefix(undefined))).toBeUndefined();
  });
});
