// The inspector page: lists a tenant's conversations and shows one (its
// messages, its summary, and the context a request would be sent with now).
// It only calls the conversation API, with the key typed into the page, which
// stays in this tab's session storage. Stored text is untrusted: every value
// reaches the page through textContent or a data attribute, never as markup.

const KEYS = { token: 'contextd.inspector.token', tenant: 'contextd.inspector.tenant', model: 'contextd.inspector.model' };
// Relative to the page (…/contextd/ui/), so it also works behind a gateway that mounts contextd under a prefix.
const API_ROOT = new URL('../v1/conversations', document.baseURI);
const MESSAGE_PAGE = 500;
// Beyond this many messages the page shows the newest pages only; the API holds the rest.
const MAX_MESSAGES = 5000;
// Why a stored message is not in the context: a short label, and the whole reason on hover.
const LEFT_OUT_REASONS = {
  covered_by_summary: ['summarised', 'covered by the summary, which is sent instead'],
  over_budget: ['over budget', 'older than what fits the budget'],
  unsendable_tool_sequence: ['tool exchange', 'the window stops at a tool call exchange that cannot be sent whole'],
};
// The bar's parts, in prompt order; used + free = the budget (or used alone, when over it).
const BAR_PARTS = [
  { key: 'instructions', label: 'instructions', help: 'pinned system and developer messages' },
  { key: 'summary', label: 'summary', help: 'the rolling summary, sent as a system message' },
  { key: 'window', label: 'window', help: 'recent history that fits' },
  { key: 'turn', label: 'new turn', help: "the request's own new messages (none for a look at the stored conversation)", hideWhenZero: true },
  { key: 'fixed', label: 'overhead', help: 'per-message overhead and reply priming' },
  { key: 'free', label: 'free', help: 'budget left for the new turn' },
];

const $ = (id) => {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing from index.html`);
  return found;
};

/** Creates an element; `text` goes in as text, never as markup. */
function el(tag, { className, text, title, data } = {}, ...children) {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  if (title !== undefined) node.title = title;
  for (const [name, value] of Object.entries(data ?? {})) node.dataset[name] = String(value);
  for (const child of children) if (child !== undefined && child !== null) node.append(child);
  return node;
}

function timeEl(iso) {
  if (typeof iso !== 'string') return el('span', { className: 'muted', text: '—' });
  const date = new Date(iso);
  const node = el('time', { text: Number.isNaN(date.getTime()) ? iso : date.toLocaleString() });
  node.dateTime = iso;
  return node;
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const session = {
  get: (name) => sessionStorage.getItem(KEYS[name]) ?? '',
  set: (name, value) => (value === '' ? sessionStorage.removeItem(KEYS[name]) : sessionStorage.setItem(KEYS[name], value)),
};

async function callApi(path, params = {}) {
  const url = new URL(path === '' ? API_ROOT.href : `${API_ROOT.href}/${path}`);
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== '') url.searchParams.set(name, String(value));
  // The API reads ?tenant= only with the admin token; with an API key the key names the tenant.
  if (session.get('tenant') !== '') url.searchParams.set('tenant', session.get('tenant'));
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${session.get('token')}`, accept: 'application/json' },
    cache: 'no-store',
    credentials: 'omit',
  });
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    const error = body?.error;
    throw new ApiError(res.status, typeof error?.message === 'string' ? error.message : res.statusText, error?.code ?? undefined);
  }
  return body;
}

const conversationPath = (id, sub) => `${encodeURIComponent(id)}/${sub}`;

async function fetchAllMessages(id) {
  const pages = [];
  let count = 0;
  let isTruncated = false;
  let after = 0;
  for (;;) {
    const page = await callApi(conversationPath(id, 'messages'), { after, limit: MESSAGE_PAGE });
    pages.push(page);
    count += page.data.length;
    while (count > MAX_MESSAGES && pages.length > 1) {
      count -= pages.shift().data.length;
      isTruncated = true;
    }
    if (!page.has_more || page.data.length === 0) break;
    after = page.next_after;
  }
  return { ...pages.at(-1), data: pages.flatMap((page) => page.data), isTruncated };
}

// ---- status line ----

