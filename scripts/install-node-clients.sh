#!/usr/bin/env bash
# Installs the Node clients of the compatibility suite that do not fit the
# root package.json: the Vercel AI SDK (test/clients/ai-sdk). It needs
# Node >= 22, which it brings as the npm package `node` (its own binary at
# test/clients/ai-sdk/node_modules/.bin/node). `npm ci` runs only when
# node_modules is missing or older than the lockfile, so a second run is quick.
# With CI set, anything that fails is an error; elsewhere it warns and the
# AI SDK tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_NODE_MAJOR=22
dir=test/clients/ai-sdk
node_bin="$dir/node_modules/.bin/node"
# npm writes this last, so it also tells a finished install from an interrupted one.
installed_marker="$dir/node_modules/.package-lock.json"

installer=install-node-clients
skipped="the AI SDK tests"
# shellcheck source=scripts/install-lib.sh
. scripts/install-lib.sh

needs_install() {
  [ ! -f "$installed_marker" ] || [ ! -x "$node_bin" ] ||
    [ "$dir/package-lock.json" -nt "$installed_marker" ] || [ "$dir/package.json" -nt "$installed_marker" ]
}

command -v npm >/dev/null 2>&1 || give_up "npm is not on PATH"

if needs_install; then
  say "npm ci in $dir"
  started=$SECONDS
  # The AI SDK's packages declare engines node >= 22 while this npm may run on an
  # older Node: they are only ever run by the Node installed next to them.
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
    give_up "npm ci failed in $dir"
  fi
  say "installed in $((SECONDS - started)) s"
fi

# The `node` package fetches its binary in an install script; check that it came and runs.
if ! version=$("$node_bin" --version 2>&1); then
  give_up "$node_bin does not run: $version"
fi
major=${version#v}
major=${major%%.*}
if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt "$MIN_NODE_MAJOR" ]; then
  give_up "$node_bin is $version; the AI SDK needs Node >= $MIN_NODE_MAJOR"
fi
if ! imported=$(cd "$dir" && node_modules/.bin/node --input-type=module -e "await import('ai'); await import('@ai-sdk/openai'); await import('zod')" 2>&1); then
  give_up "the AI SDK does not load with $version: $imported"
fi
say "AI SDK client ready (node $version in $dir)"
