import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { expect, test } from 'vitest';
import { watchClientDeparture } from '../../../src/upstream/client-departure.js';

/** The part of a ServerResponse the watcher reads: its 'close' event and whether it finished. */
function fakeResponse(): ServerResponse & EventEmitter {
  return Object.assign(new EventEmitter(), { writableFinished: false }) as unknown as ServerResponse & EventEmitter;
}

test('a client that leaves before it has its reply cancels, and the upstream call is aborted', async () => {
  const res = fakeResponse();
  let cancelled = 0;
  const departure = watchClientDeparture(res, () => cancelled++);
  res.emit('close');
  await departure.judged();
  expect(cancelled).toBe(1);
  expect(departure.signal.aborted).toBe(true);
});

test('a client that leaves after it has its reply does not cancel; the rest of the upstream body is dropped', async () => {
  const res = fakeResponse();
  let cancelled = 0;
  const departure = watchClientDeparture(res, () => cancelled++);
  departure.markClientHasAll();
  res.emit('close');
  await departure.judged();
  expect(cancelled).toBe(0);
  expect(departure.signal.aborted).toBe(true);
});

test('the departure is judged after the reader catches up with what the client was sent (a compressed terminal event decoded late)', async () => {
  const res = fakeResponse();
  let cancelled = 0;
  let finishCatchUp: () => void = () => {};
  const departure = watchClientDeparture(res, () => cancelled++);
  departure.catchUpBeforeJudging(() => new Promise<void>((resolve) => (finishCatchUp = resolve)));
  res.emit('close');
  // While the reader catches up, nothing is decided and the upstream call goes on.
  await Promise.resolve();
  expect(departure.signal.aborted).toBe(false);
  departure.markClientHasAll(); // the reader decoded the terminal event
  finishCatchUp();
  await departure.judged();
  expect(cancelled).toBe(0);
  expect(departure.signal.aborted).toBe(true);
});

test('a reader that fails to catch up counts as not having seen the end: the client cancelled', async () => {
  const res = fakeResponse();
  let cancelled = 0;
  const departure = watchClientDeparture(res, () => cancelled++);
  departure.catchUpBeforeJudging(() => Promise.reject(new Error('corrupt')));
  res.emit('close');
  await departure.judged();
  expect(cancelled).toBe(1);
  expect(departure.signal.aborted).toBe(true);
});

test('a response that finished is not a departure', async () => {
  const res = Object.assign(fakeResponse(), { writableFinished: true });
  let cancelled = 0;
  const departure = watchClientDeparture(res, () => cancelled++);
  res.emit('close');
  await departure.judged();
  expect(cancelled).toBe(0);
  expect(departure.signal.aborted).toBe(false);
});
