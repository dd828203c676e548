import { describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, Summary, TenantId } from '../../../src/domain.js';
import { SentSummaries } from '../../../src/http/sent-summaries.js';

const key = (conversation: string): ConversationKey => ({ tenant: 't' as TenantId, conversation: conversation as ConversationId });
const summary = (coversSeq: number, createdAtMs = 1): Summary => ({ text: 's', tokens: 10, coversSeq, createdAtMs });

describe('SentSummaries', () => {
  test('unknown first, then whether the summary sent differs from the last one sent', () => {
    const sent = new SentSummaries(10);
    expect(sent.record(key('a'), undefined)).toBeUndefined();
    expect(sent.record(key('a'), undefined)).toBe(false);
    expect(sent.record(key('a'), summary(4))).toBe(true);
    expect(sent.record(key('a'), summary(4))).toBe(false);
    expect(sent.record(key('a'), summary(4, 2))).toBe(true); // refolded: same coverage, new text
    expect(sent.record(key('b'), summary(4, 2))).toBeUndefined();
  });

  test('peek answers what record would, and records nothing (a dry run leaves the next request its answer)', () => {
    const sent = new SentSummaries(2);
    expect(sent.peek(key('a'), summary(4))).toBeUndefined();
    expect(sent.record(key('a'), undefined)).toBeUndefined();
    expect(sent.peek(key('a'), summary(4))).toBe(true);
    expect(sent.peek(key('a'), summary(4))).toBe(true);
    expect(sent.peek(key('a'), undefined)).toBe(false);
    expect(sent.record(key('a'), summary(4))).toBe(true);
    expect(sent.peek(key('a'), summary(4))).toBe(false);
    // Peeking is not using: it does not save a conversation from being forgotten.
    sent.record(key('b'), undefined);
    sent.peek(key('a'), summary(4));
    sent.record(key('c'), undefined);
    expect(sent.peek(key('a'), summary(4))).toBeUndefined();
  });

  test('bounded: the least recently sent conversation is forgotten first', () => {
    const sent = new SentSummaries(2);
    sent.record(key('a'), undefined);
    sent.record(key('b'), undefined);
    sent.record(key('a'), undefined);
    sent.record(key('c'), undefined);
    expect(sent.record(key('a'), undefined)).toBe(false);
    expect(sent.record(key('b'), undefined)).toBeUndefined();
  });
});
