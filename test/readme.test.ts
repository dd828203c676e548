// The README's configuration table and schema/contextd.schema.json (generated
// from the zod schema by `npm run schema`) must not drift apart: every key of
// the schema appears in the table, every key the table names exists, and the
// defaults it shows are the schema's.
//
// How the table's first column names keys (every key in backticks, several in
// one cell separated by " / "):
//   `server.host` / `server.port`            full paths;
//   `storage.redis.ttl` / `max_cached_messages` / `timeout`
//                                            a key without a dot is a sibling of
//                                            the key before it (storage.redis.*);
//   `storage.memory.*`                       every key under storage.memory; the
//                                            row must name each one, as a word,
//                                            in its other cells (`ttl: 24h`, …);
//   `routes[]`                               every key of a route: each must name
//                                            its first segment in backticks in the
//                                            row (`name`, `match`, `budget`, …);
//                                            one with a `defaults.<same path>`
//                                            twin (routes[].budget.encoding) is
//                                            described by that row, which must be
//                                            in the table; one without names every
//                                            segment (`match` and `path`).
// The default column has one " / "-separated part per key; a wildcard row shows
// `name: value` for each key. `empty` stands for "", `built-in` for a long text
// default (the summary prompt); a key without a schema default is not checked.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  default?: unknown;
}

const ROOT = join(import.meta.dirname, '..');
const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'contextd.schema.json'), 'utf8')) as SchemaNode;
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function objectProperties(node: SchemaNode): Record<string, SchemaNode> | undefined {
  return node.properties ?? node.anyOf?.find((option) => option.properties !== undefined)?.properties;
}

function arrayItems(node: SchemaNode): SchemaNode | undefined {
  return node.items ?? node.anyOf?.find((option) => option.items !== undefined)?.items;
}

/** Every leaf key of the schema with its node, e.g. `storage.redis.ttl`, `routes[].match.path`. */
function leaves(node: SchemaNode, path: string, out: Map<string, SchemaNode>): Map<string, SchemaNode> {
  const properties = objectProperties(node);
  const items = arrayItems(node);
  if (properties !== undefined) {
    for (const [name, child] of Object.entries(properties)) leaves(child, path === '' ? name : `${path}.${name}`, out);
  } else if (items !== undefined && objectProperties(items) !== undefined) {
    leaves(items, `${path}[]`, out);
  } else {
    out.set(path, node);
  }
  return out;
}

const schemaLeaves = leaves(schema, '', new Map());

interface Row {
  line: number;
  text: string;
  keys: string[]; // as written, resolved to full paths (wildcards end in `.*`, lists in `[]`)
  defaults: string[]; // the default cell, one part per key
}

/** The rows of the first `| key | default | meaning |` table under `## Configuration`. */
function configurationRows(): Row[] {
  const lines = readme.split('\n');
  const section = lines.findIndex((line) => /^## Configuration\b/.test(line));
  if (section < 0) throw new Error('README.md has no "## Configuration" section');
  const header = lines.findIndex((line, i) => i > section && /^\|\s*key\s*\|\s*default\s*\|\s*meaning\s*\|/.test(line));
  if (header < 0) throw new Error('README.md: no "| key | default | meaning |" table under "## Configuration"');
  const rows: Row[] = [];
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const text = lines[i]!;
    const cells = text.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
    const [keyCell = '', defaultCell = ''] = cells;
    const tokens = [...keyCell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const rest = keyCell.replace(/`[^`]+`/g, '').split('/');
    if (tokens.length === 0 || rest.some((part) => part.trim() !== '') || rest.length !== tokens.length) {
      throw new Error(`README.md line ${i + 1}: the key cell ${JSON.stringify(keyCell)} is not backticked keys separated by " / "`);
    }
    let parent: string | undefined;
    const keys = tokens.map((token) => {
      if (token.includes('.') || token.endsWith('[]')) {
        parent = token.includes('.') ? token.slice(0, token.lastIndexOf('.')) : undefined;
        return token;
      }
      if (parent === undefined) throw new Error(`README.md line ${i + 1}: \`${token}\` has no full key before it to be the sibling of`);
      return `${parent}.${token}`;
    });
    rows.push({ line: i + 1, text, keys, defaults: defaultCell.split(' / ').map((part) => part.trim()) });
  }
  return rows;
}

const rows = configurationRows();
const named = new Map<string, Row>(); // every full key a row names, wildcards and lists included
for (const row of rows) for (const key of row.keys) named.set(key, row);

