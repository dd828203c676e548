// PushedResponse over a real loopback HTTP server and undici Agent: the head,
// the body's chunks in order whether they came before or after the consumer,
// back-pressure, cancelling, aborting and a body cut short.
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { PushedResponse } from '../../../src/upstream/pushed-response.js';

let server: Server | undefined;
let agent: Agent | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
  await agent?.close();
  agent = undefined;
});

/** A server answering every request with `respond`, and a PushedResponse dispatched to it. */
async function dispatch(respond: (res: ServerResponse) => void, signal = new AbortController().signal): Promise<PushedResponse> {
  server = createServer((_req, res) => respond(res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  agent = new Agent();
  const response = new PushedResponse(signal);
  agent.dispatch({ origin: `http://127.0.0.1:${port}`, path: '/', method: 'POST', body: '{}' }, response);
  return response;
}

function waitFor(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => (condition() ? resolve() : void setImmediate(check));
    check();
  });
}

describe('PushedResponse', () => {
  test('the head, then every chunk in order, including those that arrived before the consumer', async () => {
    // Head and body leave in one write, so the body is parsed in the tick of the head, before anyone consumes it.
    const response = await dispatch((res) => {
      res.writeHead(201, { 'x-one': 'a', 'content-length': '18' });
      res.end('first second third');
    });
    const head = await response.head;
    expect(head.status).toBe(201);
    expect(head.headers['x-one']).toBe('a');
    const chunks: string[] = [];
    await response.consume((chunk) => {
      chunks.push(chunk.toString());
      return true;
    });
    expect(chunks.join('')).toBe('first second third');
  });

  test('a consumer that returns false gets nothing more until resume(), then the rest in order', async () => {
    let release = (): void => undefined;
    const response = await dispatch((res) => {
      res.writeHead(200);
      res.write('a');
      release = () => res.end('bcd');
    });
    await response.head;
    const chunks: string[] = [];
    let isPaused = false;
    const consumed = response.consume((chunk) => {
      expect(isPaused).toBe(false);
      chunks.push(chunk.toString());
      isPaused = true;
      return false;
    });
    await waitFor(() => chunks.length === 1);
    // The rest is sent while the consumer is paused: the consumer's own check says none reaches it before resume().
    release();
    let isDone = false;
    void consumed.then(() => (isDone = true));
    while (!isDone) {
      isPaused = false;
      response.resume();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(chunks.join('')).toBe('abcd');
  });

  test('cancel() resolves the consumer and stops the upstream call', async () => {
    let closed = false;
    const response = await dispatch((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      res.on('close', () => (closed = true));
    });
    await response.head;
    const chunks: string[] = [];
    await response.consume((chunk) => {
      chunks.push(chunk.toString());
      response.cancel();
      return false;
    });
    expect(chunks).toEqual(['data: 1\n\n']);
    await waitFor(() => closed);
  });

  test("the signal's abort rejects the head when it comes first, and the body when it comes after", async () => {
    const beforeHead = new AbortController();
    const early = await dispatch(() => beforeHead.abort(), beforeHead.signal);
    await expect(early.head).rejects.toThrow();

    server?.closeAllConnections();
    server?.close();
    await agent?.close();
    const afterHead = new AbortController();
    const late = await dispatch((res) => {
      res.writeHead(200);
      res.write('part');
    }, afterHead.signal);
    await late.head;
    const consumed = late.consume(() => {
      afterHead.abort();
      return true;
    });
    await expect(consumed).rejects.toMatchObject({ name: 'AbortError' });
  });

  test('a body cut short rejects the consumer after the chunks that came', async () => {
    const response = await dispatch((res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part', () => res.destroy());
    });
    await response.head;
    const chunks: string[] = [];
    await expect(
      response.consume((chunk) => {
        chunks.push(chunk.toString());
        return true;
      }),
    ).rejects.toThrow();
    expect(chunks.join('')).toBe('only part');
  });
});
