#!/bin/sh
# make lint: the checks of STYLE.md §9 that a compiler does not do.
#  1. banned functions anywhere in src/, bench/, examples/: sprintf strcpy strcat atoi strtok
#  2. raw malloc/calloc/realloc/free in the library (src/ except cli/, which, like bench/ and
#     examples/, is a program on top of it) outside core/alloc.c
#  3. clang-tidy (bugprone, cert) on all of src/, warnings are errors; skipped with a note when
#     clang-tidy or compile_commands.json is missing. Left out: implicit-widening (every hit
#     is a constant expression such as 7 * 86400 in range), branch-clone (err.c's switch maps
#     several codes to one status on purpose), easily-swappable-parameters, cert-err33-c
#     (unchecked fclose/fputs on stderr and the like).
set -u
BUILD=${1:-build}
status=0
if grep -nE '\b(sprintf|strcpy|strcat|atoi|strtok)\s*\(' src/*/*.c bench/*.c examples/*.c; then
    echo "lint: banned function (use snprintf, memcpy with a length, strtoll, strtok_r)" >&2
    status=1
fi
if grep -nE '(^|[^_a-z])(malloc|calloc|realloc|free)\s*\(' $(ls src/*/*.c | grep -v -e '^src/cli/' -e '^src/core/alloc.c$') \
        | grep -v -e 'sqlite3_free' -e 'lint:ok' | grep -v -E ':[0-9]+:[[:space:]]*"'; then
    echo "lint: raw allocation outside core/alloc.c (use herald__xmalloc / herald__free)" >&2
    status=1
fi
if command -v clang-tidy >/dev/null 2>&1 && [ -f "$BUILD/compile_commands.json" ]; then
    checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-implicit-widening-of-multiplication-result,-bugprone-branch-clone,cert-*,-cert-err33-c'
    clang-tidy -quiet -p "$BUILD" --checks="$checks" --warnings-as-errors='*' src/*/*.c 2>/dev/null || status=1 # stderr: only "N warnings generated" (system headers); findings go to stdout
else
    echo "lint: clang-tidy or $BUILD/compile_commands.json missing: clang-tidy checks skipped" >&2
fi
exit $status
