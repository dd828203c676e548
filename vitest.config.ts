import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration suites spawn real processes and servers on port 0; two workers fit the 2-core machines.
    maxWorkers: 2,
  },
});
