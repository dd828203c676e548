#!/usr/bin/env bash
# Makes a build of contextd at another git revision for `npm run bench --
# --baseline <dir>`: a detached worktree in a temp dir, node_modules linked from
# this checkout (the dependencies of the revision must be the same or
# compatible), built with that revision's own build command. Prints the dir
# (the only line on stdout); remove it after with `git worktree remove --force <dir>`.
#
#   dir=$(bash scripts/bench-baseline.sh main)
#   npm run bench -- --baseline "$dir"
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash scripts/bench-baseline.sh <git-rev>" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
rev=$(git -C "$root" rev-parse --short "$1^{commit}")
dir=$(mktemp -d "${TMPDIR:-/tmp}/contextd-baseline-$rev-XXXXXX")

# Not left half-made: a failed build removes the worktree again.
built=0
cleanup() { if [ "$built" -eq 0 ]; then git -C "$root" worktree remove --force "$dir" >/dev/null 2>&1 || rm -rf "$dir"; fi; }
trap cleanup EXIT

git -C "$root" worktree add --detach "$dir" "$rev" >&2
ln -s "$root/node_modules" "$dir/node_modules"
# The revision's own build command (npm run build), else plain tsc on its tsconfig.
if (cd "$dir" && node -e 'process.exit(require("./package.json").scripts?.build ? 0 : 1)'); then
  (cd "$dir" && npm run build --silent) >&2
else
  (cd "$dir" && npx --no-install tsc -p .) >&2
fi
if [ ! -f "$dir/dist/src/cli.js" ]; then
  echo "bench-baseline: the build at $rev made no dist/src/cli.js" >&2
  exit 1
fi
built=1
echo "$dir"
