#!/usr/bin/env node
import { main } from './main.js';

main(process.argv.slice(2), process.env).then(
  (exitCode) => {
    if (exitCode !== undefined) process.exitCode = exitCode;
  },
  (error: unknown) => {
    console.error('contextd failed to start:', error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
