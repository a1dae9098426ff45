#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs the whole test suite
# (unit tests of every kernel against double-precision references, the CLI end to end, the fuzz
# regressions, and the host-only tests under valgrind), then builds again with AddressSanitizer
# and UndefinedBehaviorSanitizer (build-asan/) and runs the tests there a second time.
# Extra arguments go to both ctest runs; KDCL_TEST_SANITIZE=0 skips the sanitizer pass.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure -j1 "$@"
if [ "${KDCL_TEST_SANITIZE:-1}" != 0 ]; then
  echo "kdcl tests: again with ASan + UBSan (build-asan/)" >&2
  cmake -S "$root" -B "$root/build-asan" -DKDCL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >/dev/null
  cmake --build "$root/build-asan" -j"$(nproc)"
  cd "$root/build-asan"
  ctest --output-on-failure -j1 "$@"
fi
