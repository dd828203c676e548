// YAML text → interpolated document → environment overrides → validated,
// normalised, deep-frozen Config. Every problem found is reported at once,
// each as `<file>: <path>: <what is wrong>`.

import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { deepFreeze } from '../freeze.js';
import { interpolateDocument, isPlainObject, type ConfigPath } from './interpolate.js';
import { ConfigError } from '../errors.js';
import { configFileSchema } from './schema.js';
import { type Config } from './config-types.js';
import { resolveConfig } from './resolve-config.js';

export const DEFAULT_CONFIG_PATH = 'config/contextd.yaml';
export const BUILT_IN_SOURCE = '(built-in defaults)';

type Env = Readonly<Record<string, string | undefined>>;

export interface LoadConfigOptions {
  /** From --config; undefined falls back to CONTEXTD_CONFIG, then config/contextd.yaml if it exists, then built-in defaults. */
  path: string | undefined;
  env: Env;
  /** From --port. */
  portOverride?: number;
}

export async function loadConfig({ path, env, portOverride }: LoadConfigOptions): Promise<Config> {
  const explicitPath = nonEmpty(path) ?? nonEmpty(env.CONTEXTD_CONFIG);
  if (explicitPath !== undefined) {
    return buildConfig(await readConfigFile(explicitPath, { optional: false }), explicitPath, env, portOverride);
  }
  const text = await readConfigFile(DEFAULT_CONFIG_PATH, { optional: true });
  return text === undefined
    ? buildConfig('', BUILT_IN_SOURCE, env, portOverride)
    : buildConfig(text, DEFAULT_CONFIG_PATH, env, portOverride);
}

/** Pure: the same text and environment always give the same Config (or ConfigError). */
export function parseConfig(yamlText: string, source: string, env: Env): Config {
  return buildConfig(yamlText, source, env, undefined);
}

async function readConfigFile(path: string, options: { optional: false }): Promise<string>;
async function readConfigFile(path: string, options: { optional: true }): Promise<string | undefined>;
async function readConfigFile(path: string, { optional }: { optional: boolean }): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (optional && code === 'ENOENT') return undefined;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (error as Error).message;
    throw new ConfigError([`${path}: cannot read the config file: ${reason}`]);
  }
}

function buildConfig(yamlText: string, source: string, env: Env, portOverride: number | undefined): Config {
  const raw = parseYaml(yamlText, source);
  if (raw !== null && raw !== undefined && !isPlainObject(raw)) {
    throw new ConfigError([`${source}: (top level): expected a mapping of sections (server, upstream, storage, …), got ${describeValue(raw)}`]);
  }

  const interpolated = interpolateDocument(dropNulls(raw ?? {}), env);
  const document = interpolated.document as Record<string, unknown>;
  const origins = applyEnvOverrides(document, env, portOverride);
  const hidden = new Set([...interpolated.interpolatedPaths.map(formatPath), ...origins.keys()]);

  const lines: string[] = [];
  const line = (path: ConfigPath, message: string) => {
    const origin = origins.get(formatPath(path));
    lines.push(`${source}: ${formatPath(path)}${origin === undefined ? '' : ` (from ${origin})`}: ${message}`);
  };

  for (const problem of interpolated.problems) line(problem.path, problem.message);
  const broken = interpolated.problems.map((problem) => formatPath(problem.path));

  const parsed = configFileSchema.safeParse(document);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      // A value whose interpolation failed was dropped; its "missing" issue would only repeat that.
      if (broken.some((path) => isWithin(formatPath(toConfigPath(issue.path)), path))) continue;
      for (const [path, message] of describeIssue(issue, document, hidden)) line(path, message);
    }
  }
  if (lines.length > 0 || !parsed.success) throw new ConfigError(lines);

  const resolved = resolveConfig(parsed.data, source);
  if (resolved.kind === 'invalid') {
    for (const problem of resolved.problems) line(problem.path, problem.message);
    throw new ConfigError(lines);
  }
  return deepFreeze(resolved.config);
}

function parseYaml(yamlText: string, source: string): unknown {
  // uniqueKeys (the default) makes a key written twice an error rather than a silent override.
  const document = parseDocument(yamlText, { merge: true, prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const position = error.linePos?.[0];
        const where = position === undefined ? '' : `line ${position.line}, column ${position.col}: `;
        const message = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return `${source}: ${where}${message}`;
      }),
    );
  }
  try {
    return document.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (error) {
    throw new ConfigError([`${source}: ${(error as Error).message}`]);
  }
}

/**
 * Precedence, highest first:
 *   server.port:       --port > CONTEXTD_PORT > file > default
 *   upstream.base_url: CONTEXTD_UPSTREAM_URL > file > default
 *   storage urls:      file > REDIS_URL / MONGODB_URL > "" (not used)
 * The CONTEXTD_ variables are contextd's own, so they win over the file. REDIS_URL
 * and MONGODB_URL are common names other tools set too, so they only fill a url the
 * file leaves empty. Empty variables count as unset. Returns path → where the value
 * came from, for error messages (which then never show the value).
 */
