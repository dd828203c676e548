// The inspector page (GET /contextd/ui/), as a person sees it: a real contextd
// in front of the fake upstream, a conversation made through it with the
// official openai client (a tool call exchange and a message that is markup),
// then the page opened in headless Chromium with the API key typed in. What the
// page shows is checked against the conversation API's own answers. Without a
// browser the browser suite is skipped (with CI set it fails); the HTTP checks
// (headers, the file allowlist, `ui.enabled: false`) always run.
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type OpenAI from 'openai';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import type { ChatMessage } from '../../src/domain.js';
import { resolveTenant } from '../../src/http/conversation-identity.js';
import { API_KEY, clientFor, startInFrontOf, storedMessages, type StoredRow } from '../integration/harness.js';
import { browserAvailability, launchBrowser } from '../support/browser.js';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { describeWithService } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const ADMIN_TOKEN = 'inspector-admin-token-0123456789';
const SCRIPT = '<script>window.__pwned = 1</script>';
const SYSTEM: OpenAI.ChatCompletionSystemMessageParam = { role: 'system', content: 'You are the teapot shop assistant. Answer in one line.' };
const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'lookup', description: 'Look a teapot up', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } },
];
/** Small enough that the first turns no longer fit: the page has messages to grey out. */
const BUDGET = 260;
/** The model whose route keeps a rolling summary, for the conversation the screenshot shows. */
const SUMMARISED_MODEL = 'gpt-4o';

// The page's globals, for the functions puppeteer runs in the browser: only what they use, declared
// in this module, since the project's tsconfig has no DOM lib (adding it would change every file's globals).
interface DomNode {
  textContent: string | null;
  innerText: string;
  hidden: boolean;
  dataset: Record<string, string | undefined>;
  classList: { contains(name: string): boolean };
  querySelector(selector: string): DomNode | null;
  querySelectorAll(selector: string): Iterable<DomNode>;
}
declare const window: { __pwned?: number; __violations: string[] };
declare const document: {
  cookie: string;
  getElementById(id: string): DomNode | null;
  querySelector(selector: string): DomNode | null;
  addEventListener(type: 'securitypolicyviolation', listener: (event: { violatedDirective: string; blockedURI: string }) => void): void;
};
declare const sessionStorage: { length: number; getItem(key: string): string | null; clear(): void };
declare const localStorage: { length: number };
declare function getComputedStyle(node: DomNode): { display: string; color: string };

interface Context {
  route: string;
  budget: { max_context_tokens: number; used_tokens: number; free_tokens: number };
  tokens: Record<string, number>;
  summary: { covers_seq: number; tokens: number; text: string; sent: boolean } | null;
  window: { first_seq: number | null; last_seq: number | null; messages: { seq: number; role: string; tokens: number }[] };
  left_out: { seq: number; role: string; tokens: number; reason: string }[];
}

interface MessagesPage {
  summary: { covers_seq: number; tokens: number; text: string } | null;
}

type Body = { messages: ChatMessage[] };
const isSummaryCall = (request: RecordedRequest): boolean => (request.json as Body).messages[0]?.content === DEFAULT_SUMMARY_PROMPT;

/** Replies by what is asked, so background summary calls can come at any moment without taking a scripted reply. */
function reply(request: RecordedRequest): Behaviour {
  if (isSummaryCall(request)) return { kind: 'text', content: 'Ana collects blue teapots; she asked about teapot prices and colours.' };
  const last = (request.json as Body).messages.at(-1);
  if (last?.role === 'tool') return { kind: 'text', content: 'Teapot 5 is blue.' };
  if (typeof last?.content === 'string' && last.content.includes('teapot 5')) {
    return { kind: 'tool_calls', toolCalls: [{ id: 'call_teapot_5', name: 'lookup', arguments: { q: 'teapot 5' } }] };
  }
  return { kind: 'text' }; // echo: <the user's message>
}

