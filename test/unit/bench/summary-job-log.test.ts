// The prefix-cache bench waits after each turn until the summary jobs its requests offered have ended; it
// reads both from contextd's log, as it grows.
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { SummaryJobLog } from '../../../bench/summary-job-log.js';

const line = (entry: Record<string, unknown>): string => `${JSON.stringify(entry)}\n`;

test('offers are the request lines with summaryOffered (a written-ahead job leaves no history out); ends are outcomes but retrying', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'summary-job-log-'));
  const path = join(dir, 'contextd.log');
  try {
    await writeFile(path, 'not json\n');
    const jobs = new SummaryJobLog(path, new Set(['chunked-summaries']));
    await appendFile(
      path,
      [
        line({ msg: 'request', route: 'chunked-summaries', droppedMessages: 0, summaryOffered: true }),
        line({ msg: 'request', route: 'chunked-summaries', droppedMessages: 3 }),
        line({ msg: 'request', route: 'chunked', droppedMessages: 3, summaryOffered: true }),
        line({ msg: 'summary job did not complete', route: 'chunked-summaries', outcome: 'retrying' }),
      ].join('') + '{"msg":"summary job","route":"chunked-sum',
    );
    await jobs.read();
    expect({ requests: jobs.requests, offered: jobs.offered, ended: jobs.ended }).toEqual({ requests: 2, offered: 1, ended: 0 });
    // The line cut off mid-write is read whole once the rest arrives.
    await appendFile(path, 'maries","outcome":"stored"}\n');
    await jobs.read();
    expect({ requests: jobs.requests, offered: jobs.offered, ended: jobs.ended }).toEqual({ requests: 2, offered: 1, ended: 1 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
