import { readFile } from 'node:fs/promises';
import { expect, test } from 'vitest';
import { JSON_SCHEMA_PATH, renderJsonSchema } from '../../../scripts/write-json-schema.js';

test('schema/contextd.schema.json is up to date with the zod schema (regenerate: see scripts/write-json-schema.ts)', async () => {
  expect(await readFile(JSON_SCHEMA_PATH, 'utf8')).toBe(renderJsonSchema());
});

test('the JSON Schema describes the YAML input: snake_case keys, no unknown keys, documented defaults', () => {
  const schema = JSON.parse(renderJsonSchema()) as {
    additionalProperties: boolean;
    properties: Record<string, { properties?: Record<string, { default?: unknown }> }>;
  };
  expect(schema.additionalProperties).toBe(false);
  expect(Object.keys(schema.properties)).toEqual(['server', 'upstream', 'conversation', 'admin', 'ui', 'storage', 'defaults', 'routes']);
  expect(schema.properties.server?.properties?.body_limit?.default).toBe('10mb');
  expect(schema.properties.upstream?.properties?.base_url?.default).toBe('https://api.openai.com/v1');
});
