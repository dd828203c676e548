// relayResponse over a real loopback HTTP server: when `onClientHasAll` fires
// relative to the body's chunks, for each way a client can know it has the
// whole reply.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { relayResponse } from '../../../src/upstream/relay-response.js';

let server: Server | undefined;

afterEach(async () => {
  server?.close();
  server = undefined;
});

/** Relays `chunks` with `headers` to a real client and returns what happened, in order. */
async function relay(headers: Record<string, string>, chunks: string[]): Promise<{ events: string[]; received: string }> {
  const events: string[] = [];
  async function* body(): AsyncGenerator<Buffer> {
    for (const [index, chunk] of chunks.entries()) {
      yield Buffer.from(chunk);
      events.push(`written ${index}`);
    }
    events.push('upstream ended');
  }
  server = createServer((_req, res) => {
    void relayResponse(
      res,
      // Pulled only as relayResponse asks (a Readable would read ahead): "upstream ended" marks the pull after the last chunk.
      { status: 200, headers, body: body() as unknown as Readable },
      {},
      { onChunk: (chunk) => events.push(`seen ${chunk.toString()}`), onClientHasAll: () => events.push('client has all') },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const response = await fetch(`http://127.0.0.1:${port}/`);
  const received = await response.text();
  return { events, received };
}

describe('relayResponse', () => {
  test('with a content-length, the client has all with the write of the last bytes, before the upstream ends', async () => {
    const { events, received } = await relay({ 'content-type': 'application/json', 'content-length': '11' }, ['{"a":', '"bcd"}']);
    expect(received).toBe('{"a":"bcd"}');
    expect(events.filter((event) => event === 'client has all')).toHaveLength(1);
    expect(events.indexOf('client has all')).toBe(events.indexOf('seen "bcd"}') + 1);
    expect(events.indexOf('client has all')).toBeLessThan(events.indexOf('upstream ended'));
  });

  test("an event stream's data: [DONE] gives the client all", async () => {
    const { events } = await relay({ 'content-type': 'text/event-stream' }, ['data: {"x":1}\n\n', 'data: [DONE]\n\n']);
    expect(events.filter((event) => event === 'client has all')).toHaveLength(1);
    expect(events.indexOf('client has all')).toBe(events.indexOf('seen data: [DONE]\n\n') + 1);
    expect(events.indexOf('client has all')).toBeLessThan(events.indexOf('upstream ended'));
  });

  test('without either, the end does', async () => {
    const { events, received } = await relay({ 'content-type': 'text/plain' }, ['one ', 'two']);
    expect(received).toBe('one two');
    expect(events.at(-1)).toBe('client has all');
    expect(events.indexOf('client has all')).toBeGreaterThan(events.indexOf('upstream ended'));
  });

  describe("an event stream's head", () => {
    /** Serves one event stream whose body is `body`; records when relayResponse flushes the head on its own. */
    async function serve(body: PassThrough, events: string[]): Promise<number> {
      server = createServer((_req, res) => {
        const flushHeaders = res.flushHeaders.bind(res);
        res.flushHeaders = () => {
          events.push('head flushed alone');
          flushHeaders();
        };
        void relayResponse(res, { status: 200, headers: { 'content-type': 'text/event-stream' }, body }, {});
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return (server.address() as AddressInfo).port;
    }

    test('goes to the client at once while no event has come (a model still thinking)', async () => {
      const events: string[] = [];
      const body = new PassThrough();
      const port = await serve(body, events);
      const response = await fetch(`http://127.0.0.1:${port}/`);
      events.push('client has the head');
      body.end('data: {"x":1}\n\n');
      expect(await response.text()).toBe('data: {"x":1}\n\n');
      expect(events).toEqual(['head flushed alone', 'client has the head']);
    });

    test('leaves with the first event when that came with it: one write, not two', async () => {
      const events: string[] = [];
      const body = new PassThrough();
      body.write('data: {"x":1}\n\n');
      const port = await serve(body, events);
      const response = fetch(`http://127.0.0.1:${port}/`);
      body.end('data: [DONE]\n\n');
      expect(await (await response).text()).toBe('data: {"x":1}\n\ndata: [DONE]\n\n');
      expect(events).toEqual([]);
    });
  });
});
