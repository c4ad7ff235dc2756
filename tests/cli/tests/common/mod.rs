//! Shared helpers for the `custos` end-to-end suite: locate the built binary, give every test
//! its own vault in a temp dir, run commands, and check the error contract on failures.
#![allow(dead_code)]

pub mod demo;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

pub const PASS: &str = "correct horse battery staple 7!";

/// Path of the built `custos` binary.
///
/// Order: `$CUSTOS_BIN`; next to this test executable (`<target>/<profile>/custos`, which
/// follows `CARGO_TARGET_DIR` and the profile); `$CARGO_TARGET_DIR/debug/custos`;
/// `<workspace>/target/debug/custos`.
pub fn custos_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let workspace = workspace.canonicalize().unwrap_or(workspace);
        let exe_name = format!("custos{}", std::env::consts::EXE_SUFFIX);
        let mut tried = Vec::new();
        if let Some(p) = std::env::var_os("CUSTOS_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "CUSTOS_BIN={} is not a file", p.display());
            return p;
        }
        // <target>/debug/deps/<this test> -> <target>/debug/custos
        if let Ok(exe) = std::env::current_exe() {
            if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
                tried.push(profile_dir.join(&exe_name));
            }
        }
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            let t = PathBuf::from(t);
            let t = if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            };
            tried.push(t.join("debug").join(&exe_name));
        }
        tried.push(workspace.join("target/debug").join(&exe_name));
        tried.dedup();
        let found = tried
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "the custos binary was not found (tried {}).\n\
                 Build it first: `cargo build -p custos-cli` (or `make build`).",
                    tried
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        check_not_stale(&found, &workspace);
        found
    })
}

/// A binary older than the CLI/core sources would test yesterday's code: refuse.
/// Set CUSTOS_ALLOW_STALE=1 to skip this check.
fn check_not_stale(bin: &Path, workspace: &Path) {
    if std::env::var_os("CUSTOS_ALLOW_STALE").is_some() {
        return;
    }
    let bin_time = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .expect("binary mtime");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for dir in ["crates/cli/src", "crates/core/src"] {
        visit_rs(&workspace.join(dir), &mut |p, t| {
            if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                newest = Some((t, p.to_path_buf()));
            }
        });
    }
    if let Some((t, p)) = newest {
        assert!(
            t <= bin_time,
            "{} is older than {}: rebuild with `cargo build -p custos-cli` \
             (or set CUSTOS_ALLOW_STALE=1)",
            bin.display(),
            p.display()
        );
    }
}

fn visit_rs(dir: &Path, f: &mut dyn FnMut(&Path, std::time::SystemTime)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            visit_rs(&p, f);
        } else if p.extension() == Some(OsStr::new("rs")) {
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                f(&p, t);
            }
        }
    }
}

/// Finished process, with text views of its output.
pub struct Run {
    pub out: Output,
    pub args: Vec<String>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    pub fn success(&self) -> bool {
        self.out.status.success()
    }
    fn describe(&self) -> String {
        format!(
            "custos {}\n  exit: {:?}\n  stdout: {}\n  stderr: {}",
            self.args.join(" "),
            self.out.status,
            self.stdout().trim_end(),
            self.stderr().trim_end()
        )
    }
    /// Panics unless the command succeeded.
    pub fn ok(self) -> Run {
        assert!(self.success(), "expected success:\n{}", self.describe());
        assert!(
            !self.stderr().contains("panicked"),
            "panic on stderr:\n{}",
            self.describe()
        );
        self
    }
    /// Panics unless the command failed the way the contract says: exit 1, one line on stderr
    /// that starts with `error: `, no panic. Returns the lowercased stderr.
    pub fn err(self) -> String {
        let d = self.describe();
        assert!(!self.success(), "expected failure:\n{d}");
        assert_eq!(
            self.code(),
            Some(1),
            "expected exit code 1 (not a crash/signal):\n{d}"
        );
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked"),
            "panic instead of an error:\n{d}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "error must be exactly one line on stderr:\n{d}"
        );
        assert!(
            lines[0].starts_with("error: "),
            "stderr must start with `error: `:\n{d}"
        );
        stderr.to_lowercase()
    }
    /// For refusals that argument parsing may catch (unknown enum value, missing or conflicting
    /// options): non-zero exit, no panic, stderr starts with `error:`. Parser errors may be
    /// several lines and exit 2, so the one-line/exit-1 rule of `err` is not applied.
    pub fn usage_err(self) -> String {
        let d = self.describe();
        assert!(!self.success(), "expected failure:\n{d}");
        assert!(self.code().is_some(), "killed by a signal:\n{d}");
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked"),
            "panic instead of an error:\n{d}"
        );
        assert!(
            stderr.starts_with("error:"),
            "stderr must start with `error:`:\n{d}"
        );
        stderr.to_lowercase()
    }
    /// Panics unless the command failed with `error: ` on stderr and the message contains
    /// `fragment` (case-insensitive).
    pub fn err_containing(self, fragment: &str) -> String {
        let d = self.describe();
        let e = self.err();
        assert!(
            e.contains(&fragment.to_lowercase()),
            "stderr should contain {fragment:?}:\n{d}"
        );
        e
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }
}

