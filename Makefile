# Thin wrapper: the build is CMake, the tests are ctest. See README.md.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps configure build run test install fmt lint clean bench

all: build

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Builds only what the tour needs (and the herald command it points to), quietly: the build's
# output is shown only when it fails. Then the demo: a walkthrough of the queue core (sends, a
# consumer, a retry, a dead letter, stats).
run: configure
	@log=$$(mktemp) && echo "Building the tour (output in case of failure only) ..." && \
	if env -u MAKEFLAGS -u MAKELEVEL cmake --build $(BUILD) -j $(JOBS) --target herald_tour herald \
		>"$$log" 2>&1; then \
		rm -f "$$log"; \
	else \
		cat "$$log"; rm -f "$$log"; echo "make run: the build failed (output above)" >&2; exit 1; \
	fi
	@./$(BUILD)/herald_tour

test: build
	@cd $(BUILD) && ctest --no-tests=error --output-on-failure -j $(JOBS)

# Installs bin/herald, lib/libherald.{a,so}, lib/pkgconfig/herald.pc, include/herald.h and
# share/herald under $(DESTDIR)$(PREFIX) (default /usr/local); refreshes the loader's cache when
# installing for real as root, so programs find libherald.so.0 at once.
install: configure
	@cmake --build $(BUILD) -j $(JOBS) --target herald herald_lib herald_shared
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

bench: build
	@./$(BUILD)/herald bench queue
	@./$(BUILD)/herald bench eo

fmt:
	@clang-format -i include/*.h src/*/*.c src/*/*.h tests/*/*.c tests/*/*.h bench/*.c examples/*.c

lint: build
	@./scripts/lint.sh $(BUILD)

clean:
	@rm -rf $(BUILD)