function showStatus(text, { isError = false } = {}) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function describeError(error) {
  if (error instanceof ApiError) {
    const hint =
      error.status === 401 || error.code === 'invalid_api_key'
        ? ' Check the key.'
        : error.code === 'missing_tenant'
          ? ' With the admin token, fill in the tenant.'
          : '';
    return `The conversation API answered ${error.status}${error.code ? ` (${error.code})` : ''}: ${error.message}${hint}`;
  }
  return `The conversation API could not be reached: ${error instanceof Error ? error.message : String(error)}`;
}

// ---- the conversation list ----

const list = { nextAfter: undefined, selected: undefined };

async function loadConversations({ append = false } = {}) {
  showStatus('Loading conversations…');
  try {
    const page = await callApi('', { limit: 50, after: append ? list.nextAfter : undefined });
    const items = $('conversation-list');
    if (!append) items.replaceChildren();
    for (const conversation of page.data) items.append(conversationItem(conversation));
    list.nextAfter = page.has_more ? page.next_after : undefined;
    $('more-conversations').hidden = list.nextAfter === undefined;
    $('no-conversations').hidden = items.childElementCount > 0;
    $('conversations').hidden = false;
    markSelected();
    showStatus(`${items.childElementCount} conversation${items.childElementCount === 1 ? '' : 's'}${page.has_more ? ' (more below)' : ''}.`);
  } catch (error) {
    if (!append) $('conversations').hidden = true;
    showStatus(describeError(error), { isError: true });
  }
}

const HELD_NOTE = 'Seqs given so far, including messages no longer held (trimmed, expired, covered by the summary or erased). Open the conversation to see the messages held.';

function conversationItem(conversation) {
  const summary = conversation.summary ? `summary to seq ${conversation.summary.covers_seq}` : 'no summary';
  const button = el(
    'button',
    { className: 'conversation', data: { id: conversation.id } },
    el('span', { className: 'conversation-id', text: conversation.id }),
    // message_count is the last seq: every message ever given, not how many are still held (trimmed, expired,
    // folded into the summary or erased ones count too); opening the conversation shows which are held.
    el('span', { className: 'conversation-meta muted', text: `last seq ${conversation.message_count} · ${summary} · `, title: HELD_NOTE }, timeEl(conversation.last_activity_at)),
  );
  button.type = 'button';
  button.addEventListener('click', () => {
    // The hash names the open conversation, so a reload reopens it; the same hash again fires no hashchange.
    if (selectedFromHash() === conversation.id) void openConversation(conversation.id);
    else location.hash = encodeURIComponent(conversation.id);
  });
  return el('li', { data: { id: conversation.id } }, button);
}

function markSelected() {
  for (const item of $('conversation-list').children) {
    const isSelected = item instanceof HTMLElement && item.dataset.id === list.selected;
    item.classList.toggle('selected', isSelected);
    item.querySelector('button')?.setAttribute('aria-current', String(isSelected));
  }
}

// ---- one conversation ----

let openings = 0;

async function openConversation(id) {
  const opening = ++openings;
  list.selected = id;
  markSelected();
  $('conversation').hidden = false;
  $('conversation-title').textContent = id;
  showStatus(`Loading ${id}…`);
  const [messages, context] = await Promise.allSettled([
    fetchAllMessages(id),
    callApi(conversationPath(id, 'context'), { model: session.get('model') }),
  ]);
  if (opening !== openings) return; // opened again, or another one, meanwhile: that answer is newer
  const shown = context.status === 'fulfilled' ? context.value : undefined;
  renderContext(shown, context.status === 'rejected' ? context.reason : undefined);
  if (messages.status === 'rejected') {
    renderSummary(shown?.summary ?? null, undefined);
    $('message-rows').replaceChildren();
    $('messages-caption').textContent = '';
    showStatus(describeError(messages.reason), { isError: true });
    return;
  }
  renderSummary(messages.value.summary, shown?.summary);
  renderMessages(messages.value, shown);
  showStatus(`Showing ${id}.`);
}

