# rvs: the two commands of the README, and the usual developer targets.
#   make demo   clients -> rvsd (DPDK, NAT) -> two HTTP servers, in network namespaces
#   make test   the whole test suite (namespace tests run for real as root), the Debian package
#               test included (scripts/test-deb.sh: about 15 s on the debug build)
#   make deb    the Debian package, target/debian/rvs_VERSION_ARCH.deb (scripts/build-deb.sh)
#   make compare        rvs against kernel routing, nftables DNAT, IPVS and HAProxy (rvs-compare;
#                       README "Against the kernel and HAProxy"): table, JSON, plots in target/compare
#   make compare-bench  a full rvs-bench run, plotted into target/compare/bench-mpps.svg
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all deps build release test test-deb deb lint fmt demo compare compare-bench clean

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

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
