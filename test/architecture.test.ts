// STYLE.md §11: imports point inward. Pure core modules import only the domain
// and errors; adapters never import http/; only main.ts names concrete stores
// and reads process.env; nothing imports main.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

interface Module {
  path: string; // relative to src, e.g. "context/assemble-prompt.ts"
  text: string;
  imports: { target: string; isTypeOnly: boolean }[]; // src-relative targets of relative imports
}

const modules: Module[] = sourceFiles(SRC).map((file) => {
  const text = readFileSync(file, 'utf8');
  const imports = [...text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gms)].map((m) => ({
    isTypeOnly: m[1] !== undefined,
    target: relative(SRC, join(file, '..', m[2]!)).replace(/\.js$/, '.ts'),
  }));
  return { path: relative(SRC, file), text, imports };
});

const folder = (path: string): string => (path.includes('/') ? path.split('/')[0]! : path);
const PURE = ['context', 'routing', 'tokens'];
const PURE_FILES = ['streaming/sse-parser.ts', 'streaming/accumulate-reply.ts', 'streaming/accumulate-response.ts', 'streaming/content-delta.ts', 'streaming/json-string.ts', 'streaming/utf8-chunk.ts'];
const ADAPTERS = ['store', 'upstream'];

describe('architecture', () => {
  test('src has the layout of the request path', () => {
    const folders = new Set(modules.map((m) => folder(m.path)));
    for (const expected of ['config', 'routing', 'tokens', 'context', 'store', 'upstream', 'streaming', 'background', 'http', 'ops', 'lifecycle']) {
      expect(folders).toContain(expected);
    }
  });

  test('domain.ts and errors.ts import nothing from src', () => {
    for (const m of modules.filter((m) => m.path === 'domain.ts' || m.path === 'errors.ts')) expect(m.imports).toEqual([]);
  });

  test('the pure core imports only the domain, errors and itself, never config types', () => {
    for (const m of modules.filter((m) => PURE.includes(folder(m.path)) || PURE_FILES.includes(m.path))) {
      for (const { target } of m.imports) {
        const allowed =
          target === 'domain.ts' ||
          target === 'errors.ts' ||
          folder(target) === folder(m.path) ||
          (PURE.includes(folder(m.path)) && PURE.includes(folder(target))) ||
          (PURE_FILES.includes(m.path) && PURE.includes(folder(target))) ||
          (m.path.startsWith('streaming/') && PURE_FILES.includes(target));
        expect(allowed, `${m.path} imports ${target}`).toBe(true);
      }
      expect(m.text, `${m.path} must not log or read the clock`).not.toMatch(/\bDate\.now\(|performance\.now\(|from 'pino'|from 'undici'/);
    }
  });

  test('ops/ (logger, metrics) never imports http/', () => {
    for (const m of modules.filter((m) => folder(m.path) === 'ops')) {
      for (const { target } of m.imports) expect(folder(target), `${m.path} imports ${target}`).not.toBe('http');
    }
  });

  test('adapters never import http/', () => {
    for (const m of modules.filter((m) => ADAPTERS.includes(folder(m.path)))) {
      for (const { target } of m.imports) expect(folder(target), `${m.path} imports ${target}`).not.toBe('http');
    }
  });

  test('http/, ops/, lifecycle/ and background/ see stores only through the interfaces (and the health tracker)', () => {
    for (const m of modules.filter((m) => ['http', 'ops', 'lifecycle', 'background'].includes(folder(m.path)))) {
      for (const { target, isTypeOnly } of m.imports) {
        if (folder(target) !== 'store') continue;
        const allowed =
          (isTypeOnly && ['store/conversation-store.ts', 'store/conversation-directory.ts', 'store/response-links.ts'].includes(target)) || target === 'store/store-health.ts';
        expect(allowed, `${m.path} imports ${target}`).toBe(true);
      }
    }
  });

  test('the two-tier store (and its directory, links) sees its tiers only through the store interfaces, never the Redis or MongoDB code', () => {
    const tiered = modules.filter((m) => m.path.startsWith('store/tiered-'));
    expect(tiered.map((m) => m.path)).toContain('store/tiered-store.ts');
    for (const m of tiered) {
      for (const { target } of m.imports) expect(target, `${m.path} imports ${target}`).not.toMatch(/^store\/(redis|mongo)\//);
    }
  });

  test('only main.ts reads process.env, and nothing imports main.ts', () => {
    for (const m of modules.filter((m) => m.path !== 'main.ts' && m.path !== 'cli.ts')) {
      expect(m.text, `${m.path} reads process.env`).not.toMatch(/process\.env/);
      expect(m.imports.map((i) => i.target), `${m.path} imports main.ts`).not.toContain('main.ts');
    }
  });

  test('no utils/helpers/common files', () => {
    for (const m of modules) expect(m.path).not.toMatch(/(^|\/)(utils|helpers|common)(\.ts|\/)/);
  });
});
