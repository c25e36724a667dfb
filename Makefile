# Thin wrapper: the build is CMake, the tests are ctest. See README.md.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build run test fmt lint clean bench

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: a walkthrough of the queue core (sends, a consumer, a retry, a dead letter, stats).
run: build
	@./$(BUILD)/herald_tour

test: build
	@cd $(BUILD) && ctest --no-tests=error --output-on-failure -j $(JOBS)

bench: build
	@./$(BUILD)/herald bench queue
	@./$(BUILD)/herald bench eo

fmt:
	@clang-format -i include/*.h src/*/*.c src/*/*.h tests/*/*.c tests/*/*.h bench/*.c examples/*.c

lint: build
	@./scripts/lint.sh $(BUILD)

clean:
	@rm -rf $(BUILD)