const backticked = (row: Row): Set<string> => new Set([...row.text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
const namesAsWord = (row: Row, word: string): boolean => new RegExp(`(^|[^A-Za-z0-9_])${word}([^A-Za-z0-9_]|$)`).test(row.text);

/** Where the table documents a schema leaf, or why it does not. */
function coverage(leaf: string): { ok: true } | { ok: false; why: string } {
  if (named.has(leaf)) return { ok: true };
  for (const [key, row] of named) {
    if (key.endsWith('.*') && leaf.startsWith(key.slice(0, -1))) {
      const relative = leaf.slice(key.length - 1);
      return namesAsWord(row, relative)
        ? { ok: true }
        : { ok: false, why: `the \`${key}\` row (line ${row.line}) does not name \`${relative}\`` };
    }
    if (key.endsWith('[]') && leaf.startsWith(`${key}.`)) {
      const relative = leaf.slice(key.length + 1);
      const segments = relative.split('.');
      const names = backticked(row);
      if (!names.has(segments[0]!)) return { ok: false, why: `the \`${key}\` row (line ${row.line}) does not name \`${segments[0]}\`` };
      const twin = `defaults.${relative}`;
      if (schemaLeaves.has(twin)) {
        return coverage(twin).ok ? { ok: true } : { ok: false, why: `its twin \`${twin}\` is not in the table` };
      }
      const unnamed = segments.filter((segment) => !names.has(segment));
      return unnamed.length === 0
        ? { ok: true }
        : { ok: false, why: `the \`${key}\` row (line ${row.line}) does not name ${unnamed.map((s) => `\`${s}\``).join(', ')}` };
    }
  }
  return { ok: false, why: 'no row names it' };
}

describe('README configuration table against schema/contextd.schema.json', () => {
  test('the schema has keys and the table has rows', () => {
    expect(schemaLeaves.size).toBeGreaterThan(20);
    expect(rows.length).toBeGreaterThan(10);
  });

  test('every key of the schema appears in the table', () => {
    const missing = [...schemaLeaves.keys()].flatMap((leaf) => {
      const result = coverage(leaf);
      return result.ok ? [] : [`${leaf} (${result.why})`];
    });
    expect(missing, `schema keys missing from the README's configuration table:\n  ${missing.join('\n  ')}\n`).toEqual([]);
  });

  test('every key the table names exists in the schema', () => {
    const unknown = [...named].flatMap(([key, row]) => {
      if (key.endsWith('.*')) {
        const prefix = key.slice(0, -1);
        return [...schemaLeaves.keys()].some((leaf) => leaf.startsWith(prefix)) ? [] : [`${key} (line ${row.line})`];
      }
      if (key.endsWith('[]')) {
        return [...schemaLeaves.keys()].some((leaf) => leaf.startsWith(`${key}.`)) ? [] : [`${key} (line ${row.line})`];
      }
      return schemaLeaves.has(key) ? [] : [`${key} (line ${row.line})`];
    });
    expect(unknown, `keys in the README's configuration table that the schema does not have:\n  ${unknown.join('\n  ')}\n`).toEqual([]);
  });

  test('no key has two rows', () => {
    const seen = new Map<string, number>();
    const twice: string[] = [];
    for (const row of rows) {
      for (const key of row.keys) {
        const first = seen.get(key);
        if (first !== undefined) twice.push(`${key} (lines ${first} and ${row.line})`);
        seen.set(key, row.line);
      }
    }
    expect(twice, `keys named by two rows of the README's configuration table:\n  ${twice.join('\n  ')}\n`).toEqual([]);
  });

  test("the defaults the table shows are the schema's", () => {
    const wrong: string[] = [];
    const check = (key: string, shown: string, row: Row): void => {
      const value = schemaLeaves.get(key)?.default;
      if (value === undefined || typeof value === 'object') return;
      if (value === '') {
        if (!shown.startsWith('empty')) wrong.push(`${key}: the schema's default is "", the table shows ${JSON.stringify(shown)} (line ${row.line})`);
      } else if (shown === 'built-in') {
        if (typeof value !== 'string' || value.length <= 40) wrong.push(`${key}: the table shows "built-in" for the short default ${JSON.stringify(value)} (line ${row.line})`);
      } else if (!shown.includes(`\`${String(value)}\``)) {
        wrong.push(`${key}: the schema's default is ${JSON.stringify(value)}, the table shows ${JSON.stringify(shown)} (line ${row.line})`);
      }
    };
    for (const row of rows) {
      const explicit = row.keys.filter((key) => !key.endsWith('.*') && !key.endsWith('[]'));
      for (const key of row.keys.filter((key) => key.endsWith('.*'))) {
        const prefix = key.slice(0, -1);
        for (const [leaf, node] of schemaLeaves) {
          if (!leaf.startsWith(prefix) || node.default === undefined || typeof node.default === 'object') continue;
          const pair = `${leaf.slice(prefix.length)}: ${String(node.default)}`;
          if (!row.text.includes(pair)) wrong.push(`${leaf}: the \`${key}\` row (line ${row.line}) does not show \`${pair}\``);
        }
      }
      if (explicit.length === 0) continue;
      if (row.defaults.length !== explicit.length) {
        wrong.push(`line ${row.line}: ${explicit.length} keys but ${row.defaults.length} " / "-separated defaults`);
        continue;
      }
      explicit.forEach((key, i) => check(key, row.defaults[i]!, row));
    }
    expect(wrong, `defaults in the README's configuration table that differ from the schema:\n  ${wrong.join('\n  ')}\n`).toEqual([]);
  });
});
