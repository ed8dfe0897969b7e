# kappa: the two commands of the README.
#   make run    install what is missing, build, run the server with the demo
#   make test   install what is missing, build twice (plain and ASan+UBSan),
#               run every test in both builds
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
DATA       ?= .kappa-data
LISTEN     ?= 127.0.0.1:7070
HTTP       ?= 127.0.0.1:7071
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 12

.PHONY: all deps build build-asan run test test-plain test-asan fuzz bench clean

all: build

deps:
	@.ci/deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKAPPA_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	KAPPAD=$(BUILD)/kappad KAPPACTL=$(BUILD)/kappactl TOPK=$(BUILD)/examples/topk.so \
	  examples/demo.sh "$(DATA)" "$(LISTEN)" "$(HTTP)"

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j 2

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2

# The fuzz target needs clang; skipped (with a note) when it is absent.
fuzz: deps
	@if command -v clang >/dev/null 2>&1; then \
	  CC=clang cmake -S . -B $(FUZZ_BUILD) -DKAPPA_FUZZ=ON -DKAPPA_TESTS=ON \
	    -DKAPPA_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null && \
	  cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_request \
	    fuzz_http fuzz_batch fuzz_luamp fuzz_config && \
	  cd $(FUZZ_BUILD) && ctest --output-on-failure -j 2 -R '^fuzz\.'; \
	else echo "clang not found: fuzz target skipped"; fi

test: test-plain test-asan fuzz

bench: build
	$(BUILD)/kappa-bench --kappad $(BUILD)/kappad

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
