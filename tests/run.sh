#!/usr/bin/env bash
# Runs the whole test suite: installs the dependencies, builds edgefleet with
# AddressSanitizer + UndefinedBehaviorSanitizer and -Werror in build-test/,
# then runs every test through ctest (unit, integration, fuzz replays, browser).
# Exits non-zero on any failure. Works from any directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

./deploy/install-deps.sh

build="build-test"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Integration tests run the interpreter at /usr/bin/python3 (Debian's, with the
# python3-* packages installed above), whatever python3 is first on PATH.

# The dashboard's front-end packages (uPlot, served from node_modules/) and the
# browser test's driver (playwright-core), exactly as package-lock.json pins them.
npm ci --no-audit --no-fund

cmake -S . -B "$build" \
  -DCMAKE_BUILD_TYPE=Debug \
  -DEF_SANITIZE=ON \
  -DEF_WERROR=ON \
  -DEF_TESTS=ON
cmake --build "$build" -j"$(nproc)"

# Integration tests pick their own free ports, so two may run at once.
cd "$build"
# --no-tests=error: a suite that finds nothing to run has failed, not passed.
ctest --output-on-failure -j2 --timeout 600 --no-tests=error
