// `${VAR}` and `${VAR:-default}` in string values of the parsed YAML document.
// It runs after YAML parsing, on scalars only, so a value from the environment
// that holds `#`, `:` or a newline cannot change the document's structure.
// Keys are never interpolated.

export type ConfigPath = readonly (string | number)[];

export interface InterpolationProblem {
  path: ConfigPath;
  message: string;
}

export interface InterpolatedDocument {
  /** The document with every string interpolated; a string with a problem is dropped (undefined). */
  document: unknown;
  /** Strings that took text from the environment: their values must never appear in an error. */
  interpolatedPaths: ConfigPath[];
  problems: InterpolationProblem[];
}

type Env = Readonly<Record<string, string | undefined>>;

const REFERENCE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/;

export function interpolateDocument(document: unknown, env: Env): InterpolatedDocument {
  const interpolatedPaths: ConfigPath[] = [];
  const problems: InterpolationProblem[] = [];

  const visit = (value: unknown, path: ConfigPath): unknown => {
    if (typeof value === 'string') {
      const result = interpolateString(value, env);
      if (result.kind === 'error') {
        problems.push(...result.messages.map((message) => ({ path, message })));
        return undefined;
      }
      if (result.usedEnv) interpolatedPaths.push(path);
      return result.value;
    }
    if (Array.isArray(value)) return value.map((item: unknown, index) => visit(item, [...path, index]));
    if (isPlainObject(value)) {
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, visit(item, [...path, key])]));
    }
    return value;
  };

  return { document: visit(document, []), interpolatedPaths, problems };
}

export type InterpolatedString =
  | { kind: 'ok'; value: string; usedEnv: boolean }
  | { kind: 'error'; messages: string[] };

/**
 * `${VAR}` takes VAR and requires it to be set (an empty value counts as set, as in sh);
 * `${VAR:-default}` falls back when VAR is unset or empty; `$${` is a literal `${`.
 */
export function interpolateString(text: string, env: Env): InterpolatedString {
  let value = '';
  let usedEnv = false;
  const messages: string[] = [];
  let index = 0;
  while (index < text.length) {
    const dollar = text.indexOf('$', index);
    if (dollar === -1) {
      value += text.slice(index);
      break;
    }
    value += text.slice(index, dollar);
    if (text.startsWith('$${', dollar)) {
      value += '${';
      index = dollar + 3;
      continue;
    }
    if (!text.startsWith('${', dollar)) {
      value += '$';
      index = dollar + 1;
      continue;
    }
    const reference = REFERENCE.exec(text.slice(dollar));
    if (reference === null) {
      // The text is from the file, not the environment, but it may still be half a secret: don't quote it.
      messages.push('malformed "${": write ${VAR}, ${VAR:-default}, or $${ for a literal "${"');
      break;
    }
    const [whole, name = '', fallback] = reference;
    const fromEnv = env[name];
    if (fromEnv !== undefined && !(fallback !== undefined && fromEnv === '')) {
      value += fromEnv;
      usedEnv = true;
    } else if (fallback !== undefined) {
      value += fallback;
    } else {
      messages.push(`environment variable ${name} is not set (write \${${name}:-} to allow it to be unset)`);
    }
    index = dollar + whole.length;
  }
  return messages.length > 0 ? { kind: 'error', messages } : { kind: 'ok', value, usedEnv };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