function renderContext(context, error) {
  const bar = $('context-bar');
  const legend = $('context-legend');
  const caption = $('context-caption');
  const problem = $('context-error');
  bar.replaceChildren();
  legend.replaceChildren();
  caption.textContent = '';
  problem.hidden = error === undefined;
  problem.textContent = error === undefined ? '' : describeError(error);
  bar.hidden = context === undefined;
  if (context === undefined) return;

  const { budget, tokens } = context;
  const values = { ...tokens, free: budget.free_tokens };
  // A count this page does not know yet still gets its segment, so the bar always adds up to the API's figures.
  const known = new Set(BAR_PARTS.map((part) => part.key));
  const extra = Object.keys(tokens).filter((key) => !known.has(key)).map((key) => ({ key, label: key, help: key, hideWhenZero: true }));
  for (const part of [...BAR_PARTS.slice(0, -1), ...extra, BAR_PARTS.at(-1)]) {
    const value = Number(values[part.key] ?? 0);
    const segment = el('div', { className: `segment part-${part.key}`, title: `${part.label}: ${value} tokens (${part.help})`, data: { part: part.key, tokens: value } });
    // CSSOM, not a style attribute: allowed by the page's style-src 'self'.
    segment.style.flexGrow = String(value);
    segment.hidden = value === 0;
    bar.append(segment);
    if (value === 0 && part.hideWhenZero) continue;
    legend.append(el('li', { className: `part-${part.key}`, title: part.help }, el('span', { className: 'swatch' }), el('span', { text: `${part.label} ` }), el('strong', { text: value })));
  }
  const over = budget.used_tokens - budget.max_context_tokens;
  bar.setAttribute('aria-label', `${budget.used_tokens} of ${budget.max_context_tokens} tokens used`);
  const windowText =
    context.window.first_seq === null ? 'no history in the window' : `window seq ${context.window.first_seq}–${context.window.last_seq} (${context.window.messages.length} messages)`;
  caption.textContent =
    `${budget.used_tokens} of ${budget.max_context_tokens} tokens` +
    (over > 0 ? `, ${over} over the budget` : '') +
    ` · route ${context.route} · model ${context.model ?? '(none given)'} · ${windowText} · ${context.left_out.length}${context.left_out_truncated ? '+' : ''} left out`;
}

function renderSummary(summary, contextSummary) {
  const caption = $('summary-caption');
  const text = $('summary-text');
  if (summary === null || summary === undefined) {
    caption.textContent = 'No summary yet: every stored message is history.';
    text.hidden = true;
    text.textContent = '';
    return;
  }
  const sent = contextSummary === undefined || contextSummary === null ? '' : contextSummary.sent ? ' · sent now' : ' · not sent now (does not fit)';
  caption.replaceChildren(`Covers seq 1–${summary.covers_seq} · ${summary.tokens} tokens${sent}`);
  if (summary.created_at !== undefined) caption.append(' · written ', timeEl(summary.created_at));
  text.textContent = summary.text ?? '';
  text.hidden = false;
}

function renderMessages(page, context) {
  const inWindow = new Set((context?.window.messages ?? []).map((m) => m.seq));
  const leftOut = new Map((context?.left_out ?? []).map((m) => [m.seq, m.reason]));
  const rows = page.data.map((row) => messageRow(row, inWindow.has(row.seq), leftOut.get(row.seq)));
  $('message-rows').replaceChildren(...rows);

  const notes = [`${page.data.length} stored message${page.data.length === 1 ? '' : 's'}, last seq ${page.last_seq}`];
  if (page.earlier_not_retained && page.first_retained_seq !== null) {
    notes.push(`seq 1–${page.first_retained_seq - 1} no longer held by this store (covered by the summary, trimmed or expired)`);
  }
  if (page.isTruncated) notes.push(`only the newest ${page.data.length} are shown`);
  if (context !== undefined) notes.push('greyed: left out of the context');
  $('messages-caption').textContent = notes.join(' · ');
}

