#!/usr/bin/env bash
# A private pcscd with the vpcd reader driver, for the virtual PIV card tests
# (crates/hardware/tests/piv_vpcd.rs, card: crates/piv-card-twin). TEST MACHINES ONLY: vpcd lets any
# local process act as a smart card; never install vsmartcard-vpcd on a custodian's laptop.
#
#   scripts/pcscd-vpcd.sh start    start pcscd (pcsc-lite 1.9.9: pcscd -f -a -c DIR) with a reader.conf
#                                  of our own, record its PID, wait for /run/pcscd/pcscd.comm, write ENV
#   scripts/pcscd-vpcd.sh stop     kill exactly the pcscd that `start` started (by PID), nothing else
#   scripts/pcscd-vpcd.sh status
#
# ENV (default target/pcscd-vpcd/env, sourced by the Makefile) exports what the tests read:
#   CUSTOS_VPCD_READER  the reader to open by name ("Virtual PCD 00 00")
#   CUSTOS_VPCD_HOST / CUSTOS_VPCD_PORT  where the card connects (127.0.0.1:35963)
#   CUSTOS_VPCD_REUSED  1 when an already-running pcscd is reused
#   CUSTOS_VPCD_SKIP    set when the card tests cannot run here, with the reason (the tests print
#                       "skipped: <reason>")
#
# Only one pcscd can run per machine (the socket /run/pcscd/pcscd.comm is fixed). If one is already
# running (the system service, socket activation or a developer's), it is never stopped: if the
# system's reader configuration has vpcd, it is reused; otherwise the card tests are skipped with the
# reason. The pcscd log (with APDUs: test PINs only) is RUN_DIR/pcscd.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${CUSTOS_VPCD_RUN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/pcscd-vpcd}"
PID_FILE="$RUN_DIR/pcscd.pid"
CONF_DIR="$RUN_DIR/reader.conf.d"
LOG="$RUN_DIR/pcscd.log"
ENV_FILE="$RUN_DIR/env"
COMM=/run/pcscd/pcscd.comm
SYSTEM_CONF_DIR=/etc/reader.conf.d
VPCD_LIB="${CUSTOS_VPCD_LIB:-/usr/lib/pcsc/drivers/serial/libifdvpcd.so}"
# Debian's /etc/reader.conf.d/vpcd: FRIENDLYNAME "Virtual PCD", CHANNELID 0x8C7B (35963). pcscd names
# the first slot "<FRIENDLYNAME> 00 00"; vpcd's second slot (port + 1) is not used.
FRIENDLY="Virtual PCD"
PORT=35963
HOST=127.0.0.1

log() { printf '[pcscd-vpcd] %s\n' "$*" >&2; }
die() { printf '[pcscd-vpcd] ERROR: %s\n' "$*" >&2; exit 1; }

write_env() { # reader port skip-reason [reused]
  mkdir -p "$RUN_DIR"
  {
    printf 'export CUSTOS_VPCD_REUSED=%q\n' "${4:-0}"
    printf 'export CUSTOS_VPCD_READER=%q\n' "$1"
    printf 'export CUSTOS_VPCD_HOST=%q\n' "$HOST"
    printf 'export CUSTOS_VPCD_PORT=%q\n' "$2"
    if [[ -n "$3" ]]; then
      printf 'export CUSTOS_VPCD_SKIP=%q\n' "$3"
    else
      printf 'unset CUSTOS_VPCD_SKIP\n'
    fi
  } >"$ENV_FILE"
}

# The PID in PID_FILE if it is alive and is the pcscd we started (its command line names our conf).
our_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF_DIR" || return 1
  printf '%s\n' "$pid"
}

# Whether something listens on the pcscd socket (a pcscd, or systemd's pcscd.socket).
comm_listening() {
  [[ -S "$COMM" ]] || return 1
  if command -v ss >/dev/null; then
    ss -xl 2>/dev/null | grep -qF -- "$COMM"
  else
    return 0 # cannot tell: assume it is in use
  fi
}

# "FRIENDLYNAME<TAB>port" of a vpcd reader in the system configuration, if any.
system_vpcd() {
  local f name chan
  for f in "$SYSTEM_CONF_DIR"/*; do
    [[ -f "$f" ]] || continue
    grep -Eq '^[[:space:]]*LIBPATH[[:space:]].*libifdvpcd' "$f" || continue
    name="$(sed -nE 's/^[[:space:]]*FRIENDLYNAME[[:space:]]+"?([^"]*)"?[[:space:]]*$/\1/p' "$f" | head -n1)"
    chan="$(sed -nE 's/^[[:space:]]*CHANNELID[[:space:]]+([0-9A-Fa-fx]+).*/\1/p' "$f" | head -n1)"
    [[ -n "$name" && -n "$chan" ]] || continue
    printf '%s\t%d\n' "$name" "$((chan))"
    return 0
  done
  return 1
}

