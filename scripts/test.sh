#!/usr/bin/env bash
# The one test command (`npm test`): builds what the end-to-end tests run,
# runs every suite, and ends with a plain `N passed, N failed` line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ]; then npm ci; fi
npm run build --silent

report=$(mktemp -t contextd-vitest-XXXXXX.json)
trap 'rm -f "$report"' EXIT
status=0
# Redis and a MongoDB (or FerretDB) for the store suites. With CI set a service it
# cannot install fails the run; the suites still run, and those needing it fail too.
bash scripts/install-services.sh || status=1
# The real clients of the compatibility suite: a Python virtualenv (.venv-clients)
# and the AI SDK's own node_modules (it needs a newer Node, which it brings).
bash scripts/install-python-clients.sh || status=1
bash scripts/install-node-clients.sh || status=1
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?

node -e '
  const fs = require("node:fs");
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { console.log("0 passed, 1 failed"); process.exit(1); }
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A suite that failed to load counts as a failure even though no test in it ran.
  const brokenSuites = (r.testResults ?? []).filter((s) => s.status === "failed" && (s.assertionResults ?? []).length === 0).length;
  const failed = r.numFailedTests + brokenSuites;
  console.log(`${r.numPassedTests} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
  if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
' "$report" || status=1
exit $status
