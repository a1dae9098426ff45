#!/usr/bin/env bash
# Builds kdcl's libFuzzer targets (clang, ASan + UBSan, in build-fuzz/) and runs one of them.
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
# TARGET: model_spec (kd_model_parse), dataset (kd_dataset_open and its scans and row reads),
# checkpoint (kd_checkpoint_read), or all (each for SECONDS). The run starts from the seed corpus
# tests/fuzz/corpus/TARGET/ plus build-fuzz/corpus/TARGET/ (what earlier runs found, kept
# out of the repository); a crash is written to build-fuzz/crashes/TARGET/ and stops the run:
# fix it, then copy the input to tests/fuzz/regressions/TARGET/, where ctest (fuzz.TARGET)
# replays it with the normal build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh model_spec|dataset|checkpoint|all SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
case $target in
  all) for t in model_spec dataset checkpoint; do "$0" "$t" "$seconds" "$@"; done; exit 0 ;;
  model_spec|dataset|checkpoint) ;;
  *) echo "scripts/fuzz.sh: unknown target '$target' (model_spec, dataset, checkpoint, all)" >&2; exit 2 ;;
esac
bash "$root/scripts/setup.sh" --fuzz
build=$root/build-fuzz
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DKDCL_FUZZ=ON -DKDCL_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "fuzz_$target" >/dev/null
mkdir -p "$build/corpus/$target" "$build/crashes/$target"
seeds=("$root/tests/fuzz/corpus/$target")
[ -d "$root/tests/fuzz/regressions/$target" ] && seeds+=("$root/tests/fuzz/regressions/$target")
dict=(-dict="$root/tests/fuzz/hdf5.dict")
[ "$target" = model_spec ] && dict=(-dict="$root/tests/fuzz/model_spec.dict")
# detect_leaks=0: libhdf5 keeps free lists and caches between inputs that LeakSanitizer's
# per-input check would report; leaks in kdcl's own readers are what the ASan ctest pass and
# valgrind catch. A file that claims a huge object makes libhdf5 ask for gigabytes: allocations
# over 1 GiB fail (as on a machine without them) instead of counting as crashes, while the RSS
# limit still catches memory really used. kdcl checks each HDF5 file in a child process first
# (data/h5util.c); its time limit stays well under -timeout. The scratch file goes to build-fuzz/.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export KDCL_H5_CHECK_SECONDS=${KDCL_H5_CHECK_SECONDS:-5}
export TMPDIR=$build
echo "fuzzing $target for ${seconds}s (crashes go to build-fuzz/crashes/$target/)" >&2
exec "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 \
  -malloc_limit_mb=65536 -print_final_stats=1 -artifact_prefix="$build/crashes/$target/" \
  "${dict[@]}" "$@" "$build/corpus/$target" "${seeds[@]}"
