// Micro-benchmarks of one function: the time of a call, on a shared machine.

/** Best of `rounds` rounds of ~100 ms each, in µs per call: the least the machine's other work let it cost. */
export function microseconds(run: () => unknown, rounds = 7): number {
  for (let i = 0; i < 20; i++) run();
  let best = Infinity;
  for (let round = 0; round < rounds; round++) {
    let calls = 0;
    const startedAt = performance.now();
    let elapsedMs: number;
    do {
      run();
      calls++;
    } while ((elapsedMs = performance.now() - startedAt) < 100);
    best = Math.min(best, (elapsedMs / calls) * 1000);
  }
  return best;
}