start() {
  local pid
  if pid="$(our_pid)"; then
    log "already running: pcscd pid $pid (started by this script)"
    write_env "$FRIENDLY 00 00" "$PORT" ""
    return 0
  fi
  command -v pcscd >/dev/null || die "pcscd is not installed: run 'make setup' (package pcscd)"
  [[ -f "$VPCD_LIB" ]] || die "the vpcd driver ($VPCD_LIB) is not installed: run 'make setup' (package vsmartcard-vpcd; test machines only)"

  local others
  others="$(pgrep -x pcscd | tr '\n' ' ' || true)"
  if [[ -n "$others" ]] || comm_listening; then
    local who="pcscd (pid ${others% })"
    [[ -n "$others" ]] || who="systemd socket activation (pcscd.socket)"
    local found
    if found="$(system_vpcd)"; then
      local name="${found%%$'\t'*}" port="${found##*$'\t'}"
      log "a pcscd is already running here ($who): not starting another one and not stopping it."
      log "the system reader configuration has vpcd: reusing it, reader '$name 00 00' on port $port"
      log "(if that pcscd was started with another configuration, the card tests say they skip)"
      write_env "$name 00 00" "$port" "" 1
      printf 'reused\n' >"$RUN_DIR/mode"
      return 0
    fi
    local reason="a pcscd is already running on this machine ($who) without the vpcd reader; it was left alone. To run the virtual-card tests, stop it (sudo systemctl stop pcscd.socket pcscd) or give it vpcd (vsmartcard-vpcd, test machines only)"
    log "skipping the card tests: $reason"
    write_env "$FRIENDLY 00 00" "$PORT" "$reason"
    printf 'skipped\n' >"$RUN_DIR/mode"
    return 0
  fi

  if [[ -e "$COMM" ]]; then
    # No pcscd and nobody listening: a stale socket from a pcscd that died. pcscd would refuse to start.
    log "removing the stale $COMM (no pcscd runs, nothing listens on it)"
    rm -f "$COMM"
  fi

  mkdir -p "$CONF_DIR"
  cat >"$CONF_DIR/vpcd" <<EOF
# Written by scripts/pcscd-vpcd.sh: vpcd only (a USB reader or YubiKey still appears through pcscd's
# hotplug, which is why the tests open the virtual reader by name).
FRIENDLYNAME "$FRIENDLY"
DEVICENAME   /dev/null:$(printf '0x%04X' "$PORT")
LIBPATH      $VPCD_LIB
CHANNELID    $(printf '0x%04X' "$PORT")
EOF
  : >"$LOG"
  # -f: foreground (we keep its PID); -a: log APDUs (for trace comparison; test PINs only);
  # -c: our reader.conf.d instead of /etc/reader.conf.d.
  # CUSTOS_PCSCD_DEBUG=1 adds -d (every driver call, for diagnosing the reader itself).
  local debug=()
  [[ "${CUSTOS_PCSCD_DEBUG:-0}" == 1 ]] && debug=(-d)
  pcscd -f -a "${debug[@]}" -c "$CONF_DIR" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  printf 'started\n' >"$RUN_DIR/mode"

  local waited=0
  until [[ -S "$COMM" ]] && comm_listening; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -n 20 "$LOG" >&2 || true
      die "pcscd exited at start (log above, full log $LOG)"
    fi
    if ((waited >= 100)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      die "pcscd did not create $COMM within 10 s (log: $LOG)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  log "pcscd pid $pid with vpcd: reader '$FRIENDLY 00 00', card port $HOST:$PORT (log: $LOG; ready after $((waited * 100)) ms)"
  write_env "$FRIENDLY 00 00" "$PORT" ""
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    if [[ -f "$PID_FILE" ]]; then
      log "the recorded pcscd ($(cat "$PID_FILE")) is not running any more"
      rm -f "$PID_FILE"
    else
      log "nothing to stop (no pcscd was started by this script)"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= 50)); then
      log "pcscd pid $pid did not stop within 5 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$PID_FILE"
  log "stopped pcscd pid $pid"
}

status() {
  local pid
  if pid="$(our_pid)"; then
    echo "running: pcscd pid $pid (conf $CONF_DIR, log $LOG)"
  else
    echo "not running (started by this script)"
  fi
  [[ -f "$ENV_FILE" ]] && cat "$ENV_FILE"
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
