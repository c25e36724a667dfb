#!/usr/bin/env bash
# Builds the fuzz harnesses (clang + libFuzzer, ASan + UBSan) and runs each for a bounded time,
# starting from its seed corpus in fuzz/corpus/<name>/ (new inputs go to a scratch copy, so the
# repository's corpus is not changed). Exits non-zero on the first crash, leak or broken
# property; the input that caused it is left in the build dir (crash-*, leak-*).
#   fuzz/run.sh [SECONDS_EACH]      default 20; BUILD=dir to choose the build dir
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
BUILD=${BUILD:-build-fuzz}
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_FUZZ=ON \
    -DHERALD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
export HERALD_LOG=off
for dir in fuzz/corpus/*/; do
    name=$(basename "$dir")
    work="$BUILD/fuzz/corpus-$name"
    mkdir -p "$work"
    echo "fuzz: $name for ${SECS}s"
    (cd "$BUILD/fuzz" && ./"fuzz_$name" "corpus-$name" "../../$dir" -max_total_time="$SECS" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 2>"fuzz-$name.log") || {
        tail -40 "$BUILD/fuzz/fuzz-$name.log"
        echo "fuzz: $name FAILED (input: $BUILD/fuzz/crash-* or leak-*)" >&2
        exit 1
    }
    grep -E "^Done" "$BUILD/fuzz/fuzz-$name.log" || true
done
echo "fuzz: all harnesses ran ${SECS}s each without a finding"