/** A conversation through contextd: small talk, the markup message, a tool call exchange, then enough turns to push the first ones out. */
async function converse(contextd: ContextdProcess, conversation: string, model: string): Promise<StoredRow[]> {
  const client = clientFor(contextd, conversation);
  const ask = async (messages: OpenAI.ChatCompletionMessageParam[]): Promise<OpenAI.ChatCompletionMessage> =>
    (await client.chat.completions.create({ model, messages: [SYSTEM, ...messages], tools: TOOLS })).choices[0]!.message;

  await ask([{ role: 'user', content: 'My name is Ana and I collect blue teapots.' }]);
  await ask([{ role: 'user', content: SCRIPT }]);
  const question: OpenAI.ChatCompletionUserMessageParam = { role: 'user', content: 'What colour is teapot 5?' };
  const call = await ask([question]);
  expect(call.tool_calls).toHaveLength(1);
  await ask([question, call, { role: 'tool', tool_call_id: call.tool_calls![0]!.id, content: JSON.stringify({ colour: 'blue', price_eur: 42 }) }]);
  for (const n of [6, 7, 8]) await ask([{ role: 'user', content: `How much is teapot ${n}? It has a ${n}-cup capacity and a bamboo handle.` }]);
  // user, assistant ×2; user, assistant(tool_calls), tool, assistant; then 3 × (user, assistant).
  let rows: StoredRow[] = [];
  await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= 14, { message: () => `14 stored messages (have ${rows.length})` });
  return rows;
}

async function contextOf(contextd: ContextdProcess, conversation: string, model: string): Promise<Context> {
  const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/context?model=${model}`, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(res.status, `GET …/${conversation}/context`).toBe(200);
  return (await res.json()) as Context;
}

let upstream: FakeUpstream;
let contextd: ContextdProcess;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream({ defaultBehaviour: reply });
  contextd = await startInFrontOf(upstream, {
    admin: { token: ADMIN_TOKEN },
    defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 60 }, summary: { enabled: false } },
    routes: [{ name: 'summarised', match: { model: SUMMARISED_MODEL }, summary: { enabled: true, trigger_tokens: 60, model: 'gpt-4o-mini' } }],
  });
}, 60_000);

afterAll(async () => {
  await stopAll();
  await upstream?.close();
});

describe('the inspector page over HTTP', () => {
  test('index.html, its script and its stylesheet, each with its content type and the strict headers', async () => {
    for (const [path, type] of [
      ['/contextd/ui/', 'text/html; charset=utf-8'],
      ['/contextd/ui/index.html', 'text/html; charset=utf-8'],
      ['/contextd/ui/inspector.js', 'text/javascript; charset=utf-8'],
      ['/contextd/ui/inspector.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await fetch(`${contextd.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toBe(type);
      expect(res.headers.get('content-security-policy'), path).toBe(CSP);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(res.headers.get('cache-control'), path).toBe('no-store');
      const text = await res.text();
      expect(text.length, path).toBeGreaterThan(100);
    }
    // No inline script or style for the CSP to refuse: the page works under it as served.
    const html = await (await fetch(`${contextd.url}/contextd/ui/`)).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\bstyle=|\bon[a-z]+=/i);
  });

  test('/contextd/ui redirects to /contextd/ui/; any other file, and any method but GET and HEAD, is a 404', async () => {
    const redirect = await fetch(`${contextd.url}/contextd/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
    expect(new URL(redirect.headers.get('location')!, `${contextd.url}/contextd/ui`).pathname).toBe('/contextd/ui/');
    await redirect.arrayBuffer();
    const head = await fetch(`${contextd.url}/contextd/ui/inspector.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    for (const path of ['/contextd/ui/package.json', '/contextd/ui/ui/index.html', '/contextd/ui/index.html/', '/contextd/ui/inspector.js.map', '/contextd/uix']) {
      const res = await fetch(`${contextd.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code, path).toBe('not_found');
    }
    const post = await fetch(`${contextd.url}/contextd/ui/`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(404);
    await post.arrayBuffer();
  });

  test('with ui.enabled: false the page is not there: 404 like any unknown path', async () => {
    const off = await startInFrontOf(upstream, { ui: { enabled: false } });
    for (const path of ['/contextd/ui/', '/contextd/ui', '/contextd/ui/inspector.js']) {
      const res = await fetch(`${off.url}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-security-policy'), path).toBeNull();
      await res.arrayBuffer();
    }
    expect(await off.stop()).toBe(0);
  });
});

