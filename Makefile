# rvs: the two commands of the README, and the usual developer targets.
#   make demo   clients -> rvsd (DPDK, NAT) -> two HTTP servers, in network namespaces
#   make test   the whole test suite (namespace tests run for real as root), the Debian package
#               test included (scripts/test-deb.sh: about 15 s on the debug build)
#   make deb    the Debian package, target/debian/rvs_VERSION_ARCH.deb (scripts/build-deb.sh)
#   make compare        rvs against kernel routing, nftables DNAT, IPVS and HAProxy (rvs-compare;
#                       README "Against the kernel and HAProxy"): table, JSON, plots in target/compare
#   make compare-bench  a full rvs-bench run, plotted into target/compare/bench-mpps.svg
#   make fuzz   every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (nightly; not part of test)
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all deps build release test test-deb deb lint fmt demo compare compare-bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

# ipvsadm-save/ipvsadm-restore go next to the ipvsadm they wrap, as the ipvsadm package ships them.
WRAPPERS := ctl/scripts/ipvsadm-save ctl/scripts/ipvsadm-restore

build: deps
	$(CARGO) build --workspace --all-targets
	install -m 0755 $(WRAPPERS) target/debug/

release: deps
	$(CARGO) build --workspace --release
	install -m 0755 $(WRAPPERS) target/release/

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps lint
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace -- --test-threads=2
	scripts/test-deb.sh target/debug

# Build the package from the debug binaries, install, use, remove and purge it (root).
test-deb: deps
	$(CARGO) build --workspace --bins --examples
	scripts/test-deb.sh target/debug

deb: deps
	$(CARGO) build --workspace --release --bins --examples
	scripts/build-deb.sh target/release target/debian

demo: deps
	$(CARGO) build --workspace --release
	scripts/demo.sh target/release

# Options go through COMPARE_ARGS, e.g. COMPARE_ARGS="--rvs-a OLD/rvsd --rvs-b target/release/rvsd"
# for an A/B run of two builds, or "--seconds 5 --directors routing,rvs-nat".
COMPARE_ARGS ?=
compare: deps
	$(CARGO) build --workspace --release --bins
	target/release/rvs-compare run --out target/compare $(COMPARE_ARGS)

# BENCH_ARGS: rvs-bench's options (--hugepages, --quick ...).
BENCH_ARGS ?=
compare-bench: deps
	$(CARGO) build --workspace --release --bins
	mkdir -p target/compare
	target/release/rvs-bench --json-file target/compare/bench.json $(BENCH_ARGS)
	target/release/rvs-compare plot --bench target/compare/bench.json --out target/compare

# Fuzzing needs nightly (cargo +nightly fuzz) and cargo-fuzz, installed here when missing. New
# inputs go to target/fuzz-corpus/TARGET (the committed seeds in fuzz/corpus stay as they are);
# a crash leaves its input in fuzz/artifacts/TARGET, which `make test` replays on stable
# (fuzz-harness/tests/replay.rs). FUZZ_TARGETS narrows the list.
FUZZ_SECONDS ?= 60
# The binaries are built once and run directly (cargo fuzz run would rebuild the rvs crate for
# each target, as its build script follows the git HEAD).
FUZZ_BIN := fuzz/target/x86_64-unknown-linux-gnu/release
FUZZ_TARGETS ?= worker_raw worker_structured ipvsadm_cmdline control_request config_toml keepalived
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && $(CARGO) +nightly fuzz build
	set -o pipefail; failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$t; \
		mkdir -p fuzz/artifacts/$$t; \
		$(FUZZ_BIN)/$$t -artifact_prefix=fuzz/artifacts/$$t/ -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 target/fuzz-corpus/$$t fuzz/corpus/$$t 2>&1 \
			| tee target/fuzz-$$t.log || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: findings in:$$failed (inputs in fuzz/artifacts/)"; exit 1; fi

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
