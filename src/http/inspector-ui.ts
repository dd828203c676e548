import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../errors.js';

const ROOT = '/contextd/ui';
const PREFIX = `${ROOT}/`;

/** The page's files: exactly these are served, nothing else under ui/ or beside it. */
const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'inspector.js': 'text/javascript; charset=utf-8',
  'inspector.css': 'text/css; charset=utf-8',
};

// The page only loads its own script and stylesheet and calls the conversation
// API on the same origin; stored messages are shown as text, and this policy
// means that even a slip that let one become markup could run nothing.
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Never stale after an upgrade; the page is three small files.
  'cache-control': 'no-store',
};

interface UiFile {
  body: Buffer;
  contentType: string;
}

/** The inspector page (GET /contextd/ui/): static files read once, at start-up. */
export interface InspectorUi {
  handle(req: IncomingMessage, res: ServerResponse, path: string): void;
}

/** True when the path belongs to the inspector page. */
export function isInspectorUiPath(path: string): boolean {
  return path === ROOT || path.startsWith(PREFIX);
}

/**
 * Reads the page from the package's ui/ folder, found next to the module
 * whether it runs from src/ (tests), dist/src/ (the build) or an installed
 * package (node_modules/contextd/dist/src/http/).
 */
export function loadInspectorUi(folder: string = findUiFolder()): InspectorUi {
  const files = new Map<string, UiFile>(
    Object.entries(FILES).map(([name, contentType]) => [name, { body: readFileSync(join(folder, name)), contentType }]),
  );
  return {
    handle(req, res, path) {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new NotFoundError(`${req.method} ${path}`);
      if (path === ROOT) {
        // Relative, so the page also works behind a gateway that mounts contextd under a prefix.
        res.writeHead(301, { location: 'ui/', 'cache-control': 'no-store' });
        res.end();
        return;
      }
      const name = path.slice(PREFIX.length) || 'index.html';
      const file = files.get(name);
      if (file === undefined) throw new NotFoundError(`${req.method} ${path}`);
      res.writeHead(200, { ...HEADERS, 'content-type': file.contentType, 'content-length': file.body.length });
      res.end(req.method === 'HEAD' ? undefined : file.body);
    },
  };
}

function findUiFolder(): string {
  const candidates = ['../../ui', '../../../ui'].map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
  const folder = candidates.find((candidate) => existsSync(join(candidate, 'index.html')));
  if (folder === undefined) {
    throw new Error(`the inspector page's files are missing (looked in ${candidates.join(', ')}); reinstall contextd, or set ui.enabled: false`);
  }
  return folder;
}
