#!/usr/bin/env bash
# Custos benchmark: a measurement printed side by side, never a pass/fail test.
#
#  1. Argon2id at the parameters a real vault calibrates to (custos init, default 300 ms target):
#     custos's Rust argon2 crate (`custos vault bench-kdf --json`, at the vault's parallelism and at
#     p = 1) against libsodium (bench/sodium_argon2.c, p = 1 only) at the same m and t.
#  2. 1 GiB file: `custos encrypt` / `custos decrypt` against stock `age` (X25519 recipient), best of 3.
#
# Needs: cc, libsodium-dev, age, jq (scripts/setup-debian.sh installs them). ~2-5 minutes.
# Env: BENCH_MIB (default 1024) to change the file size, BENCH_RUNS (default 3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${BENCH_RUNS:-3}"
MIB="${BENCH_MIB:-1024}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
note() { printf '[bench] %s\n' "$*" >&2; }
for tool in cc jq age age-keygen cargo awk; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup-debian.sh"
done

# Work on disk (not a tmpfs /tmp): the big files go in bench/.out (git-ignored), deleted at exit.
mkdir -p "$ROOT/bench/.out"
WORK="$(mktemp -d "$ROOT/bench/.out/run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
need_kib=$(( (MIB * 4 + 256) * 1024 ))
avail_kib=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
(( avail_kib > need_kib )) || die "need $((need_kib / 1024)) MiB free in $WORK, have $((avail_kib / 1024)) MiB"

# --- builds -----------------------------------------------------------------------------------
note "building the libsodium harness"
cc -O2 -Wall -Wextra -o "$WORK/sodium_argon2" "$ROOT/bench/sodium_argon2.c" -lsodium
note "building custos (release)"
(cd "$ROOT" && cargo build --release -p custos-cli --quiet)
CUSTOS="$TARGET_DIR/release/custos"
[[ -x "$CUSTOS" ]] || die "$CUSTOS was not built"

VAULT="$WORK/vault.db"
export CUSTOS_PASSPHRASE="benchmark passphrase, not secret"
c() { "$CUSTOS" --vault "$VAULT" "$@"; }

# seconds elapsed running "$@" once (stdout/stderr discarded; a failure aborts)
time_once() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; die "failed: $*"; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}
# best of $RUNS; the output file named by arg 1 (may be "") is removed before every run
best_of() {
  local out="$1"; shift
  local best="" t
  for ((i = 0; i < RUNS; i++)); do
    [[ -z "$out" ]] || rm -f "$out"
    t=$(time_once "$@")
    best=$(awk -v a="$best" -v b="$t" 'BEGIN { if (a == "" || b < a) print b; else print a }')
  done
  echo "$best"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mibps() { awk -v s="$1" -v m="$MIB" 'BEGIN { if (s > 0) printf "%.0f", m / s; else print "n/a" }'; }

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
# --- 1. Argon2id ----------------------------------------------------------------------------------
note "creating a vault with real calibration (custos init, default target)"
init_t=$(time_once c init)
info="$(c vault info --json)"
M=$(jq -r '.kdf.memory_kib' <<<"$info")
T=$(jq -r '.kdf.iterations' <<<"$info")
P=$(jq -r '.kdf.parallelism' <<<"$info")
[[ "$(jq -r '.insecure_test_kdf' <<<"$info")" == "false" ]] || die "vault uses the insecure test KDF"

have_bench_kdf=1
if ! c vault bench-kdf --help >/dev/null 2>&1; then
  have_bench_kdf=0
  note "custos has no 'vault bench-kdf' yet: the Rust column is missing"
fi
rust_p="n/a"; rust_p1="n/a"
if ((have_bench_kdf)); then
  note "Argon2id, Rust argon2 crate via custos vault bench-kdf (m=$M KiB, t=$T, p=$P and p=1)"
  bk="$(c vault bench-kdf --json)"
  for k in memory_kib iterations parallelism; do
    [[ "$(jq -r ".$k" <<<"$bk")" == "$(jq -r ".kdf.$k" <<<"$info")" ]] ||
      die "bench-kdf measured $k=$(jq -r ".$k" <<<"$bk"), the vault has $(jq -r ".kdf.$k" <<<"$info")"
  done
  rust_p=$(awk -v a="$(jq -r '.seconds' <<<"$bk")" 'BEGIN { printf "%.4f", a }')
  rust_p1=$(awk -v a="$(jq -r '.seconds_p1' <<<"$bk")" 'BEGIN { printf "%.4f", a }')
fi
note "Argon2id, libsodium (m=$M KiB, t=$T, p=1), best of $RUNS"
sodium_out="$("$WORK/sodium_argon2" "$M" "$T" "$RUNS")"
read -r sodium_best _sodium_median <<<"$sodium_out"
sodium_best=$(awk -v a="$sodium_best" 'BEGIN { printf "%.4f", a }')

# --- 2. 1 GiB encrypt / decrypt -------------------------------------------------------------------
note "creating a ${MIB} MiB random file"
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$WORK/plain"
c key create bench-data --type symmetric-256 >/dev/null
age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT="$(age-keygen -y "$WORK/age.key")"

note "custos: unlock overhead (key list), best of $RUNS"
unlock_t=$(best_of "" c key list)
note "custos encrypt / decrypt, best of $RUNS"
cus_enc=$(best_of "$WORK/plain.custos" c encrypt --key bench-data "$WORK/plain" "$WORK/plain.custos")
cus_dec=$(best_of "$WORK/plain.out" c decrypt "$WORK/plain.custos" "$WORK/plain.out")
cmp -s "$WORK/plain" "$WORK/plain.out" || die "custos round trip differs"
cus_ct_size=$(stat -c %s "$WORK/plain.custos")
rm -f "$WORK/plain.custos" "$WORK/plain.out"

note "age encrypt / decrypt, best of $RUNS"
age_enc=$(best_of "$WORK/plain.age" age -r "$RECIPIENT" -o "$WORK/plain.age" "$WORK/plain")
age_dec=$(best_of "$WORK/plain.out" age -d -i "$WORK/age.key" -o "$WORK/plain.out" "$WORK/plain.age")
cmp -s "$WORK/plain" "$WORK/plain.out" || die "age round trip differs"
age_ct_size=$(stat -c %s "$WORK/plain.age")
rm -f "$WORK/plain.age" "$WORK/plain.out"

minus() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0.0001) d = 0.0001; printf "%.4f", d }'; }
cus_enc_x=$(minus "$cus_enc" "$unlock_t")
cus_dec_x=$(minus "$cus_dec" "$unlock_t")

