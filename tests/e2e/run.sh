#!/usr/bin/env bash
# End-to-end test of the Custos window over WebDriver.
#   bash tests/e2e/run.sh PATH_TO_APP_BINARY      (e.g. target/debug/custos-app)
# Needs: tauri-driver on PATH (cargo install tauri-driver --version 2.1.0 --locked), WebKitWebDriver,
# xvfb-run, node 20. Screenshots go to tests/e2e/.out/screenshots/ (to docs/screenshots/ with
# CUSTOS_SCREENSHOTS=docs, as `make screenshots` does). Last line: "N passed, M failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ $# -ne 1 ]; then
  echo "usage: bash tests/e2e/run.sh PATH_TO_APP_BINARY" >&2
  echo "0 passed, 1 failed"
  exit 2
fi

# Re-run this script inside a fresh X server (never a fixed display number).
if [ -z "${CUSTOS_E2E_IN_XVFB:-}" ]; then
  if ! command -v xvfb-run >/dev/null; then
    echo "xvfb-run not found (apt-get install xvfb xauth)" >&2
    echo "0 passed, 1 failed"
    exit 2
  fi
  CUSTOS_E2E_IN_XVFB=1 xvfb-run -a -s "-screen 0 1280x900x24" bash "${BASH_SOURCE[0]}" "$@"
  exit $?
fi

APP=$(realpath -e "$1" 2>/dev/null) || { echo "no such binary: $1" >&2; echo "0 passed, 1 failed"; exit 2; }
[ -x "$APP" ] || { echo "not executable: $APP" >&2; echo "0 passed, 1 failed"; exit 2; }
for tool in tauri-driver WebKitWebDriver node; do
  command -v "$tool" >/dev/null || { echo "$tool not found on PATH" >&2; echo "0 passed, 1 failed"; exit 2; }
done

if [ ! -d "$HERE/node_modules/webdriverio" ]; then
  npm --prefix "$HERE" ci --ignore-scripts --no-audit --no-fund >&2 || { echo "npm ci failed" >&2; echo "0 passed, 1 failed"; exit 2; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/custos-e2e.XXXXXX")
VAULT="$WORK/vault.db"
# The custody phase has a vault of its own (its demo keys go next to it, in vault.db.demo-keys/).
DEMO_VAULT="$WORK/demo/vault.db"
OUT="$HERE/.out"
# Tests never rewrite tracked files: the README's screenshots are refreshed only on request.
if [ "${CUSTOS_SCREENSHOTS:-}" = "docs" ]; then
  SHOTS="$ROOT/docs/screenshots"
else
  SHOTS="$OUT/screenshots"
fi
PASSPHRASE="quiet-harbour ledger 7 tangerine violin"
mkdir -p "$OUT"
DRIVER_PID=""

stop_driver() {
  if [ -n "$DRIVER_PID" ]; then
    # tauri-driver was started with setsid: its process group holds it, WebKitWebDriver and the app.
    kill -TERM -- "-$DRIVER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$DRIVER_PID" 2>/dev/null
    wait "$DRIVER_PID" 2>/dev/null
    DRIVER_PID=""
  fi
}
cleanup() {
  stop_driver
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_driver LOGNAME VAULT [VAR=VALUE ...]: tauri-driver with this environment (inherited by the app).
start_driver() {
  local log="$OUT/tauri-driver-$1.log" vault=$2; shift 2
  if port_open 4444; then
    echo "port 4444 is already in use: stop the other WebDriver server first" >&2
    return 1
  fi
  env "$@" CUSTOS_VAULT="$vault" CUSTOS_TEST_KDF=1 setsid tauri-driver --port 4444 >"$log" 2>&1 &
  DRIVER_PID=$!
  for _ in $(seq 1 100); do
    port_open 4444 && return 0
    kill -0 "$DRIVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "tauri-driver did not open port 4444 (log: $log)" >&2
  cat "$log" >&2
  return 1
}

PASSED=0; FAILED=0; SKIPPED=0
add_results() {
  local f="$OUT/results-$1.json"
  if [ -s "$f" ]; then
    read -r p fl s < <(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(r.passed,r.failed,r.skipped)' "$f")
    PASSED=$((PASSED + p)); FAILED=$((FAILED + fl)); SKIPPED=$((SKIPPED + s))
  else
    FAILED=$((FAILED + 1))
  fi
}

# A native crash of the window or WebKit, as glibc or the kernel reports it in the driver's log.
CRASH_RE='free\(\): |double free|corrupted (unsorted|size|double-linked)|Segmentation fault|SIGSEGV|SIGABRT'

# run_phase PHASE VAULT [VAR=VALUE ...]
run_phase() {
  local phase=$1 vault=$2; shift 2
  local attempt
  for attempt in 1 2; do
    echo "== phase: $phase"
    rm -f "$OUT/results-$phase.json"
    if start_driver "$phase" "$vault" "$@"; then
      timeout 300 node "$HERE/suite.mjs" --phase "$phase" --app "$APP" --vault "$vault" \
        --passphrase "$PASSPHRASE" --screenshots "$SHOTS" --results "$OUT/results-$phase.json" --out "$OUT"
    fi
    stop_driver
    # A failed step is a failure. Only a native crash of the window process (seen once in about a
    # dozen runs, in WebKitGTK or the app; not understood yet) earns one more run, said loudly.
    if [ "$attempt" = 1 ] && ! node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).failed>0?1:0)' "$OUT/results-$phase.json" 2>/dev/null \
       && grep -Eq "$CRASH_RE" "$OUT/tauri-driver-$phase.log"; then
      echo "WARNING: the window process crashed in phase $phase ($(grep -Em1 "$CRASH_RE" "$OUT/tauri-driver-$phase.log")); running the phase once more on a fresh vault"
      cp "$OUT/tauri-driver-$phase.log" "$OUT/tauri-driver-$phase-crash.log"
      [ "$phase" = idle ] || rm -rf "$vault" "$vault"-* "$vault".*
      continue
    fi
    break
  done
  add_results "$phase"
}

# CUSTOS_E2E_ONLY=custody (or main) runs one part while working on it; the default runs everything.
ONLY=${CUSTOS_E2E_ONLY:-}
if [ -z "$ONLY" ] || [ "$ONLY" = main ]; then
  # 1. The whole workflow on a fresh vault (idle lock at its 5-minute default).
  run_phase main "$VAULT"
  # 2. The idle auto-lock, on the same vault, with a 3-second timeout.
  if [ "$FAILED" -eq 0 ]; then
    run_phase idle "$VAULT" CUSTOS_IDLE_LOCK_SECS=3
  fi
fi
if [ -z "$ONLY" ] || [ "$ONLY" = custody ]; then
  # 3. Custodians, the two-person rule and approvals, with --demo software keys, on a vault of its own.
  mkdir -p "$(dirname "$DEMO_VAULT")"
  run_phase custody "$DEMO_VAULT"
fi

if [ "$SKIPPED" -gt 0 ]; then
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
  echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ] && [ "$SKIPPED" -eq 0 ]