function applyEnvOverrides(document: Record<string, unknown>, env: Env, portOverride: number | undefined): Map<string, string> {
  const origins = new Map<string, string>();
  const override = (path: readonly string[], value: string | number | undefined, origin: string, onlyIfEmpty = false) => {
    if (value === undefined) return;
    const parent = objectAt(document, path.slice(0, -1));
    const key = path[path.length - 1] ?? '';
    if (parent === undefined) return; // not a mapping: the schema reports that
    if (onlyIfEmpty && parent[key] !== undefined && parent[key] !== '') return;
    parent[key] = value;
    origins.set(formatPath(path), origin);
  };
  override(['server', 'port'], nonEmpty(env.CONTEXTD_PORT), 'CONTEXTD_PORT');
  override(['server', 'port'], portOverride, '--port');
  override(['upstream', 'base_url'], nonEmpty(env.CONTEXTD_UPSTREAM_URL), 'CONTEXTD_UPSTREAM_URL');
  override(['storage', 'redis', 'url'], nonEmpty(env.REDIS_URL), 'REDIS_URL', true);
  override(['storage', 'mongodb', 'url'], nonEmpty(env.MONGODB_URL), 'MONGODB_URL', true);
  return origins;
}

/** The mapping at `path`, creating missing ones; undefined when something else is in the way. */
function objectAt(root: Record<string, unknown>, path: readonly string[]): Record<string, unknown> | undefined {
  let current = root;
  for (const key of path) {
    const next = current[key] ?? {};
    if (!isPlainObject(next)) return undefined;
    current[key] = next;
    current = next;
  }
  return current;
}

function describeIssue(issue: z.core.$ZodIssue, document: unknown, hidden: ReadonlySet<string>): [ConfigPath, string][] {
  const path = toConfigPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(configFileSchema, path);
    return issue.keys.map((key) => {
      const suggestion = closest(key, known);
      return [[...path, key], `unknown key${suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`}`];
    });
  }
  const value = valueAt(document, path);
  // Leaves say "expected <what>" themselves; zod's own type messages speak JavaScript, not YAML.
  const expected = issue.code === 'invalid_type' ? `expected ${YAML_TYPE_NAMES[issue.expected] ?? issue.expected}` : issue.message;
  if (value === undefined) return [[path, `missing: ${expected}`]];
  // Values from the environment, and anything that may be a credential, are never repeated.
  const isSecret = hidden.has(formatPath(path)) || SECRET_KEYS.has(String(path[path.length - 1]));
  return [[path, isSecret ? expected : `${expected}, got ${describeValue(value)}`]];
}

const YAML_TYPE_NAMES: Readonly<Record<string, string>> = { array: 'a list', object: 'a mapping', record: 'a mapping' };
const SECRET_KEYS = new Set(['token', 'api_key', 'url']);

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

function valueAt(document: unknown, path: ConfigPath): unknown {
  let current = document;
  for (const key of path) {
    if (typeof key === 'number' ? !Array.isArray(current) : !isPlainObject(current)) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

/** The keys the schema allows at `path`, for "did you mean". */
function knownKeysAt(schema: z.ZodType, path: ConfigPath): string[] {
  let current: z.ZodType | undefined = schema;
  for (const key of [...path, undefined]) {
    current = unwrap(current);
    if (key === undefined) break;
    if (current instanceof z.ZodObject) current = (current.shape as Record<string, z.ZodType>)[String(key)];
    else if (current instanceof z.ZodArray) current = current.element as z.ZodType;
    else return [];
  }
  return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}

function unwrap(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodOptional || current instanceof z.ZodPrefault || current instanceof z.ZodDefault) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else {
      return current;
    }
  }
}

function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(key.toLowerCase().replace(/-/g, '_'), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** `routes[1].budget.max_context_tokens`; keys that are not plain words are quoted. */
export function formatPath(path: ConfigPath): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((key, index) => {
      if (typeof key === 'number') return `[${key}]`;
      if (!/^[A-Za-z_][\w-]*$/.test(key)) return `[${JSON.stringify(key)}]`;
      return index === 0 ? key : `.${key}`;
    })
    .join('');
}

function toConfigPath(path: readonly PropertyKey[]): ConfigPath {
  return path.filter((key): key is string | number => typeof key !== 'symbol');
}

function isWithin(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}.`) || path.startsWith(`${ancestor}[`);
}

/** `key:` with nothing after it means "not set" (often its children are commented out), not null. */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, item]) => item !== null)
      .map(([key, item]) => [key, dropNulls(item)]),
  );
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