function messageRow({ seq, message, tokens }, isInWindow, leftOutReason) {
  const role = typeof message?.role === 'string' ? message.role : 'unknown';
  const [label, reason] = Object.hasOwn(LEFT_OUT_REASONS, leftOutReason ?? '') ? LEFT_OUT_REASONS[leftOutReason] : [String(leftOutReason).replaceAll('_', ' '), String(leftOutReason)];
  const place = leftOutReason !== undefined ? `left out: ${label}` : isInWindow ? 'in window' : '';
  const row = el(
    'tr',
    { className: leftOutReason !== undefined ? 'left-out' : isInWindow ? 'in-window' : '', data: { seq, role } },
    el('td', { className: 'seq', text: seq }),
    el('td', {}, el('span', { className: `role role-${role.replace(/[^a-z]/g, '')}`, text: role })),
    el('td', { className: 'tokens', text: tokens }),
    el('td', { className: 'place', text: place, title: leftOutReason !== undefined ? `left out: ${reason}` : undefined }),
    el('td', { className: 'content' }, ...messageContent(message ?? {})),
  );
  if (leftOutReason !== undefined) row.dataset.leftOut = leftOutReason;
  return row;
}

/** A stored message's parts as text nodes: content, refusal, tool calls, tool results. */
function messageContent(message) {
  const parts = [];
  if (typeof message.name === 'string') parts.push(el('div', { className: 'muted', text: `name: ${message.name}` }));
  if (message.role === 'tool' && typeof message.tool_call_id === 'string') parts.push(el('div', { className: 'muted', text: `result of ${message.tool_call_id}` }));
  const { content } = message;
  if (typeof content === 'string') {
    parts.push(el('div', { className: 'text', text: content }));
  } else if (Array.isArray(content)) {
    for (const part of content) {
      if (part?.type === 'text' && typeof part.text === 'string') parts.push(el('div', { className: 'text', text: part.text }));
      else if (part?.type === 'refusal' && typeof part.refusal === 'string') parts.push(el('div', { className: 'text refusal', text: part.refusal }));
      else parts.push(el('span', { className: 'badge', text: String(part?.type ?? 'part') }));
    }
  }
  if (typeof message.refusal === 'string') parts.push(el('div', { className: 'text refusal', text: `refusal: ${message.refusal}` }));
  if (Array.isArray(message.tool_calls)) {
    const calls = el('ul', { className: 'tool-calls' });
    for (const call of message.tool_calls) {
      const name = call?.function?.name ?? call?.custom?.name ?? call?.type ?? 'call';
      const args = call?.function?.arguments ?? call?.custom?.input ?? '';
      calls.append(
        el('li', { className: 'tool-call', data: { callId: call?.id ?? '' } }, el('span', { className: 'badge', text: 'tool call' }), el('code', { text: `${name}(${args})` }), el('span', { className: 'muted', text: ` ${call?.id ?? ''}` })),
      );
    }
    parts.push(calls);
  }
  if (parts.length === 0) parts.push(el('span', { className: 'muted', text: '(no content)' }));
  return parts;
}

// ---- wiring ----

function selectedFromHash() {
  if (location.hash.length <= 1) return undefined;
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return undefined;
  }
}

async function connect() {
  await loadConversations();
  const id = selectedFromHash();
  if (id !== undefined && !$('conversations').hidden) await openConversation(id);
}

function start() {
  $('token').value = session.get('token');
  $('tenant').value = session.get('tenant');
  $('model').value = session.get('model');
  $('auth').addEventListener('submit', (event) => {
    event.preventDefault();
    session.set('token', $('token').value.trim());
    session.set('tenant', $('tenant').value.trim());
    session.set('model', $('model').value.trim());
    list.selected = undefined;
    $('conversation').hidden = true;
    void connect();
  });
  $('forget').addEventListener('click', () => {
    for (const name of Object.keys(KEYS)) session.set(name, '');
    $('auth').reset();
    $('conversations').hidden = true;
    $('conversation').hidden = true;
    list.selected = undefined;
    history.replaceState(null, '', location.pathname);
    showStatus('Forgotten: this tab holds no key now.');
  });
  $('more-conversations').addEventListener('click', () => void loadConversations({ append: true }));
  $('refresh').addEventListener('click', () => {
    if (list.selected !== undefined) void openConversation(list.selected);
  });
  window.addEventListener('hashchange', () => {
    const id = selectedFromHash();
    if (id !== undefined && session.get('token') !== '') void openConversation(id);
  });
  if (session.get('token') !== '') void connect();
  else showStatus('Enter an API key (or the admin token and a tenant) to see the conversations it owns.');
}

start();
