// The floor: the least any HTTP proxy in Node can add. A node:http server and one
// undici Agent (configured as contextd's upstream client is) that pipe method,
// path, headers and body to the upstream and the reply back, and nothing else:
// no parsing, no logging, no metrics. Run as its own process:
//   node dist/bench/floor-proxy.js <upstream origin>
// Prints {"url": ...} on its first stdout line.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Agent } from 'undici';
import type { ListeningLine } from './protocol.js';

// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection; undici refuses most of them.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'host']);

function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

async function relay(agent: Agent, origin: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const upstream = await agent.request({
    origin,
    path: req.url ?? '/',
    method: (req.method ?? 'GET') as 'POST',
    headers: endToEnd(req.headers),
    body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
  });
  res.writeHead(upstream.statusCode, endToEnd(upstream.headers));
  await pipeline(upstream.body, res);
}

function serve(): void {
  const target = process.argv[2];
  if (target === undefined) throw new Error('usage: floor-proxy.js <upstream origin>');
  const origin = new URL(target).origin;
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    relay(agent, origin, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const listening: ListeningLine = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    process.stdout.write(JSON.stringify(listening) + '\n');
  });
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    void agent.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('disconnect', stop);
}

serve();
