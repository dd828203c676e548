// The floor: the least any HTTP proxy in Node can add. A node:http server and
// one undici Agent (configured as contextd's upstream client is) that pass
// method, path, headers and body to the upstream and the reply back, and
// nothing else: no parsing, no logging, no metrics. Run as its own process:
//   node dist/bench/floor-proxy.js <upstream origin> [stream|request]
// Prints {"url": ...} on its first stdout line.
//
// `stream` (the default, the floor the bench measures): undici's stream()
// writes the upstream body straight into the client's response (no Readable
// in between, no pipeline), request headers go as node's flat rawHeaders
// array minus the hop-by-hop ones, and the reply's headers object undici
// builds is handed to writeHead as it is, hop-by-hop names deleted in place.
// `request`: the plain way, `agent.request()` and a pipe of its body into the
// response, header objects copied; the bench measures it beside the floor
// with --floor-variants, to show the floor is not the slower of the two.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Agent, type Dispatcher } from 'undici';
import type { ListeningLine } from './protocol.js';

// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection; undici refuses most of them.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'host']);

/** Node's rawHeaders minus the hop-by-hop ones, still flat ([name, value, …]): undici takes that shape. */
function requestHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/** The reply's headers, hop-by-hop names removed from undici's own object. */
function replyHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  for (const name of HOP_BY_HOP) if (name in headers) delete headers[name];
  return headers;
}

function failed(res: ServerResponse): void {
  if (!res.headersSent) res.writeHead(502).end();
  else res.destroy();
}

function viaStream(agent: Agent, origin: string, req: IncomingMessage, res: ServerResponse): void {
  const options: Dispatcher.RequestOptions = {
    origin,
    path: req.url ?? '/',
    method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: requestHeaders(req.rawHeaders),
    body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
  };
  agent
    .stream(options, ({ statusCode, headers }) => {
      res.writeHead(statusCode, replyHeaders(headers));
      return res;
    })
    .catch(() => failed(res));
}

async function viaRequest(agent: Agent, origin: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const copy = (headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    return out;
  };
  const upstream = await agent.request({
    origin,
    path: req.url ?? '/',
    method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: copy(req.headers),
    body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
  });
  res.writeHead(upstream.statusCode, copy(upstream.headers));
  await pipeline(upstream.body, res);
}

function serve(): void {
  const target = process.argv[2];
  const variant = process.argv[3] ?? 'stream';
  if (target === undefined || (variant !== 'stream' && variant !== 'request')) throw new Error('usage: floor-proxy.js <upstream origin> [stream|request]');
  const origin = new URL(target).origin;
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    if (variant === 'stream') viaStream(agent, origin, req, res);
    else viaRequest(agent, origin, req, res).catch(() => failed(res));
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
