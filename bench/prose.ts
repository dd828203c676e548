// Deterministic English prose for benchmark prompts: the tokenizer's cost depends
// on the text (word lengths, punctuation, numbers), so the history is sentences a
// chat app would hold, not repeated filler, and the same seed always gives the same text.
import { seededRandom } from '../test/support/seeded-random.js';

const SUBJECTS = [
  'The deployment', 'Our team', 'The new billing service', 'A customer in Lyon', 'The nightly report', 'Your draft',
  'The migration plan', 'This approach', 'The second option', 'The support queue', 'The cache layer', 'Each region',
  'The quarterly budget', 'The mobile app', 'The onboarding email', 'That spreadsheet', 'The load balancer', 'Marketing',
];
const VERBS = [
  'should cover', 'already handles', 'could reduce', 'needs to explain', 'will probably delay', 'depends on',
  'does not include', 'was designed around', 'might conflict with', 'makes it easier to review', 'quietly doubles',
  'still struggles with', 'has to respect', 'can summarise', 'is blocked by', 'was rewritten to support',
];
const OBJECTS = [
  'the retry logic for failed payments', 'about 12 percent of the monthly traffic', 'the vendor contract renewal',
  'every request that arrives after midnight', 'the three open questions from Tuesday', 'a rollback within ten minutes',
  'the accessibility review', 'invoices older than 90 days', 'the tone we agreed on last week', 'two extra engineers',
  'the shipping estimate for Canada', 'a clear owner for each task', 'the warm-up period before launch',
  'the refund policy for annual plans', 'the API rate limits', 'customers who signed up in March',
];
const TAILS = [
  '', '', '', ' before the end of the sprint', ', which is what worried Priya', ' if we keep the current schedule',
  ', according to the last incident review', ' without changing the database schema', ' for the pilot group',
  ', at least in the first version', ' and nobody has objected so far', ' unless legal asks for changes',
];
const OPENERS = ['', '', '', 'In short, ', 'To be fair, ', 'As far as I can tell, ', 'On the other hand, ', 'Honestly, ', 'For now, '];


function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** Whole sentences until the text is at least `minChars` long. */
export function prose(seed: number, minChars: number): string {
  const random = seededRandom(seed);
  const sentences: string[] = [];
  let length = 0;
  while (length < minChars) {
    const sentence = `${pick(random, OPENERS)}${pick(random, SUBJECTS)} ${pick(random, VERBS)} ${pick(random, OBJECTS)}${pick(random, TAILS)}.`;
    const text = sentence.charAt(0).toUpperCase() + sentence.slice(1);
    sentences.push(text);
    length += text.length + 1;
  }
  return sentences.join(' ');
}
