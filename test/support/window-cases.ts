// The window-cut rule's cases on four messages of 10, 20, 30 and 40 tokens
// (seqs 1-4): the pure rule (test/unit/context/window-cut.test.ts) and every
// store (test/store/store-contract.ts) must cut them alike.
export const WINDOW_CASES = [
  { limits: { maxMessages: 100, maxTokens: 1_000 }, seqs: [1, 2, 3, 4], why: 'everything fits' },
  { limits: { maxMessages: 100, maxTokens: 100 }, seqs: [1, 2, 3, 4], why: 'exactly the budget' },
  { limits: { maxMessages: 100, maxTokens: 70 }, seqs: [2, 3, 4], why: '40+30 fit exactly, 20 crosses and comes too' },
  { limits: { maxMessages: 100, maxTokens: 69 }, seqs: [3, 4], why: '30 crosses after 40' },
  { limits: { maxMessages: 100, maxTokens: 0 }, seqs: [4], why: 'the newest always crosses a zero budget' },
  { limits: { maxMessages: 2, maxTokens: 1_000 }, seqs: [3, 4], why: 'message cap' },
  { limits: { maxMessages: 1, maxTokens: 0 }, seqs: [4], why: 'both limits' },
  { limits: { maxMessages: 0, maxTokens: 1_000 }, seqs: [], why: 'no messages asked for' },
];