# --- report --------------------------------------------------------------------------------------
cpu="$(awk -F: '/model name/ {sub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
echo
echo "Custos benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores${cpu:+, $cpu}"
echo "load average: $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine skews these figures)"
echo "$("$CUSTOS" --version 2>/dev/null || echo 'custos ?'), $(age --version 2>/dev/null | head -1 | sed 's/^/age /'), libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo '?')"
echo
echo "1. Argon2id at the vault's calibrated parameters (custos init took ${init_t} s incl. calibration)"
echo "   m = $M KiB ($((M / 1024)) MiB), t = $T, vault p = $P; best of 3 (Rust) / best of $RUNS (libsodium)"
printf '   %-38s %10s %12s\n' "implementation" "seconds" "vs libsodium"
printf '   %-38s %10s %12s\n' "Rust argon2 (custos), p = $P" "$rust_p" "$(ratio "$rust_p" "$sodium_best")"
printf '   %-38s %10s %12s\n' "Rust argon2 (custos), p = 1" "$rust_p1" "$(ratio "$rust_p1" "$sodium_best")"
printf '   %-38s %10s %12s\n' "libsodium crypto_pwhash, p = 1" "$sodium_best" "1.00"
if ((!have_bench_kdf)); then
  echo "   (Rust figures missing: this custos has no 'vault bench-kdf')"
fi
echo "   The p = 1 row is like for like: ratio > 1 means an attacker with libsodium computes a guess that"
echo "   much faster than custos's own code. libsodium cannot compute p > 1 at all; the p = $P row shows what"
echo "   the vault's parallel lanes give back to the defender at the same m and t (same memory-hardness)."
echo
echo "2. ${MIB} MiB file, warm page cache, best of $RUNS (MiB/s = ${MIB} MiB / seconds)"
printf '   %-38s %10s %8s %14s\n' "operation" "seconds" "MiB/s" "time vs age"
printf '   %-38s %10s %8s %14s\n' "custos encrypt (incl. unlock)" "$cus_enc" "$(mibps "$cus_enc")" "$(ratio "$cus_enc" "$age_enc")"
printf '   %-38s %10s %8s %14s\n' "custos encrypt (minus unlock)" "$cus_enc_x" "$(mibps "$cus_enc_x")" "$(ratio "$cus_enc_x" "$age_enc")"
printf '   %-38s %10s %8s %14s\n' "age -r (X25519)" "$age_enc" "$(mibps "$age_enc")" "1.00"
printf '   %-38s %10s %8s %14s\n' "custos decrypt (incl. unlock)" "$cus_dec" "$(mibps "$cus_dec")" "$(ratio "$cus_dec" "$age_dec")"
printf '   %-38s %10s %8s %14s\n' "custos decrypt (minus unlock)" "$cus_dec_x" "$(mibps "$cus_dec_x")" "$(ratio "$cus_dec_x" "$age_dec")"
printf '   %-38s %10s %8s %14s\n' "age -d" "$age_dec" "$(mibps "$age_dec")" "1.00"
echo "   custos unlock (Argon2id + open, 'key list'): ${unlock_t} s"
echo "   ciphertext overhead: custos $((cus_ct_size - MIB * 1024 * 1024)) B, age $((age_ct_size - MIB * 1024 * 1024)) B"
echo "   Ratio > 1: custos is slower than age."
