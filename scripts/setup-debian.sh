#!/usr/bin/env bash
# Install everything Custos needs to build, test and benchmark on Debian 12.
#
# Idempotent and fast when everything is already there: system packages are checked with
# dpkg-query first (apt-get runs only when something is missing), tauri-driver is installed
# only when absent, and `npm ci` runs only when node_modules is missing or older than
# package-lock.json.
#
# Needs: apt, rustup/cargo, node 20 + npm. Runs as root, or uses sudo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAURI_DRIVER_VERSION="2.1.0"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- system packages --------------------------------------------------------------------------
PACKAGES=(
  # Tauri v2 / WebKitGTK build and run
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev
  libxdo-dev libudev-dev libpcsclite-dev libclang-dev pkg-config build-essential
  # smart cards (YubiKey PIV through PC/SC); libccid is the reader driver a USB YubiKey needs
  # (pcscd may also be satisfied by another ifd handler, so name it)
  pcscd libccid
  # headless window, WebDriver E2E, screenshots
  xvfb xauth webkit2gtk-driver imagemagick xdotool
  # benchmark: libsodium Argon2id harness, stock age, JSON parsing
  libsodium-dev age jq
)

# `--test` (make test, CI) adds what only the test suites need. vsmartcard-vpcd is the virtual reader
# driver that lets the software PIV card (crates/piv-card-twin) sit behind the real pcscd: any local
# process could then act as a smart card, so it is a TEST FIXTURE, never installed by `make run` and
# never to be installed on a custodian's laptop.
TEST_PACKAGES=(vsmartcard-vpcd)
if [[ "${1:-}" == "--test" ]]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12"
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install ${missing[*]}"
    SUDO=(sudo)
  fi
  log "installing ${#missing[@]} missing package(s): ${missing[*]}"
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
else
  log "system packages: all ${#PACKAGES[@]} present"
fi

# --- Rust toolchain pieces ----------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install rustup (https://rustup.rs) first"
for comp in rustfmt clippy; do
  if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo $comp missing and no rustup to add it"
    log "adding rustup component $comp"
    rustup component add "$comp"
  fi
done

# --- tauri-driver (WebDriver bridge for the E2E suite), pinned --------------------------------
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if cargo install --list 2>/dev/null | grep -q "^tauri-driver v${TAURI_DRIVER_VERSION}:"; then
  log "tauri-driver ${TAURI_DRIVER_VERSION}: present"
else
  log "installing tauri-driver ${TAURI_DRIVER_VERSION} (about 1.5 minutes)"
  cargo install tauri-driver --version "=${TAURI_DRIVER_VERSION}" --locked
fi
case ":$PATH:" in
  *":$CARGO_BIN:"*) ;;
  *) log "note: $CARGO_BIN is not on PATH; the Makefile adds it, your shell may not" ;;
esac

# --- npm projects -------------------------------------------------------------------------------
command -v npm >/dev/null || die "npm not found: install node 20 + npm first"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 20 ]] || die "node $node_major found; node 20 or newer is needed"

npm_ci_if_stale() {
  local dir="$1"
  [[ -f "$dir/package.json" ]] || die "$dir/package.json is missing"
  [[ -f "$dir/package-lock.json" ]] || die "$dir/package-lock.json is missing (npm ci needs it)"
  # npm writes node_modules/.package-lock.json on every install: use it as the stamp.
  local stamp="$dir/node_modules/.package-lock.json"
  if [[ ! -f "$stamp" || "$stamp" -ot "$dir/package-lock.json" ]]; then
    log "npm ci in ${dir#"$ROOT"/}"
    npm ci --prefix "$dir" --no-audit --no-fund
  else
    log "${dir#"$ROOT"/}/node_modules: up to date"
  fi
}

npm_ci_if_stale "$ROOT/ui"
if [[ -d "$ROOT/tests/e2e" ]]; then
  npm_ci_if_stale "$ROOT/tests/e2e"
else
  # Not fatal here so that `make run` works; `make e2e` refuses loudly without it.
  printf '[setup] WARNING: tests/e2e/ does not exist yet: the E2E suite cannot run\n' >&2
fi

log "done"
