# rvs: the two commands of the README, and the usual developer targets.
#   make demo   clients -> rvsd (DPDK, NAT) -> two HTTP servers, in network namespaces
#   make test   the whole test suite (namespace tests run for real as root), the Debian package
#               test included (scripts/test-deb.sh: about 15 s on the debug build)
#   make deb    the Debian package, target/debian/rvs_VERSION_ARCH.deb (scripts/build-deb.sh)
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all deps build release test test-deb deb lint fmt demo clean

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

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
