// --baseline <dir>: another build of contextd (a directory holding
// dist/src/cli.js, e.g. a git worktree of an older commit that
// scripts/bench-baseline.sh made and built). The side-by-side pass runs its
// contextd beside this build's, on the same config, and measures its short
// path in the same rounds, so a change's effect is a ratio from one run
// (issue 16) rather than two runs minutes apart on a shared machine.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This build's root (from dist/bench/). */
const THIS_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface BaselineBuild {
  /** The build's root: contextd runs from here. */
  dir: string;
  /** Its `dist/src/cli.js`. */
  cliPath: string;
  /** How the tables name it: the short git revision (", modified" when the checkout differs from it), else the directory's name. */
  label: string;
  /** This build's, alike: what the baseline is compared with. */
  thisLabel: string;
  /** Whether its config knows `budget.drift_warning` (builds before issue 15 refuse it as an unknown key). */
  knowsDriftWarning: boolean;
}

function git(dir: string, args: readonly string[]): string | undefined {
  const result = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** Checks that `dir` holds a build and names it; throws with what is missing. */
export function baselineBuild(dir: string): BaselineBuild {
  const root = resolve(dir);
  const cliPath = join(root, 'dist', 'src', 'cli.js');
  if (!existsSync(cliPath)) throw new Error(`--baseline ${dir}: no ${cliPath} (build it first: scripts/bench-baseline.sh <git-rev> makes and builds one)`);
  return { dir: root, cliPath, label: labelOf(root), thisLabel: labelOf(THIS_ROOT), knowsDriftWarning: schemaKnows(root, 'drift_warning') };
}

/** Whether the build's JSON schema (schema/contextd.schema.json) names `key`; a build without one is taken to know it. */
function schemaKnows(root: string, key: string): boolean {
  const schemaPath = join(root, 'schema', 'contextd.schema.json');
  return !existsSync(schemaPath) || readFileSync(schemaPath, 'utf8').includes(`"${key}"`);
}

function labelOf(dir: string): string {
  return revisionOf(dir) ?? basename(resolve(dir));
}

/** The git revision checked out at `dir` itself (not at a repository that merely contains it). */
function revisionOf(dir: string): string | undefined {
  const top = git(dir, ['rev-parse', '--show-toplevel']);
  if (top === undefined || realpathSync(top) !== realpathSync(dir)) return undefined;
  const rev = git(dir, ['rev-parse', '--short', 'HEAD']);
  if (rev === undefined) return undefined;
  // Not counted: the worktree's node_modules symlink, untracked there (.gitignore's `node_modules/` matches directories only).
  const changes = git(dir, ['status', '--porcelain'])
    ?.split('\n')
    .filter((line) => line !== '' && line !== '?? node_modules');
  return changes === undefined || changes.length === 0 ? rev : `${rev}, modified`;
}
