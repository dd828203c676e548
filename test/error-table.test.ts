// README.md's "## Errors" table and src/errors.ts agree (issue 11): every
// (status, code) a ContextdError subclass can carry to a client is a row of the
// table, and every (status, code) in the table is one errors.ts can produce.
// Internal errors (plain Error subclasses in errors.ts) never reach a client and
// are not in the table; neither are upstream errors, which pass through as they came.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import * as errors from '../src/errors.js';
import { ContextdError } from '../src/errors.js';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

const SOURCES = sourceFiles(SRC).map((file) => ({ path: relative(SRC, file), text: readFileSync(file, 'utf8') }));

/**
 * InvalidRequestError takes its code as a constructor argument: every
 * `new InvalidRequestError(…)` in src, parsed (calls span lines), gives the
 * codes it can carry. A call without a third argument carries the default; a
 * code that is not a string literal is reported, since its value is unknown here.
 */
function invalidRequestCalls(): { codes: Set<string>; defaulted: number; notLiteral: string[] } {
  const codes = new Set<string>();
  const notLiteral: string[] = [];
  let defaulted = 0;
  for (const { path, text } of SOURCES) {
    const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'InvalidRequestError') {
        const code = node.arguments?.[2];
        if (code === undefined) defaulted += 1;
        else if (ts.isStringLiteralLike(code)) codes.add(code.text);
        else notLiteral.push(`${path}:${source.getLineAndCharacterOfPosition(code.getStart()).line + 1}: ${code.getText()}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { codes, defaulted, notLiteral };
}

const INVALID_REQUEST = invalidRequestCalls();

/** One instance per code each client-facing class can carry, built with dummy arguments. */
const FACTORIES: Record<string, () => ContextdError[]> = {
  InvalidJsonError: () => [new errors.InvalidJsonError('detail')],
  BodyTooLargeError: () => [new errors.BodyTooLargeError(1024)],
  RequestTimeoutError: () => [new errors.RequestTimeoutError()],
  RequestHeadersTooLargeError: () => [new errors.RequestHeadersTooLargeError(16_384)],
  InvalidRequestError: () => [
    ...(INVALID_REQUEST.defaulted > 0 ? [new errors.InvalidRequestError('message', null)] : []),
    ...[...INVALID_REQUEST.codes].map((code) => new errors.InvalidRequestError('message', null, code)),
  ],
  InvalidConversationIdError: () => [new errors.InvalidConversationIdError('X-Conversation-Id')],
  ContextLengthExceededError: () => [new errors.ContextLengthExceededError(2000, 1000, 'default')],
  ConversationStateConflictError: () => [new errors.ConversationStateConflictError('previous_response_id', 'X-Conversation-Id')],
  PreviousResponseConflictError: () => [new errors.PreviousResponseConflictError('resp_1', 'X-Conversation-Id')],
  PreviousResponseNotFoundError: () => [new errors.PreviousResponseNotFoundError('resp_1')],
  UpstreamUnreachableError: () => [new errors.UpstreamUnreachableError(new Error('cause'))],
  UpstreamInterruptedError: () => [new errors.UpstreamInterruptedError(new Error('cause'))],
  UpstreamTimeoutError: () => [new errors.UpstreamTimeoutError(1000)],
  StoreUnavailableError: () => [new errors.StoreUnavailableError(new Error('cause'))],
  NotFoundError: () => [new errors.NotFoundError('Thing')],
  AdminOnlyError: () => [new errors.AdminOnlyError()],
};

/** Every class errors.ts exports that reaches clients: the subclasses of ContextdError. */
const CLIENT_CLASSES = Object.entries(errors as Record<string, unknown>).filter(
  (entry): entry is [string, abstract new (...args: never[]) => ContextdError] =>
    typeof entry[1] === 'function' && (entry[1] as { prototype: unknown }).prototype instanceof ContextdError,
);

interface Row {
  status: number;
  code: string;
  from: string; // the class, or the README line
}

const pair = (row: { status: number; code: string }): string => `${row.status} ${row.code}`;

function errorsRows(): Row[] {
  return CLIENT_CLASSES.flatMap(([name, errorClass]) =>
    (FACTORIES[name]?.() ?? []).map((error) => {
      expect(error.constructor, `FACTORIES.${name} builds a ${name}`).toBe(errorClass);
      return { status: error.status, code: error.code, from: name };
    }),
  );
}

/** The rows of README.md's "## Errors" table `| status | code | when |`; a code cell may list several codes. */
function readmeRows(): Row[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const start = lines.findIndex((line) => /^##\s+Errors\s*$/.test(line));
  expect(start, 'README.md has a "## Errors" section').toBeGreaterThanOrEqual(0);
  const next = lines.findIndex((line, i) => i > start && /^#{1,2}\s/.test(line));
  const section = lines.slice(start + 1, next === -1 ? undefined : next);
  const header = section.findIndex((line) => /^\|\s*status\s*\|\s*code\s*\|\s*when\s*\|\s*$/.test(line));
  expect(header, 'the Errors section has a table | status | code | when |').toBeGreaterThanOrEqual(0);
  expect(section[header + 1], 'the table header is followed by its separator row').toMatch(/^\|(\s*:?-+:?\s*\|){3}\s*$/);

  const rows: Row[] = [];
  for (let i = header + 2; i < section.length && section[i]!.startsWith('|'); i++) {
    const line = section[i]!;
    const at = `README.md line ${start + 2 + i}`;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
    expect(cells.length, `${at} has three cells: ${line}`).toBe(3);
    const [status, codeCell] = cells as [string, string, string];
    expect(status, `${at}: the status is an HTTP status`).toMatch(/^\d{3}$/);
    const codes = [...codeCell.matchAll(/`([^`]*)`/g)].map((m) => m[1]!);
    expect(codes.length, `${at}: the code cell names at least one code`).toBeGreaterThan(0);
    expect(codeCell.replace(/`[^`]*`/g, '').replace(/[\s,]/g, ''), `${at}: the code cell holds only codes in backticks, separated by commas`).toBe('');
    for (const code of codes) {
      expect(code, `${at}: a code is snake_case`).toMatch(/^[a-z][a-z0-9_]*$/);
      rows.push({ status: Number(status), code, from: at });
    }
  }
  expect(rows.length, 'the Errors table has rows').toBeGreaterThan(0);
  return rows;
}

describe("README's error table and src/errors.ts", () => {
  test('every client-facing class errors.ts exports has a factory here (a new class must be added to FACTORIES)', () => {
    expect(CLIENT_CLASSES.length).toBeGreaterThan(0);
    expect(CLIENT_CLASSES.map(([name]) => name).sort()).toEqual(Object.keys(FACTORIES).sort());
  });

  test('every code passed to InvalidRequestError in src is a string literal', () => {
    expect(INVALID_REQUEST.codes.size + INVALID_REQUEST.defaulted).toBeGreaterThan(0);
    expect(INVALID_REQUEST.notLiteral).toEqual([]);
  });

  test('no ContextdError subclass is declared outside errors.ts', () => {
    const bases = new Set(['ContextdError', ...CLIENT_CLASSES.map(([name]) => name)]);
    const outside = SOURCES.filter(({ path }) => path !== 'errors.ts').flatMap(({ path, text }) =>
      [...text.matchAll(/\bclass\s+(\w+)\s+extends\s+(\w+)/g)].filter((m) => bases.has(m[2]!)).map((m) => `${path}: ${m[1]} extends ${m[2]}`),
    );
    expect(outside).toEqual([]);
  });

  test('every (status, code) errors.ts can send is a row of the README table', () => {
    const documented = new Set(readmeRows().map(pair));
    const missing = errorsRows()
      .filter((row) => !documented.has(pair(row)))
      .map((row) => `| ${row.status} | \`${row.code}\` | (${row.from}) |`);
    expect([...new Set(missing)], 'rows README.md lacks').toEqual([]);
  });

  test('every (status, code) in the README table is one errors.ts can send', () => {
    const sent = new Set(errorsRows().map(pair));
    const unknown = readmeRows()
      .filter((row) => !sent.has(pair(row)))
      .map((row) => `${row.from}: ${row.status} \`${row.code}\``);
    expect(unknown, 'README rows errors.ts does not produce').toEqual([]);
  });
});
