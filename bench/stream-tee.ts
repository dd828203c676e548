// What does rebuilding a streamed reply cost contextd (src/streaming/tee-reply.ts,
// the side branch that reads the bytes the client is sent)? One 300-token reply
// as the bench's upstream streams it (a token per event, the role, finish and
// usage chunks, [DONE]), each event a chunk of its own, pushed through the tee's
// accumulator and finished (an uncompressed body's decoder only hands chunks on). Beside it, in the same run, JSON.parse of every event's data
// alone: the least a tee that parses each chunk whole pays (what it did before
// issue 16). Then two variants the fast path must not slow much: OpenAI's
// `obfuscation` member (a different string after the content in every chunk),
// and Azure's `content_filter_results` (an object in every choice: every chunk
// takes JSON.parse).
//
//   npm run build && node dist/bench/stream-tee.js
import { createSseReplyAccumulator } from '../src/streaming/accumulate-reply.js';
import { chatCompletionEvents } from './chat-reply.js';
import { microseconds } from './micro.js';
import { replyTexts } from './replies.js';
import { replyOf } from './upstream-reply.js';

const reply = replyOf(replyTexts()[0]!);
const meta = { id: 'chatcmpl-bench', createdSeconds: 1_765_000_000, model: '"gpt-4o-mini"', promptTokens: 2800 };
const plain = chatCompletionEvents(reply, meta, true);
const obfuscated = plain.map((event, i) => event.replace(/\}\n\n$/, `,"obfuscation":"${'x'.repeat(i % 9)}"}\n\n`));
const azure = plain.map((event) => event.replace('"logprobs":null,', '"logprobs":null,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},'));

function timed(events: readonly string[]): { teeUs: number; parseUs: number } {
  const chunks = events.map((event) => Buffer.from(event));
  const datas = events.filter((event) => !event.startsWith('data: [DONE]')).map((event) => event.slice('data: '.length, -2));
  const teeUs = microseconds(() => {
    const accumulator = createSseReplyAccumulator({ usageRequested: true });
    for (const chunk of chunks) accumulator.push(chunk);
    return accumulator.finish();
  });
  const parseUs = microseconds(() => {
    let n = 0;
    for (const data of datas) n += (JSON.parse(data) as { choices: unknown[] }).choices.length;
    return n;
  });
  return { teeUs, parseUs };
}

console.log(`one reply of ${reply.completionTokens} tokens, ${plain.length} events\n`);
console.log('| stream | tee µs/reply | tee ns/event | JSON.parse of each event alone, µs/reply | tee / JSON.parse alone |\n| --- | ---: | ---: | ---: | ---: |');
for (const [name, events] of [['as the bench upstream sends it', plain], ['with `obfuscation`', obfuscated], ['Azure (`content_filter_results`)', azure]] as const) {
  const { teeUs, parseUs } = timed(events);
  console.log(`| ${name} | ${teeUs.toFixed(1)} | ${((teeUs / events.length) * 1000).toFixed(0)} | ${parseUs.toFixed(1)} | ${(teeUs / parseUs).toFixed(2)} |`);
}
