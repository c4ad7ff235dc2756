# Custos: one entry point for set-up, build, run, test and benchmark.
#   make setup   install system packages, tauri-driver and npm dependencies (idempotent, fast when done)
#   make build   UI bundle + every workspace crate (custos-app window, custos CLI)
#   make run     set up, build, open the window on the vault in your data dir
#   make test    set up, build, lint, all tests (Rust incl. the CLI suite, the virtual PIV card behind
#                a private pcscd, UI unit + type check, window E2E)
#   make test-piv   only the virtual PIV card suite (starts and stops its own pcscd + vpcd)
#   make e2e     build, then drive the real window over WebDriver
#   make screenshots   the same, refreshing docs/screenshots/ for the README
#   make bench   Argon2id (Rust crate vs libsodium) and 1 GiB encrypt/decrypt (custos vs age)
#   make fmt / make lint

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := build

CARGO ?= cargo
NPM ?= npm
# tauri-driver is installed by `cargo install` into cargo's bin dir.
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
APP_BIN := $(TARGET_DIR)/debug/custos-app
CLI_BIN := $(TARGET_DIR)/debug/custos

.PHONY: setup setup-test interop-tools ui build run test test-piv e2e e2e-run screenshots bench fmt lint check-ui check-e2e

setup:
	bash scripts/setup-debian.sh

# What only the tests need on top (vsmartcard-vpcd: a test fixture, never for a custodian's laptop).
setup-test:
	bash scripts/setup-debian.sh --test

# The UI is helper-made; refuse loudly (never skip) while it is missing.
check-ui:
	@test -f ui/package.json || { echo "error: ui/package.json is missing" >&2; exit 1; }
	@test -d ui/node_modules || { echo "error: ui/node_modules is missing: run 'make setup'" >&2; exit 1; }

ui: check-ui
	$(NPM) --prefix ui run build

build: ui
	$(CARGO) build --workspace
	@test -x $(CLI_BIN) || { echo "error: $(CLI_BIN) was not built (package custos-cli)" >&2; exit 1; }
	@test -x $(APP_BIN) || { echo "error: $(APP_BIN) was not built: is src-tauri (custos-app) a workspace member?" >&2; exit 1; }

# No arguments: the app opens the vault at its default place in the user's data dir.
run: setup build
	$(APP_BIN)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The Rust suites run once, with the private pcscd + vpcd up (see test-piv), so that the virtual PIV
# card tests run in the same build as everything else (a `-p` build would rebuild with other features).
test: setup-test interop-tools build lint
	bash scripts/pcscd-vpcd.sh start
	set +e; source $(PIV_ENV); \
	  if [ -n "$${CUSTOS_VPCD_SKIP:-}" ]; then echo "WARNING: the virtual PIV card tests are SKIPPED: $$CUSTOS_VPCD_SKIP"; fi; \
	  CUSTOS_VPCD=1 CUSTOS_AGE_PLUGIN_DIR="$(TOOLS_BIN)" $(CARGO) test --workspace --no-fail-fast; rc=$$?; \
	  bash scripts/pcscd-vpcd.sh stop; exit $$rc
	$(NPM) --prefix ui test
	$(NPM) --prefix ui run check
	$(MAKE) --no-print-directory e2e-run

# The software PIV card (crates/piv-card-twin) behind a real pcscd with the vpcd reader driver: the
# unmodified yubikey crate's PC/SC path, one test at a time (one virtual reader). pcscd is started
# and stopped by PID (scripts/pcscd-vpcd.sh); an already-running pcscd is left alone.
PIV_ENV := $(TARGET_DIR)/pcscd-vpcd/env
test-piv: interop-tools
	bash scripts/pcscd-vpcd.sh start
	set +e; source $(PIV_ENV); \
	  if [ -n "$${CUSTOS_VPCD_SKIP:-}" ]; then echo "WARNING: the virtual PIV card tests are SKIPPED: $$CUSTOS_VPCD_SKIP"; fi; \
	  CUSTOS_VPCD=1 CUSTOS_AGE_PLUGIN_DIR="$(TOOLS_BIN)" $(CARGO) test -p custos-hardware --test piv_vpcd -- --test-threads=1; rc=$$?; \
	  bash scripts/pcscd-vpcd.sh stop; exit $$rc

# age-plugin-yubikey (a pinned release, from crates.io: the first run needs the crates registry, as
# the build does) for the interop test: a share file Custos locked to a PIV key it generated opens
# with `age -d` and the plugin, through pcscd and the virtual card. A test tool only, built into
# .tools/ (about a minute and a half the first time; again only when the pinned version changes).
AGE_PLUGIN_YUBIKEY_VERSION := 0.5.1
TOOLS := $(CURDIR)/.tools
TOOLS_BIN := $(TOOLS)/bin
interop-tools:
	@grep -qs '"age-plugin-yubikey $(AGE_PLUGIN_YUBIKEY_VERSION) ' "$(TOOLS)/.crates.toml" && test -x "$(TOOLS_BIN)/age-plugin-yubikey" || { \
	  echo "building age-plugin-yubikey $(AGE_PLUGIN_YUBIKEY_VERSION) into $(TOOLS) for the interop test"; \
	  $(CARGO) install --locked --force --root "$(TOOLS)" age-plugin-yubikey --version $(AGE_PLUGIN_YUBIKEY_VERSION); }

check-e2e:
	@test -f tests/e2e/run.sh || { echo "error: tests/e2e/run.sh is missing: the window E2E suite cannot run" >&2; exit 1; }
	@test -d tests/e2e/node_modules || { echo "error: tests/e2e/node_modules is missing: run 'make setup'" >&2; exit 1; }
	@command -v tauri-driver >/dev/null || { echo "error: tauri-driver not on PATH: run 'make setup'" >&2; exit 1; }

e2e: build e2e-run

# E2E against what is already built (used by `test`, which has just built).
e2e-run: check-e2e
	@test -x $(APP_BIN) || { echo "error: $(APP_BIN) missing: run 'make build'" >&2; exit 1; }
	bash tests/e2e/run.sh $(APP_BIN)

# Refresh the README's screenshots (docs/screenshots/) from the real window.
screenshots: build check-e2e
	CUSTOS_SCREENSHOTS=docs bash tests/e2e/run.sh $(APP_BIN)

bench: setup
	bash bench/run.sh
