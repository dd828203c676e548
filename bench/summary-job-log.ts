// contextd's own log as a record of its rolling-summary jobs, read as the log
// grows: bench/prefix-cache.ts waits on it after each turn, so that every job
// a turn started has ended before the next turn (as a user's reading time
// would have it), and every run of the bench is the same.

import { open } from 'node:fs/promises';

/**
 * contextd's log, read as it grows: how many summary jobs its requests offered
 * (a request line with `summaryOffered`: one that left history out, or, on a
 * chunked route, one near a step, whose job writes the summary ahead) and how
 * many ended (a "summary job" line of any outcome but retrying). One conversation per route, one turn at a time, so
 * every offer finds no job running and gets exactly one outcome.
 */
export class SummaryJobLog {
  #offset = 0;
  #partial = '';
  requests = 0;
  offered = 0;
  ended = 0;

  constructor(
    private readonly logPath: string,
    private readonly summaryRoutes: ReadonlySet<string>,
  ) {}

  async read(): Promise<void> {
    const handle = await open(this.logPath, 'r');
    try {
      const { size } = await handle.stat();
      if (size <= this.#offset) return;
      const buffer = Buffer.alloc(size - this.#offset);
      await handle.read(buffer, 0, buffer.length, this.#offset);
      this.#offset = size;
      const lines = (this.#partial + buffer.toString('utf8')).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) this.#count(line);
    } finally {
      await handle.close();
    }
  }

  #count(line: string): void {
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as { msg?: string; route?: string; summaryOffered?: boolean; outcome?: string };
    if (entry.route === undefined || !this.summaryRoutes.has(entry.route)) return;
    if (entry.msg === 'request') {
      this.requests += 1;
      if (entry.summaryOffered === true) this.offered += 1;
    } else if (entry.msg?.startsWith('summary job') && entry.outcome !== 'retrying') {
      this.ended += 1;
    }
  }
}