describeWithService(
  browserAvailability(),
  'the inspector page in a browser',
  () => {
    const conversation = `inspector-${process.pid}`;
    const summarised = `inspector-summary-${process.pid}`;
    let browser: Browser;
    let page: Page;
    let dir: string;
    let rows: StoredRow[];
    const pageErrors: string[] = [];
    /** Every URL the page asked for, across all the tests. */
    const requested: string[] = [];

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'contextd-inspector-'));
      rows = await converse(contextd, conversation, 'gpt-4o-mini');
      browser = await launchBrowser();
      page = await browser.newPage();
      page.on('request', (request) => requested.push(request.url()));
      page.on('pageerror', (error) => pageErrors.push(`page error: ${String(error)}`));
      page.on('console', (message) => {
        if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
      });
      // Any CSP violation (an inline script or style the policy refused) is recorded before the page's own script runs.
      await page.evaluateOnNewDocument(() => {
        const seen: string[] = [];
        Object.defineProperty(window, '__violations', { value: seen });
        document.addEventListener('securitypolicyviolation', (event) => seen.push(`${event.violatedDirective}: ${event.blockedURI}`));
      });
    }, 60_000);

    // The screenshots stay in the temp dir (its path is printed) for a person to look at.
    afterAll(async () => {
      await browser?.close();
    });

    async function signIn(token: string, options: { tenant?: string; model?: string } = {}): Promise<void> {
      await page.goto(`${contextd.url}/contextd/ui/`, { waitUntil: 'load' });
      await page.evaluate(() => sessionStorage.clear());
      await page.reload({ waitUntil: 'load' });
      await page.type('#token', token);
      if (options.tenant !== undefined) await page.type('#tenant', options.tenant);
      if (options.model !== undefined) await page.type('#model', options.model);
      await page.click('#auth button[type=submit]');
    }

    async function open(id: string): Promise<void> {
      await page.waitForSelector(`#conversation-list li[data-id="${id}"] button`, { timeout: 10_000 });
      await page.click(`#conversation-list li[data-id="${id}"] button`);
      await page.waitForFunction((want: string) => document.getElementById('conversation-title')?.textContent === want && document.getElementById('status')?.textContent?.startsWith('Showing'), { timeout: 10_000 }, id);
    }

    test('lists the conversation, shows its messages with seqs, roles, tokens and the tool call, and the markup message as text', async () => {
      await signIn(API_KEY, { model: 'gpt-4o-mini' });
      // The listing's message_count is the last seq, not how many are held: the page says so.
      await page.waitForSelector(`#conversation-list li[data-id="${conversation}"] .conversation-meta`, { timeout: 10_000 });
      const meta = await page.$eval(`#conversation-list li[data-id="${conversation}"] .conversation-meta`, (node) => node.textContent);
      expect(meta).toMatch(new RegExp(`^last seq ${rows.at(-1)!.seq} · no summary · `));
      await open(conversation);
      expect(await page.$eval('#messages-caption', (node) => node.textContent)).toContain(`${rows.length} stored messages, last seq ${rows.at(-1)!.seq}`);

      const shown = await page.$$eval('#message-rows tr', (trs) =>
        trs.map((tr) => ({
          seq: Number((tr as DomNode).dataset.seq),
          role: tr.querySelector('.role')?.textContent,
          tokens: Number(tr.querySelector('.tokens')?.textContent),
          text: [...tr.querySelectorAll('.content .text')].map((node) => node.textContent).join('\n'),
          calls: [...tr.querySelectorAll('.tool-call')].map((node) => node.textContent),
          result: tr.querySelector('.content .muted')?.textContent,
        })),
      );
      expect(shown.map(({ seq, role, tokens }) => ({ seq, role, tokens }))).toEqual(rows.map((row) => ({ seq: row.seq, role: row.message.role, tokens: row.tokens })));

      const callRow = shown.find((row) => row.calls.length > 0);
      expect(callRow?.calls).toEqual([expect.stringContaining('lookup({"q":"teapot 5"})')]);
      expect(callRow?.calls[0]).toContain('call_teapot_5');
      expect(shown.find((row) => row.role === 'tool')).toMatchObject({ result: 'result of call_teapot_5', text: JSON.stringify({ colour: 'blue', price_eur: 42 }) });

      // The stored <script> is text on the page: visible, not an element, never run.
      const scriptRow = shown.find((row) => row.role === 'user' && row.text === SCRIPT);
      expect(scriptRow, 'the markup message, shown as its text').toBeDefined();
      expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
      expect(await page.$$eval('#message-rows script, #message-rows *[onerror]', (nodes) => nodes.length)).toBe(0);
      expect(await page.$eval(`#message-rows tr[data-seq="${scriptRow!.seq}"] .text`, (node) => (node as DomNode).innerText)).toBe(SCRIPT);

      // The stylesheet loaded under the CSP, nothing was refused, and the key sits in this tab's session storage only.
      expect(await page.$eval('#context-bar', (node) => getComputedStyle(node).display)).toBe('flex');
      expect(await page.evaluate(() => window.__violations)).toEqual([]);
      expect(await page.evaluate(() => [sessionStorage.getItem('contextd.inspector.token'), localStorage.length, document.cookie])).toEqual([API_KEY, 0, '']);
      expect(pageErrors).toEqual([]);
    });

    test("the bar's parts add up to what the context endpoint counts, and the messages left out are greyed", async () => {
      const context = await contextOf(contextd, conversation, 'gpt-4o-mini');
      const parts = await page.$$eval('#context-bar [data-part]', (nodes) => nodes.map((node) => [(node as DomNode).dataset.part!, Number((node as DomNode).dataset.tokens)] as const));
      const byPart = Object.fromEntries(parts);
      expect(parts.reduce((sum, [, tokens]) => sum + tokens, 0)).toBe(context.budget.used_tokens + context.budget.free_tokens);
      for (const [name, tokens] of Object.entries(context.tokens)) expect(byPart[name], name).toBe(tokens);
      expect(byPart.free).toBe(context.budget.free_tokens);
      expect(await page.$eval('#context-caption', (node) => node.textContent)).toContain(`${context.budget.used_tokens} of ${context.budget.max_context_tokens} tokens`);

      const leftOut = context.left_out.map((m) => m.seq).filter((seq) => rows.some((row) => row.seq === seq));
      expect(leftOut.length, 'the budget leaves the first turns out').toBeGreaterThan(0);
      const greyed = await page.$$eval('#message-rows tr.left-out', (trs) => trs.map((tr) => Number((tr as DomNode).dataset.seq)));
      expect(greyed).toEqual(leftOut);
      const inWindow = await page.$$eval('#message-rows tr.in-window', (trs) => trs.map((tr) => Number((tr as DomNode).dataset.seq)));
      expect(inWindow).toEqual(context.window.messages.map((m) => m.seq));
      // Greyed as rendered, not only by class: the stylesheet gives left-out rows the muted colour.
      const [greyedColour, normalColour] = await page.evaluate(
        (first: number, last: number) => [first, last].map((seq) => getComputedStyle(document.querySelector(`#message-rows tr[data-seq="${seq}"] td.content`)!).color),
        leftOut[0]!,
        context.window.last_seq!,
      );
      expect(greyedColour).not.toBe(normalColour);

      const screenshot = join(dir, 'inspector.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect((await stat(screenshot)).size).toBeGreaterThan(10_000);
    });

    test('a conversation with a rolling summary: what it covers, its text as text, and its part of the bar', async () => {
      await converse(contextd, summarised, SUMMARISED_MODEL);
      // Summaries are written in the background: wait until one is stored and no summary call is still out,
      // so the page and the API below see the same one.
      let coversSeq: number | undefined;
      await waitFor(
        async () => {
          const res = await fetch(`${contextd.url}/contextd/v1/conversations/${summarised}/messages?limit=1`, { headers: { authorization: `Bearer ${API_KEY}` } });
          const seen = ((await res.json()) as MessagesPage).summary?.covers_seq;
          const isSettled = seen !== undefined && seen === coversSeq && upstream.chatRequests().filter(isSummaryCall).every((request) => request.outcome !== 'pending');
          coversSeq = seen;
          return isSettled;
        },
        { timeoutMs: 15_000, intervalMs: 200, message: 'a summary of the conversation, settled' },
      );

      await signIn(API_KEY, { model: SUMMARISED_MODEL });
      await open(summarised);
      const context = await contextOf(contextd, summarised, SUMMARISED_MODEL);
      expect(context.route).toBe('summarised');
      expect(context.summary).not.toBeNull();
      expect(await page.$eval('#summary-text', (node) => node.textContent)).toBe(context.summary!.text);
      expect(await page.$eval('#summary-caption', (node) => node.textContent)).toContain(`Covers seq 1–${context.summary!.covers_seq}`);
      const parts = await page.$$eval('#context-bar [data-part]', (nodes) => nodes.map((node) => [(node as DomNode).dataset.part!, Number((node as DomNode).dataset.tokens)] as const));
      expect(Object.fromEntries(parts).summary).toBe(context.tokens.summary);
      expect(parts.reduce((sum, [, tokens]) => sum + tokens, 0)).toBe(context.budget.used_tokens + context.budget.free_tokens);
      expect(pageErrors).toEqual([]);

      const screenshot = join(dir, 'inspector-summary.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect((await stat(screenshot)).size).toBeGreaterThan(10_000);
      // docs/inspector.png, the README's picture, is this screenshot copied by hand; the test writes only its temp dir.
      console.log(`inspector screenshots: ${dir}/inspector.png, ${screenshot}`);
    });

    test('the admin token with the tenant field reaches the same conversations; without the tenant the page says what is missing', async () => {
      const tenant = resolveTenant({ authorization: `Bearer ${API_KEY}` }, { kind: 'authorization' });
      await signIn(ADMIN_TOKEN);
      await page.waitForFunction(() => document.getElementById('status')?.classList.contains('error'), { timeout: 10_000 });
      expect(await page.$eval('#status', (node) => node.textContent)).toContain('missing_tenant');
      expect(await page.$eval('#conversations', (node) => (node as DomNode).hidden)).toBe(true);

      await signIn(ADMIN_TOKEN, { tenant });
      await open(conversation);
      expect(await page.$$eval('#message-rows tr', (trs) => trs.length)).toBe(rows.length);

      await page.click('#forget');
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
      expect(await page.$eval('#conversation', (node) => (node as DomNode).hidden)).toBe(true);
    });

    // Runs last: what every test above made the page do.
    test('the page only ever calls the conversation API, besides its own files', async () => {
      const origin = new URL(contextd.url).origin;
      const PAGE_FILES = ['/contextd/ui/', '/contextd/ui/inspector.js', '/contextd/ui/inspector.css'];
      // The icon is `data:,` in the page itself: no request leaves the browser for it.
      const network = requested.filter((url) => !url.startsWith('data:'));
      for (const url of network) {
        const { origin: to, pathname } = new URL(url);
        expect(to, url).toBe(origin);
        expect(PAGE_FILES.includes(pathname) || pathname === '/contextd/v1/conversations' || pathname.startsWith('/contextd/v1/conversations/'), url).toBe(true);
      }
      const paths = new Set(network.map((url) => new URL(url).pathname));
      for (const file of PAGE_FILES) expect(paths, file).toContain(file);
      expect([...paths].filter((path) => path.startsWith('/contextd/v1/conversations')).length).toBeGreaterThan(2);
    });
  },
  { timeoutMs: 120_000 },
);
