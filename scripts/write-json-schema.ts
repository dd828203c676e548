// Writes schema/contextd.schema.json, the editor schema for config files, from
// the zod schema that validates them. test/unit/config/json-schema.test.ts fails
// when the file is stale. Regenerate from the repository root:
//   npx tsc --module nodenext --target es2022 --skipLibCheck --outDir dist/gen scripts/write-json-schema.ts \
//     && node dist/gen/scripts/write-json-schema.js

import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { configFileSchema } from '../src/config/schema.js';

export const JSON_SCHEMA_PATH = 'schema/contextd.schema.json';

export function renderJsonSchema(): string {
  // The input side: what a user writes in YAML, before defaults and units are applied.
  // draft-7 is what yaml-language-server (VS Code, JetBrains) understands best.
  const schema = z.toJSONSchema(configFileSchema, { io: 'input', target: 'draft-7' });
  return `${JSON.stringify({ ...schema, title: 'contextd configuration' }, null, 2)}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const target = process.argv[2] ?? JSON_SCHEMA_PATH;
  await writeFile(target, renderJsonSchema());
  console.log(`wrote ${target}`);
}