/// One test's world: a temp dir, a vault path inside it, and the passphrase in the env.
pub struct Env {
    pub dir: TempDir,
    pub vault: PathBuf,
    pub pass: String,
}

impl Env {
    /// A temp dir with no vault yet.
    pub fn empty() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("custos-cli-test")
            .tempdir()
            .expect("tempdir");
        let vault = dir.path().join("vault.db");
        Env {
            dir,
            vault,
            pass: PASS.to_string(),
        }
    }

    /// A fresh vault made with the fast (insecure) test KDF.
    pub fn new() -> Env {
        let env = Env::empty();
        env.run(["init", "--insecure-test-kdf"]).ok();
        assert!(
            env.vault.is_file(),
            "init did not create {}",
            env.vault.display()
        );
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `custos --vault <vault> ARGS` with CUSTOS_PASSPHRASE set, stdin closed.
    pub fn cmd<I, S>(&self, args: I) -> (Command, Vec<String>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(custos_bin());
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        c.arg("--vault").arg(&self.vault).args(&args);
        c.env("CUSTOS_PASSPHRASE", &self.pass);
        c.env_remove("CUSTOS_NEW_PASSPHRASE");
        c.current_dir(self.dir.path());
        c.stdin(Stdio::null());
        (c, args)
    }

    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (c, args) = self.cmd(args);
        exec(c, args)
    }

    /// `run` with the arguments split on whitespace: `env.sh("key list")`.
    pub fn sh(&self, args: &str) -> Run {
        self.run(args.split_whitespace())
    }

    /// Like `run` but with another passphrase in CUSTOS_PASSPHRASE.
    pub fn run_with_pass<I, S>(&self, pass: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (mut c, args) = self.cmd(args);
        c.env("CUSTOS_PASSPHRASE", pass);
        exec(c, args)
    }

    /// Runs a command that must succeed with `--json` and returns its parsed stdout.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut a: Vec<String> = args
            .into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        a.push("--json".into());
        self.run(a).ok().json()
    }

    pub fn info(&self) -> Value {
        self.json(["vault", "info"])
    }
    pub fn list(&self) -> Vec<Value> {
        as_array(&self.json(["key", "list"])).to_vec()
    }
    pub fn show(&self, name: &str) -> Value {
        self.json(["key", "show", name])
    }
    pub fn audit(&self) -> Vec<Value> {
        as_array(&self.json(["audit", "list"])).to_vec()
    }

    pub fn create_key(&self, name: &str, ty: &str) -> Value {
        self.run(["key", "create", name, "--type", ty]).ok();
        self.show(name)
    }

    /// Writes `data` to a file in the temp dir and returns its path.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).expect("write test file");
        p
    }
}

fn exec(mut c: Command, args: Vec<String>) -> Run {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", custos_bin().display()));
    Run { out, args }
}

pub fn as_array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {v}"))
}

/// `obj[key]`, panicking with the whole object when the key is absent.
pub fn field<'a>(obj: &'a Value, key: &str) -> &'a Value {
    obj.as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {obj}"))
        .get(key)
        .unwrap_or_else(|| panic!("missing field {key:?} in {obj}"))
}

pub fn u64_field(obj: &Value, key: &str) -> u64 {
    field(obj, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{key:?} is not an unsigned integer in {obj}"))
}

pub fn str_field<'a>(obj: &'a Value, key: &str) -> &'a str {
    field(obj, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {obj}"))
}

/// The version object `v` of `key show` output.
pub fn version(detail: &Value, v: u64) -> &Value {
    as_array(field(detail, "versions"))
        .iter()
        .find(|x| x["version"].as_u64() == Some(v))
        .unwrap_or_else(|| panic!("no version {v} in {detail}"))
}

pub fn state_of(detail: &Value, v: u64) -> String {
    str_field(version(detail, v), "state").to_string()
}

/// Parses an RFC 3339 UTC timestamp (`...Z` or `...+00:00`, optional fraction) into seconds
/// since the Unix epoch. Panics on anything else: the contract says times are UTC.
pub fn rfc3339_utc(s: &str) -> i64 {
    let bad = || -> ! { panic!("not an RFC 3339 UTC time: {s:?}") };
    let rest = if let Some(r) = s.strip_suffix('Z') {
        r
    } else if let Some(r) = s.strip_suffix("+00:00") {
        r
    } else {
        bad()
    };
    let b = rest.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        bad();
    }
    if b[13] != b':' || b[16] != b':' || (b.len() > 19 && b[19] != b'.') {
        bad();
    }
    let num = |r: std::ops::Range<usize>| -> i64 { rest[r].parse().unwrap_or_else(|_| bad()) };
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, se) = (num(11..13), num(14..16), num(17..19));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        bad();
    }
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + h * 3600 + mi * 60 + se
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
