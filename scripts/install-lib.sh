# Shared by the install scripts (sourced, not run): messages, the CI rule,
# root and apt. The sourcing script sets `installer` (its name, for messages)
# and `skipped` (what goes untested without what it installs).

say() { echo "$installer: $*"; }

# A missing piece fails CI, but only warns on a developer's machine (then the
# suites that need it are skipped and say why).
problem() {
  if [ -n "${CI:-}" ]; then
    echo "$installer: error: $*" >&2
    exit 1
  fi
  echo "$installer: warning: $* ($skipped will be skipped)" >&2
}

# problem, and nothing more to do here.
give_up() {
  problem "$@"
  exit 0
}

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif ! command -v sudo >/dev/null 2>&1; then
    echo "not root and sudo is not installed" >&2
    return 1
  elif [ -t 0 ]; then
    sudo "$@"
  else
    # No terminal to type a password into: fail instead of hanging.
    sudo -n "$@"
  fi
}

apt_updated=
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get is not available" >&2; return 1; }
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
    apt_updated=1
  fi
  say "apt-get install -y $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}
