// Tokens of a request's function definitions. OpenAI renders them into the prompt in a
// format it does not publish; the cookbook's num_tokens_for_tools (How_to_count_tokens_with_
// tiktoken, section 7) fits per-part constants to it, checked against the API's own counts
// for gpt-4o/gpt-4o-mini and gpt-4/gpt-3.5-turbo. That formula counts only names,
// descriptions, property types and enums; every schema part it skips (nested properties,
// items, anyOf, additionalProperties, strict, …) is counted here as its JSON text, and a
// tool that is not a function as all of its JSON, so a richer schema never counts low.

import type { EncodingName } from './encoding-for-model.js';
import { isRecord, jsonText } from './json-text.js';

interface ToolFormat {
  functionStart: number;
  propertiesStart: number;
  propertyKey: number;
  enumStart: number;
  enumItem: number;
  functionsEnd: number;
}

// The cookbook's gpt-4o/gpt-4o-mini constants for o200k; its gpt-4/gpt-3.5-turbo ones for the
// rest (p50k/r50k models never took tools; the larger start per function is the safe side).
const O200K_TOOL_FORMAT: ToolFormat = { functionStart: 7, propertiesStart: 3, propertyKey: 3, enumStart: -3, enumItem: 3, functionsEnd: 12 };
const CL100K_TOOL_FORMAT: ToolFormat = { ...O200K_TOOL_FORMAT, functionStart: 10 };

const COUNTED_TOOL_FIELDS = new Set(['type', 'function']);
const COUNTED_FUNCTION_FIELDS = new Set(['name', 'description', 'parameters']);
// `type: "object"` and `required` are part of the cookbook's fitted constants.
const COUNTED_PARAMETERS_FIELDS = new Set(['type', 'properties', 'required']);
const COUNTED_PROPERTY_FIELDS = new Set(['type', 'description', 'enum']);

/** `tools` as the request carries it; legacy `functions` entries ({ name, description, parameters }) count the same. */
export function countToolDefinitions(tools: unknown, countText: (text: string) => number, encoding: EncodingName): number {
  if (tools === undefined || tools === null) return 0;
  if (!Array.isArray(tools)) return countText(jsonText(tools)); // not a valid request; never count it as free
  if (tools.length === 0) return 0;
  const format = encoding === 'o200k_base' ? O200K_TOOL_FORMAT : CL100K_TOOL_FORMAT;
  let tokens = format.functionsEnd;
  for (const tool of tools) {
    const definition = functionDefinition(tool);
    if (definition === undefined) {
      tokens += countText(jsonText(tool));
      continue;
    }
    const { fn, toolExtras } = definition;
    tokens += format.functionStart + countText(`${fn.name}:${withoutFinalPeriod(fn.description)}`);
    tokens += countExtras(fn, COUNTED_FUNCTION_FIELDS, countText) + countExtras(toolExtras, COUNTED_TOOL_FIELDS, countText);
    if (!isRecord(fn.parameters)) {
      if (fn.parameters !== undefined) tokens += countText(jsonText(fn.parameters));
      continue;
    }
    tokens += countExtras(fn.parameters, COUNTED_PARAMETERS_FIELDS, countText);
    const properties = fn.parameters.properties;
    if (!isRecord(properties)) {
      if (properties !== undefined) tokens += countText(jsonText(properties));
      continue;
    }
    const names = Object.keys(properties);
    if (names.length > 0) tokens += format.propertiesStart;
    for (const name of names) tokens += format.propertyKey + countProperty(name, properties[name], format, countText);
  }
  return tokens;
}

interface FunctionDefinition {
  fn: Record<string, unknown> & { name: string };
  toolExtras: Record<string, unknown>;
}

function functionDefinition(tool: unknown): FunctionDefinition | undefined {
  if (!isRecord(tool)) return undefined;
  if (tool.type === 'function' && isRecord(tool.function) && typeof tool.function.name === 'string') {
    return { fn: tool.function as FunctionDefinition['fn'], toolExtras: tool };
  }
  if (tool.type === undefined && typeof tool.name === 'string') {
    return { fn: tool as FunctionDefinition['fn'], toolExtras: {} };
  }
  return undefined;
}

function countProperty(name: string, property: unknown, format: ToolFormat, countText: (text: string) => number): number {
  if (!isRecord(property)) return countText(`${name}:${jsonText(property)}`);
  let tokens = 0;
  if (Array.isArray(property.enum)) {
    tokens += format.enumStart;
    for (const item of property.enum) tokens += format.enumItem + countText(typeof item === 'string' ? item : jsonText(item));
  }
  const type = typeof property.type === 'string' ? property.type : property.type === undefined ? '' : jsonText(property.type);
  tokens += countText(`${name}:${type}:${withoutFinalPeriod(property.description)}`);
  return tokens + countExtras(property, COUNTED_PROPERTY_FIELDS, countText);
}

function countExtras(record: Record<string, unknown>, counted: ReadonlySet<string>, countText: (text: string) => number): number {
  const extras = Object.entries(record).filter(([field, value]) => !counted.has(field) && value !== undefined);
  return extras.length === 0 ? 0 : countText(jsonText(Object.fromEntries(extras)));
}

function withoutFinalPeriod(description: unknown): string {
  if (typeof description !== 'string') return '';
  return description.endsWith('.') ? description.slice(0, -1) : description;
}
