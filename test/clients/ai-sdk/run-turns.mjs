// Drives the Vercel AI SDK against contextd for test/clients/ai-sdk.e2e.test.ts
// and test/clients/ai-sdk-responses.e2e.test.ts.
// Run with this directory's own Node (node_modules/.bin/node, >= 22):
//
//   CONTEXTD_BASE_URL=http://127.0.0.1:PORT/v1 CONVERSATION_ID=c1 API_KEY=sk-... \
//     node_modules/.bin/node run-turns.mjs '{"call":"generate","history":"new-only","turns":["hi","and?"]}'
//
// The scenario (argv[2], JSON):
//   call:         "generate" (generateText) or "stream" (streamText)
//   history:      "new-only": each turn sends only its new user message;
//                 "full": the app keeps its own history, appends each result's
//                 response messages to it and sends all of it every turn. In AI
//                 SDK 7 that is `result.responseMessages` (every step's messages);
//                 the deprecated `result.response.messages` is the final step's
//                 alone, without the tool call and its result.
//   turns:        the user message of each turn
//   instructions: optional pinned system prompt (AI SDK 7 takes it as `instructions`)
//   tools:        optional; true gives the model a `lookup` tool with an execute
//                 function and lets the loop run up to 3 steps
//   api:          optional; "chat" (the default: provider.chat(model), chat
//                 completions) or "responses" (provider(model), the provider's
//                 default model: the Responses API)
//   providerOptions: optional; passed to every call as it is
//                 (`{ "openai": { "store": false } }`)
//   reportErrors: optional; true ends the run at a turn that fails and reports
//                 the failure as that turn's `error` ({ statusCode, message,
//                 responseBody }); otherwise a failure fails the driver
//
// Prints one JSON line: { sdk, turns: [{ text, finishReason, steps: [...], responseMessages } | { error }], history }.
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount, streamText, tool } from 'ai';
import { createRequire } from 'node:module';
import { z } from 'zod';

const MODEL = 'gpt-4o-mini';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const scenario = JSON.parse(process.argv[2] ?? '{}');
const provider = createOpenAI({
  baseURL: required('CONTEXTD_BASE_URL'),
  apiKey: required('API_KEY'),
  headers: { 'x-conversation-id': required('CONVERSATION_ID') },
});
const model = scenario.api === 'responses' ? provider(MODEL) : provider.chat(MODEL);

const tools = {
  lookup: tool({
    description: 'Look an item up by name.',
    inputSchema: z.object({ q: z.string() }),
    execute: async ({ q }) => ({ item: q, colour: 'blue' }),
  }),
};

/** The options every call shares: the model, the pinned instructions, the tools and the step limit. */
function callOptions(messages) {
  return {
    model,
    messages,
    maxRetries: 0,
    ...(scenario.instructions === undefined ? {} : { instructions: scenario.instructions }),
    ...(scenario.tools ? { tools, stopWhen: isStepCount(3) } : {}),
    ...(scenario.providerOptions === undefined ? {} : { providerOptions: scenario.providerOptions }),
  };
}

function describeStep(step) {
  return {
    finishReason: step.finishReason,
    text: step.text,
    toolCalls: step.toolCalls.map((call) => ({ toolCallId: call.toolCallId, toolName: call.toolName, input: call.input })),
    toolResults: step.toolResults.map((result) => ({ toolCallId: result.toolCallId, output: result.output })),
    contextTokens: step.response.headers?.['x-contextd-context-tokens'] ?? null,
  };
}

async function generate(messages) {
  const result = await generateText(callOptions(messages));
  return { text: result.text, finishReason: result.finishReason, steps: result.steps.map(describeStep), responseMessages: result.responseMessages };
}

async function stream(messages) {
  const result = streamText(callOptions(messages));
  let streamedText = '';
  // Every part is read, and an error part fails the run (streamText reports errors in the stream, not by throwing).
  for await (const part of result.fullStream) {
    if (part.type === 'error') throw part.error instanceof Error ? part.error : new Error(JSON.stringify(part.error));
    if (part.type === 'text-delta') streamedText += part.text;
  }
  const steps = await result.steps;
  return {
    text: await result.text,
    streamedText,
    finishReason: await result.finishReason,
    usage: await result.usage,
    steps: steps.map(describeStep),
    responseMessages: await result.responseMessages,
  };
}

const call = scenario.call === 'stream' ? stream : generate;
const history = [];
const turns = [];
for (const userText of scenario.turns ?? []) {
  const userMessage = { role: 'user', content: userText };
  const messages = scenario.history === 'full' ? [...history, userMessage] : [userMessage];
  let turn;
  try {
    turn = await call(messages);
  } catch (error) {
    if (!scenario.reportErrors) throw error;
    turns.push({ error: { statusCode: error?.statusCode, message: error?.message, responseBody: error?.responseBody } });
    break;
  }
  turns.push(turn);
  history.push(userMessage, ...turn.responseMessages);
}

const require = createRequire(import.meta.url);
const sdk = { node: process.version, ai: require('ai/package.json').version, '@ai-sdk/openai': require('@ai-sdk/openai/package.json').version };
process.stdout.write(`${JSON.stringify({ sdk, turns, history })}\n`);
