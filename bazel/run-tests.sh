#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test: the unit
# tier and the e2e tier (which needs root). Ends with one plain line,
# "N passed, N failed, N skipped", counting test cases; exits non-zero when
# anything failed or did not build.
#
#   bazel/run-tests.sh [extra bazel test flags]
set -uo pipefail
cd "$(dirname "$0")/.."

bazel/install-deps.sh || exit 1

bazel test //... "$@"
bazel_rc=$?

passed=0 failed=0 skipped=0
for target in $(bazel query 'tests(//...)' 2>/dev/null); do
  path=${target#//}
  xml=".bazel/testlogs/${path/://}/test.xml"
  if [[ ! -f $xml ]]; then
    # Did not build or did not run.
    failed=$((failed + 1))
    echo "no result for $target" >&2
    continue
  fi
  total=0 bad=0
  while read -r tests failures errors; do
    total=$((total + tests)); bad=$((bad + failures + errors))
  done < <(sed -n 's/.*<testsuite [^>]*tests="\([0-9]*\)" failures="\([0-9]*\)"[^>]* errors="\([0-9]*\)".*/\1 \2 \3/p' "$xml")
  skips=$(grep -c 'result="skipped"' "$xml")
  # A test binary that crashed before writing its report has a Bazel-made
  # report: make sure it counts as a failure.
  if grep -q '<failure' "$xml" && ((bad == 0)); then bad=1; fi
  passed=$((passed + total - bad - skips)); failed=$((failed + bad)); skipped=$((skipped + skips))
done
if ((bazel_rc != 0 && failed == 0)); then failed=1; fi

# Skipped tests say why in their output; repeat it so it cannot go unseen.
if ((skipped > 0)); then
  echo "== skipped tests and their reasons =="
  grep -h -B1 -A2 '^\[  SKIPPED \]' .bazel/testlogs/*/test.log .bazel/testlogs/*/*/test.log \
    .bazel/testlogs/*/*/*/test.log 2>/dev/null | grep -v '^--$' | head -40
fi

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0 && bazel_rc == 0))
