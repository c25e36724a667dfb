#!/bin/sh
# SPDX-License-Identifier: MIT
# test_install.sh - Herald installs and links like any C library (issue 7 §2).
#   1. `cmake --install BUILD --prefix /opt/herald` into a DESTDIR staging tree (as `make install
#      DESTDIR=... PREFIX=...` does): the binary, libherald.a, libherald.so with SONAME
#      libherald.so.0 -> libherald.so.0.1.0, herald.h, herald.pc, the example catalog;
#   2. the shared library exports only the public API (herald_*, no herald__ internals);
#   3. the installed examples/effectively_once.c builds with pkg-config alone (PKG_CONFIG_PATH at
#      the staging tree, no -I or -L into the source or build tree), links libherald.so, and runs
#      with LD_LIBRARY_PATH at the installed lib; `pkg-config --static` links it statically;
#   4. the installed `herald` runs.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR   (ctest passes both; $HERALD_TEST_CFLAGS: extra
# compiler flags, e.g. the sanitizers of an ASan build). Prints what failed and exits 1; 0 when
# all holds.
set -eu

build=$(cd "${1:?usage: test_install.sh BUILD_DIR SOURCE_DIR}" && pwd)
src=$(cd "${2:?usage: test_install.sh BUILD_DIR SOURCE_DIR}" && pwd)
extra=${HERALD_TEST_CFLAGS:-}
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
    echo "test_install: FAIL: $*" >&2
    exit 1
}

stage=$tmp/stage
DESTDIR=$stage cmake --install "$build" --prefix /opt/herald >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
root=$stage/opt/herald
[ -d "$root" ] || fail "DESTDIR not honoured: nothing under $root"

# 1. the files, wherever GNUInstallDirs put lib (lib or lib/<multiarch>)
pc=$(find "$root" -name herald.pc)
[ -n "$pc" ] || fail "no herald.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$root/bin/herald" "$root/include/herald.h" "$libdir/libherald.a" \
         "$libdir/libherald.so.0.1.0" "$root/share/herald/events.jsonc" \
         "$root/share/herald/examples/effectively_once.c"; do
    [ -f "$f" ] || fail "not installed: ${f#$stage}"
done
[ -x "$root/bin/herald" ] || fail "bin/herald is not executable"
[ "$(readlink "$libdir/libherald.so")" = libherald.so.0 ] || fail "libherald.so -> $(readlink "$libdir/libherald.so")"
[ "$(readlink "$libdir/libherald.so.0")" = libherald.so.0.1.0 ] || fail "libherald.so.0 -> $(readlink "$libdir/libherald.so.0")"
soname=$(objdump -p "$libdir/libherald.so.0.1.0" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libherald.so.0 ] || fail "SONAME is '$soname', want libherald.so.0"
if [ -f "$src/examples/herald.jsonc" ]; then
    [ -f "$root/share/herald/herald.jsonc" ] || fail "examples/herald.jsonc is not installed"
fi

# 2. only the public API is exported
internal=$(nm -D --defined-only "$libdir/libherald.so.0.1.0" | awk '{ print $3 }' | grep -v '^herald_[a-z]' || true)
[ -z "$internal" ] || fail "libherald.so exports non-API symbols: $(echo "$internal" | head -5)"
nm -D --defined-only "$libdir/libherald.so.0.1.0" | grep -q ' herald_send$' || fail "herald_send is not exported"

# 3. build and run against the installed files only (a copy of the installed example in a dir
#    of its own: nothing of the source tree is on any path)
export PKG_CONFIG_PATH="$(dirname "$pc")"
unset PKG_CONFIG_LIBDIR 2>/dev/null || true
pkg-config --exists herald || fail "pkg-config does not find herald: $(pkg-config --print-errors --exists herald 2>&1)"
[ "$(pkg-config --modversion herald)" = 0.1.0 ] || fail "modversion $(pkg-config --modversion herald)"
flags=$(pkg-config --cflags --libs herald)
case "$flags" in *"$stage"*) ;; *) fail "pkg-config flags do not point at the installed tree: $flags" ;; esac
mkdir "$tmp/app"
cp "$root/share/herald/examples/effectively_once.c" "$tmp/app/app.c"
cd "$tmp/app"
# shellcheck disable=SC2086 # word splitting of the flags is intended
$cc -std=c11 -Wall -Wextra -Werror $extra app.c -o app $flags 2>"$tmp/cc.log" ||
    { cat "$tmp/cc.log" >&2; fail "the example does not build with: $cc app.c $flags"; }
LD_LIBRARY_PATH=$libdir ldd ./app | grep -q "libherald.so.0 => $libdir/libherald.so.0" ||
    fail "app is not linked to the installed libherald.so.0: $(LD_LIBRARY_PATH=$libdir ldd ./app)"
LD_LIBRARY_PATH=$libdir ./app "sqlite:$tmp/app/eo.db" >"$tmp/run.log" 2>&1 ||
    { cat "$tmp/run.log" >&2; fail "the example built against the installed library failed"; }
grep -q "1 research.completed event" "$tmp/run.log" || fail "unexpected output: $(cat "$tmp/run.log")"

# --static: Requires.private and Libs.private give SQLite (and its -lm -lz), Jansson and
# pthreads, enough for a fully static program. (The sanitizers cannot link statically: an ASan
# build checks the flags only.)
sflags=$(pkg-config --static --cflags --libs herald)
for lib in -lherald -lsqlite3 -ljansson -pthread; do
    case "$sflags" in *"$lib"*) ;; *) fail "pkg-config --static --libs lacks $lib: $sflags" ;; esac
done
if [ -z "$extra" ]; then
    # shellcheck disable=SC2086
    $cc -std=c11 app.c -o app-static $sflags -static 2>"$tmp/cc-static.log" ||
        { cat "$tmp/cc-static.log" >&2; fail "cc app.c \$(pkg-config --static --cflags --libs herald) -static failed"; }
    if readelf -d ./app-static 2>/dev/null | grep -q NEEDED; then
        fail "app-static is not static: $(readelf -d ./app-static | grep NEEDED)"
    fi
    ./app-static "sqlite:$tmp/app/eo-static.db" >"$tmp/run-static.log" 2>&1 ||
        { cat "$tmp/run-static.log" >&2; fail "the statically linked example failed"; }
    grep -q "1 research.completed event" "$tmp/run-static.log" || fail "static: $(cat "$tmp/run-static.log")"
fi

# 4. the installed command
"$root/bin/herald" version | grep -q '^herald 0\.1\.0$' || fail "installed herald: $("$root/bin/herald" version 2>&1)"

echo "test_install: ok (installed under DESTDIR/opt/herald; built with: $flags)"
