#!/usr/bin/env bash
# Installs the servers the test suites run against, when they are missing:
# redis-server and redis-cli (apt), FerretDB v1 (built with Go) unless a
# MongoDB is at hand (MONGODB_URL or mongod), and Chromium (apt) for the
# inspector page's browser test. Idempotent, and quick when
# everything is present. With CI set, anything it cannot install is an error;
# elsewhere it warns and the suites that need it are skipped.
#
# --bench: also PostgreSQL (apt's postgresql), for the benches' FerretDB on
# PostgreSQL (bench/README.md); the tests do not need it, so only when asked.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

with_bench=
for arg in "$@"; do
  case "$arg" in
    --bench) with_bench=1 ;;
    *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
  esac
done

FERRETDB_VERSION=v1.24.2
# FerretDB v1.24.2's go.mod says `go 1.24`; Debian 12's golang-go (1.19) is too old.
GO_MIN_MINOR=24
GO_DOWNLOAD_VERSION=go1.24.3
services_bin="$repo/.services/bin"

installer=install-services
skipped="the suites that need it"
# shellcheck source=scripts/install-lib.sh
. "$repo/scripts/install-lib.sh"

# ---- Redis ----

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  say "redis: $(command -v redis-server)"
else
  # redis-cli (redis-tools) comes with redis-server; the cluster tests need it.
  if apt_install redis-server redis-tools && command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    say "redis: installed $(command -v redis-server)"
  else
    problem "redis-server not found and could not be installed (apt-get install -y redis-server redis-tools failed, see above)"
  fi
fi

# ---- MongoDB: an external one, mongod, or FerretDB ----

# Prints the first FerretDB that actually runs. The test helper
# (test/support/services.ts) searches the same places in the same order.
find_ferretdb() {
  local candidate seen=" "
  for candidate in "$services_bin/ferretdb" "$(command -v ferretdb 2>/dev/null || true)" \
    ${GOBIN:+"$GOBIN/ferretdb"} "${GOPATH:-${HOME:-}/go}/bin/ferretdb" "${HOME:-}/go/bin/ferretdb"; do
    [ -n "$candidate" ] && [ -f "$candidate" ] && [ -x "$candidate" ] || continue
    case "$seen" in *" $candidate "*) continue ;; esac
    seen="$seen$candidate "
    # A plain `go install ...@v1.24.2` build panics at start (no build/version/version.txt).
    if "$candidate" --version >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
    say "ignoring $candidate: \`ferretdb --version\` fails (a plain \`go install\` build of FerretDB v1 panics at start)" >&2
  done
  return 1
}

go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p'; }

# Prints a Go toolchain that can build FerretDB, downloading one into .services/go when none can.
find_go() {
  local candidate minor
  for candidate in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go "$repo/.services/go/bin/go"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    minor=$(go_minor "$candidate")
    if [ -n "$minor" ] && [ "$minor" -ge "$GO_MIN_MINOR" ]; then
      echo "$candidate"
      return 0
    fi
    say "ignoring $candidate: $("$candidate" env GOVERSION 2>/dev/null || echo 'unknown version') is older than go1.$GO_MIN_MINOR" >&2
  done
  download_go >&2 || return 1
  echo "$repo/.services/go/bin/go"
}

download_go() {
  local arch archive url expected actual
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "no Go download for $(uname -m)" >&2; return 1 ;;
  esac
  command -v curl >/dev/null 2>&1 || apt_install ca-certificates curl || return 1
  archive="$GO_DOWNLOAD_VERSION.linux-$arch.tar.gz"
  url="https://dl.google.com/go/$archive"
  say "downloading $url into .services/go"
  rm -rf "$repo/.services/go" "$repo/.services/$archive"
  mkdir -p "$repo/.services"
  curl -fsSL --retry 3 -o "$repo/.services/$archive" "$url" || return 1
  expected=$(curl -fsSL --retry 3 "$url.sha256") || return 1
  actual=$(sha256sum "$repo/.services/$archive" | cut -d' ' -f1)
  if [ "$expected" != "$actual" ]; then
    echo "$archive: sha256 $actual, expected $expected" >&2
    return 1
  fi
  tar -C "$repo/.services" -xzf "$repo/.services/$archive" && rm -f "$repo/.services/$archive"
}

# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary
# that panics at start: FerretDB's main package requires build/version/version.txt,
# which the module zip lacks. So this builds from a copy of the module source with
# that file written, as FerretDB's own docs say to.
build_ferretdb() {
  local go work status=0
  go=$(find_go) || { echo "no Go >= 1.$GO_MIN_MINOR to build FerretDB with" >&2; return 1; }
  work=$(mktemp -d -t contextd-ferretdb-XXXXXX)
  say "building FerretDB $FERRETDB_VERSION with $("$go" env GOVERSION) into .services/bin (a few minutes on a fresh machine)"
  (cd "$work" && export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false && build_ferretdb_in "$go") || status=$?
  rm -rf "$work" "$services_bin/ferretdb.$$"
  [ "$status" = 0 ] || return "$status"
  "$services_bin/ferretdb" --version >/dev/null || { echo "the FerretDB just built does not run" >&2; return 1; }
}

# Every step checks its own status: `set -e` does not apply inside a function called from an `&&` list.
build_ferretdb_in() {
  local go=$1 dir
  dir=$("$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION failed" >&2; return 1; }
  cp -R "$dir" src && chmod -R u+w src || return 1
  echo "$FERRETDB_VERSION" >src/build/version/version.txt || return 1
  mkdir -p "$services_bin" || return 1
  # Built under a temporary name and renamed, so a concurrent run never sees half a binary.
  (cd src && "$go" build -trimpath -o "$services_bin/ferretdb.$$" ./cmd/ferretdb) || return 1
  mv -f "$services_bin/ferretdb.$$" "$services_bin/ferretdb"
}

if [ -n "${MONGODB_URL:-}" ]; then
  say "mongodb: MONGODB_URL is set, using it"
elif command -v mongod >/dev/null 2>&1; then
  say "mongodb: $(command -v mongod)"
elif ferretdb=$(find_ferretdb); then
  say "mongodb: FerretDB $ferretdb"
else
  started_s=$SECONDS
  if build_ferretdb; then
    say "mongodb: built $services_bin/ferretdb in $((SECONDS - started_s)) s"
  else
    problem "no MongoDB for the tests: MONGODB_URL is unset, mongod is not on PATH, and FerretDB $FERRETDB_VERSION could not be built (see above)"
  fi
fi

# ---- Chromium, for the inspector page's browser test (test/ui) ----

# Debian's chromium, driven by puppeteer-core; test/support/browser.ts searches
# the same names in the same order (CHROMIUM_PATH first).
find_chromium() {
  local candidate
  for candidate in "${CHROMIUM_PATH:-}" chromium chromium-browser google-chrome-stable google-chrome; do
    [ -n "$candidate" ] && command -v "$candidate" 2>/dev/null && return 0
  done
  return 1
}

if chromium=$(find_chromium); then
  say "chromium: $chromium"
elif apt_install chromium && chromium=$(find_chromium); then
  say "chromium: installed $chromium"
else
  problem "chromium not found and could not be installed (apt-get install -y chromium failed, see above)"
fi

# ---- PostgreSQL, for the benches' FerretDB (only with --bench) ----

# Prints the directory holding postgres, initdb and psql. bench/postgres-ferretdb.ts
# searches the same places in the same order: where `postgres`, `initdb` or `psql`
# on PATH link to, then the newest /usr/lib/postgresql/N/bin (Debian's layout,
# which puts only psql's wrapper on PATH).
find_postgres() {
  local candidate dir
  for candidate in postgres initdb psql; do
    candidate=$(command -v "$candidate" 2>/dev/null || true)
    [ -n "$candidate" ] || continue
    dir=$(dirname "$(readlink -f "$candidate")")
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/psql" ]; then
      echo "$dir"
      return 0
    fi
  done
  # Newest first: /usr/lib/postgresql/N/bin sorted on N, the fifth /-separated field.
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -n -r); do
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/psql" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

if [ -n "$with_bench" ]; then
  skipped="the benches' FerretDB on PostgreSQL (they fall back to FerretDB on SQLite)"
  # The bench runs its own cluster in a temp dir (initdb, postgres on a free port); the package's own cluster is not used.
  if postgres_bin=$(find_postgres); then
    say "postgresql: $postgres_bin"
  elif apt_install postgresql && postgres_bin=$(find_postgres); then
    say "postgresql: installed $postgres_bin"
  else
    problem "PostgreSQL (postgres, initdb, psql) not found and could not be installed (apt-get install -y postgresql failed, see above)"
  fi
  # PostgreSQL refuses to run as root: a root bench runs it as the postgres user, which the package creates.
  if [ -n "${postgres_bin:-}" ] && [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    problem "running as root and there is no postgres user to run PostgreSQL as (apt-get install postgresql creates it)"
  fi
fi
