// Tokens of the request fields beside messages and tools that shape the prompt: the output
// format (chat `response_format`, Responses `text.format`) and `tool_choice`. OpenAI
// publishes no count for either, so both count as much as they could plausibly add, never less.

import { isRecord, jsonText } from './json-text.js';

export interface RequestExtras {
  /** Chat `response_format` or Responses `text.format`, as the client sent it. */
  responseFormat?: unknown;
  /** `tool_choice`, as the client sent it (either API's shape). */
  toolChoice?: unknown;
}

type CountText = (text: string) => number;

/**
 * A format rides in a developer message. When the request has none, one is added for it:
 * <|start|>developer<|message|>…<|end|>, 3 tokens a message (the cookbook's rule) and 1 for the role.
 */
export const RESPONSE_FORMAT_MESSAGE_TOKENS = 4;

/**
 * What a forced call can add: the reply can be primed with the call's header, which names the
 * channel and the recipient before the function's name (`<|channel|>commentary to=functions.`
 * in OpenAI's published harmony format: 6 tokens on o200k_base and cl100k_base, the channel
 * marker one special token). 8, so a rendering a little longer still fits.
 */
export const TOOL_CHOICE_TOKENS = 8;

// JSON mode adds an object format without a schema: counted as the schema it implies.
const JSON_OBJECT_FORMAT = { name: 'json_object', schema: { type: 'object' } };
const SCHEMA_FIELDS = new Set(['type', 'name', 'description', 'schema', 'strict']);

export function countRequestExtras({ responseFormat, toolChoice }: RequestExtras, countText: CountText): number {
  return countResponseFormat(responseFormat, countText) + countToolChoice(toolChoice, countText);
}

/**
 * `{ type: 'text' }` adds nothing. A JSON schema is counted as OpenAI's published harmony format
 * (openai/harmony, docs/format.md, "Structured output") renders it at the end of the developer
 * message, the schema as compact JSON:
 *
 *     # Response Formats\n\n## {name}\n\n// {description}\n{schema}
 *
 * plus a developer message of its own. `strict` is enforced while sampling, not shown; fields
 * this code does not know count as their JSON text.
 */
export function countResponseFormat(format: unknown, countText: CountText): number {
  if (format === undefined || format === null) return 0;
  if (!isRecord(format)) return countText(jsonText(format)); // not a valid request; never count it as free
  if (format.type === 'text') return 0;
  if (format.type === 'json_object') return countSchemaFormat(JSON_OBJECT_FORMAT, countText);
  if (format.type === 'json_schema') {
    // Chat nests the fields in `json_schema`; the Responses API's text.format carries them itself.
    const spec = isRecord(format.json_schema) ? format.json_schema : format;
    const outer = spec === format ? 0 : countExtras(format, new Set(['type', 'json_schema']), countText);
    return countSchemaFormat(spec, countText) + outer;
  }
  // A format this code does not know (a grammar, a vendor's extension): all of its JSON.
  return RESPONSE_FORMAT_MESSAGE_TOKENS + countText(jsonText(format));
}

function countSchemaFormat(spec: Record<string, unknown>, countText: CountText): number {
  const name = typeof spec.name === 'string' ? spec.name : jsonText(spec.name);
  const description = typeof spec.description === 'string' ? `// ${spec.description}\n` : '';
  const rendered = `# Response Formats\n\n## ${name}\n\n${description}${jsonText(spec.schema)}`;
  return RESPONSE_FORMAT_MESSAGE_TOKENS + countText(rendered) + countExtras(spec, SCHEMA_FIELDS, countText);
}

/**
 * `auto` and `none` add nothing beyond the tools already counted. `required`, a named function
 * (chat `{type:'function', function:{name}}`, Responses `{type:'function', name}`) and every
 * other choice (allowed_tools, a hosted tool, a custom or MCP tool) count TOOL_CHOICE_TOKENS plus
 * what they name: the function's name, or the choice's JSON text.
 */
export function countToolChoice(choice: unknown, countText: CountText): number {
  if (choice === undefined || choice === null || choice === 'auto' || choice === 'none') return 0;
  if (choice === 'required') return TOOL_CHOICE_TOKENS;
  if (typeof choice === 'string') return TOOL_CHOICE_TOKENS + countText(choice);
  if (isRecord(choice) && choice.type === 'function') {
    const name = isRecord(choice.function) ? choice.function.name : choice.name;
    if (typeof name === 'string') return TOOL_CHOICE_TOKENS + countText(name);
  }
  return TOOL_CHOICE_TOKENS + countText(jsonText(choice));
}

function countExtras(record: Record<string, unknown>, counted: ReadonlySet<string>, countText: CountText): number {
  const extras = Object.entries(record).filter(([field, value]) => !counted.has(field) && value !== undefined);
  return extras.length === 0 ? 0 : countText(jsonText(Object.fromEntries(extras)));
}
