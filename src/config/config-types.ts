// The normalised config the rest of contextd reads: camelCase, units in
// names, defaults merged into every route. src/config/resolve-config.ts makes
// it from the validated file (src/config/schema.ts).

import type { Route } from '../routing/route.js';
import type { ConfigPath } from './interpolate.js';
import type { ConfigFile } from './schema.js';

export interface Config {
  /** The file it was read from, or "(built-in defaults)". */
  source: string;
  server: ConfigFile['server'];
  upstream: ConfigFile['upstream'];
  conversation: ConfigFile['conversation'];
  admin: ConfigFile['admin'];
  ui: ConfigFile['ui'];
  storage: ConfigFile['storage'];
  /** User routes with the defaults merged in, then the catch-all route "default". */
  routes: readonly Route[];
}

/** The stores contextd runs on: the embedded one, or Redis and/or MongoDB. */
export type StorageConfig = ConfigFile['storage'];
export type RedisConfig = Extract<StorageConfig, { kind: 'redis' }>['redis'];
export type MongoConfig = Extract<StorageConfig, { kind: 'mongodb' }>['mongodb'];
export type MemoryConfig = Extract<StorageConfig, { kind: 'embedded' }>['memory'];

export interface ConfigProblem {
  path: ConfigPath;
  message: string;
}

export type ResolvedConfig = { kind: 'ok'; config: Config } | { kind: 'invalid'; problems: ConfigProblem[] };
