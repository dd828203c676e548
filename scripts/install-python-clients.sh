#!/usr/bin/env bash
# Installs the real Python clients of the compatibility suite into a virtualenv
# at .venv-clients, pinned by test/clients/python/requirements.txt. Idempotent,
# and quick when done already: a stamp in the venv records the sha256 of the
# requirements it was installed from. With CI set, anything it cannot install
# is an error; elsewhere it warns and the Python client suites are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

venv="$repo/.venv-clients"
requirements="$repo/test/clients/python/requirements.txt"
stamp="$venv/.requirements.sha256"

installer=install-python-clients
skipped="the Python client suites"
# shellcheck source=scripts/install-lib.sh
. "$repo/scripts/install-lib.sh"
export PIP_ROOT_USER_ACTION=ignore

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$(command -v "$candidate"); break; fi
  done
fi
[ -n "$python" ] || give_up "no python3 on PATH"
command -v "$python" >/dev/null 2>&1 || give_up "$python (PYTHON) is not an executable"
# The pinned clients need Python 3.9 or newer (openai-agents and litellm: 3.9+).
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
  || give_up "$python is $("$python" -V 2>&1); the clients need Python 3.9 or newer"

# The stamp: the sha256 of requirements.txt (test/clients/python/support.ts checks the same).
wanted=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && "$venv/bin/python" -c '' 2>/dev/null; then
  say "up to date: $venv"
  exit 0
fi

# ---- the virtualenv ----

venv_works() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }

make_venv() {
  rm -rf "$venv"
  "$python" -m venv "$venv" && venv_works
}

if ! venv_works; then
  say "creating $venv with $("$python" -V 2>&1)"
  if ! make_venv; then
    # Debian's python3 has no ensurepip without python3-venv (or python3.X-venv);
    # a Python of its own (pyenv, a tarball) gains nothing from those packages.
    minor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    is_debian_python=
    case "$(readlink -f "$python")" in /usr/bin/*) is_debian_python=1 ;; esac
    if [ -n "$is_debian_python" ]; then say "python -m venv failed; trying Debian's python$minor-venv / python3-venv"; fi
    if ! { [ -n "$is_debian_python" ] && { apt_install "python$minor-venv" || apt_install python3-venv; } && make_venv; }; then
      say "trying virtualenv from PyPI"
      rm -rf "$venv"
      if ! { "$python" -m pip install --disable-pip-version-check --no-warn-script-location -q --user virtualenv \
        || "$python" -m pip install --disable-pip-version-check --no-warn-script-location -q --break-system-packages --user virtualenv; } \
        || ! "$python" -m virtualenv -q "$venv" || ! venv_works; then
        rm -rf "$venv"
        give_up "could not create a virtualenv at $venv (python -m venv, python3-venv and virtualenv all failed, see above)"
      fi
    fi
  fi
fi

# ---- the clients ----

rm -f "$stamp"
say "pip install -r test/clients/python/requirements.txt"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"; then
  give_up "pip install -r $requirements failed (see above)"
fi
# Imports each client once: a broken install fails here, not halfway through the suite.
if ! LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c 'import openai, langchain_openai, litellm, agents' ; then
  give_up "the clients installed in $venv do not import (see above)"
fi
echo "$wanted" >"$stamp"
say "installed: $("$venv/bin/python" -m pip freeze --disable-pip-version-check | grep -iE '^(openai|langchain-openai|langchain-core|litellm|openai-agents)==' | tr '\n' ' ')"
