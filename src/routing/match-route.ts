// Which route's policy a request gets: the first route whose every condition
// matches, else the catch-all "default". Globs are compiled once, at startup.

import type { Route } from './route.js';

export interface RouteRequest {
  /** The request path; a query string, if any, is ignored. */
  path: string;
  model: string | undefined;
  /** As node gives them: names lowercased, repeated headers possibly as an array. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface RouteMatcher {
  match(request: RouteRequest): Route;
}

type Condition = (request: RouteRequest) => boolean;

export function compileRoutes(routes: readonly Route[]): RouteMatcher {
  const fallback = routes.find((route) => route.name === 'default');
  if (fallback === undefined) throw new Error('compileRoutes: the routes must include the catch-all route "default"');

  const compiled = routes.map((route) => ({
    route,
    conditions: compileConditions(route),
  }));
  return {
    match(request) {
      for (const { route, conditions } of compiled) {
        if (conditions.every((condition) => condition(request))) return route;
      }
      return fallback;
    },
  };
}


function compileConditions({ match }: Route): Condition[] {
  const conditions: Condition[] = [];
  if (match.path !== undefined) {
    const path = globToRegExp(match.path);
    conditions.push((request) => path.test(withoutQuery(request.path)));
  }
  if (match.model !== undefined) {
    const model = globToRegExp(match.model);
    conditions.push((request) => request.model !== undefined && model.test(request.model));
  }
  for (const [name, valueGlob] of Object.entries(match.headers)) {
    const header = name.toLowerCase();
    const value = globToRegExp(valueGlob);
    conditions.push((request) => {
      const received = request.headers[header];
      // A repeated header matches when any of its values does.
      return Array.isArray(received) ? received.some((item) => value.test(item)) : received !== undefined && value.test(received);
    });
  }
  return conditions;
}

/** `*` is any run of characters (slashes included), `?` exactly one; everything else is literal and case-sensitive. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else source += char.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  }
  // `s` lets `.` match newlines too; `u` makes `?` one code point, not half a surrogate pair.
  return new RegExp(`^${source}$`, 'su');
}

function withoutQuery(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}
