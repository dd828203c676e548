// The benchmark's upstream, in its own process so that its CPU is not the load
// generator's or the proxy's. Prints {"url": ...} on its first stdout line.
// Answers every chat completion with a fixed short reply ("ok"), so reply size
// never dominates; the fake builds replies without tokenizing, so its cost does
// not grow with the prompt. Set-up requests that need a longer stored reply send
// it base64url-encoded in `x-bench-reply`.

import { Buffer } from 'node:buffer';
import { startFakeUpstream, type Behaviour, type RecordedRequest } from '../test/support/fake-upstream.js';
import { REPLY_HEADER, type ListeningLine, type UpstreamStatsMessage } from './protocol.js';

const OK: Behaviour = { kind: 'text', content: 'ok' };
let chatRequests = 0;
let bodyBytes = 0;

function reply(request: RecordedRequest): Behaviour {
  chatRequests += 1;
  bodyBytes += request.rawBody.length;
  const scripted = request.headers[REPLY_HEADER];
  if (typeof scripted !== 'string') return OK;
  return { kind: 'text', content: Buffer.from(scripted, 'base64url').toString('utf8') };
}

async function serve(): Promise<void> {
  const fake = await startFakeUpstream({ recordRequests: false, defaultBehaviour: reply });
  process.on('message', (message: unknown) => {
    if ((message as { type?: unknown }).type !== 'stats') return;
    const stats: UpstreamStatsMessage = { type: 'stats', chatRequests, bodyBytes };
    process.send?.(stats);
  });
  const stop = (): void => {
    void fake.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  // The parent died or closed the channel: never outlive it.
  process.once('disconnect', stop);
  const listening: ListeningLine = { url: fake.url };
  process.stdout.write(JSON.stringify(listening) + '\n');
}

serve().catch((error: unknown) => {
  console.error('bench upstream failed', error);
  process.exit(1);
});
