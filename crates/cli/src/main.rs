//! `custos`: the command line over custos-core, for scripting and tests.
//!
//! Passphrase: `CUSTOS_PASSPHRASE`, else `--passphrase-file F`, else a prompt without echo.
//! Errors go to stderr as one line starting `error: `; exit status 1. An operation waiting for approvals
//! exits with status 3 ("pending approval") after printing the request id. `--json` prints
//! machine-readable output where a command has it.

mod ceremony;
mod custody;
mod devices;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use custos_core::policy::OpKind;
use custos_core::{
    actor_name, format_duration, parse_duration, AuditReport, CalibrationProgress, Error,
    InitOptions, KeyDetail, KeyState, KeyType, Operation, Passphrase, Vault,
};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "custos", version, about = "Custos: an offline key custodian", long_about = None)]
struct Cli {
    /// Vault file (default: the user's data dir, custos/vault.db)
    #[arg(long, global = true, env = "CUSTOS_VAULT")]
    vault: Option<PathBuf>,
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    json: bool,
    /// Read the passphrase from this file (first line) instead of CUSTOS_PASSPHRASE or a prompt
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Act as this custodian (required once the vault has custodians)
    #[arg(long = "as", global = true, env = "CUSTOS_AS", value_name = "NAME")]
    acting: Option<String>,
    /// Use the custodians' DEMO software keys (stored next to the vault) instead of hardware
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new vault, calibrating Argon2id on this machine
    Init {
        /// Unlock time to calibrate for, in milliseconds (100-500)
        #[arg(long, default_value_t = 300)]
        target_ms: u32,
        /// Deliberately weak key derivation, for tests only (reported by `vault info` and the window)
        #[arg(long)]
        insecure_test_kdf: bool,
    },
    /// Vault-wide operations
    #[command(subcommand)]
    Vault(VaultCmd),
    /// Keys and their versions
    #[command(subcommand)]
    Key(KeyCmd),
    /// Encrypt a file with a symmetric key's active version
    Encrypt {
        #[arg(long)]
        key: String,
        input: PathBuf,
        output: PathBuf,
    },
    /// Decrypt a file (the key and version are read from its header)
    Decrypt { input: PathBuf, output: PathBuf },
    /// Sign a file with an ed25519 key's active version (detached signature)
    Sign {
        #[arg(long)]
        key: String,
        input: PathBuf,
        signature: PathBuf,
    },
    /// Verify a detached signature
    Verify {
        #[arg(long)]
        key: String,
        input: PathBuf,
        signature: PathBuf,
    },
    /// The tamper-evident audit log
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Custodians, their roles and hardware keys
    #[command(subcommand)]
    Custodian(custody::CustodianCmd),
    /// Requests waiting for approvals (two-person rule)
    #[command(subcommand)]
    Approvals(custody::ApprovalsCmd),
    /// The permission matrix and approval rules
    #[command(subcommand)]
    Rules(custody::RulesCmd),
    /// Quorum ceremonies: escrow of the recovery key, recovery, rekey, drills, transcripts
    #[command(subcommand)]
    Ceremony(ceremony::CeremonyCmd),
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Schema, KDF parameters, key count, audit key fingerprint
    Info,
    /// Change the passphrase (new one from CUSTOS_NEW_PASSPHRASE, --new-passphrase-file, or a prompt)
    ChangePassphrase {
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Re-calibrate Argon2id on this machine and re-wrap the root key
    Rekdf {
        #[arg(long, default_value_t = 300)]
        target_ms: u32,
    },
    /// Time Argon2id at this vault's parameters (a measurement for `make bench`; no passphrase needed)
    BenchKdf,
    /// Bind the vault to a custodian's enrolled YubiKey PIV key: unlocking then needs the passphrase AND
    /// that key (PIN, touch)
    RequirePiv {
        /// The custodian whose PIV key to bind to
        custodian: String,
        #[arg(long)]
        serial: Option<u32>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create a key; its version 1 is active
    Create {
        name: String,
        #[arg(long = "type", value_name = "symmetric-256|ed25519|x25519")]
        key_type: String,
        /// Rotation policy, e.g. 90d, 12h, 2w, 1y
        #[arg(long)]
        rotate_every: Option<String>,
    },
    /// All keys with state, active version and rotation status
    List,
    /// One key with all its versions
    Show { name: String },
    /// Make a new active version; the old one becomes decrypt-only
    Rotate { name: String },
    /// Move a version to another state: pre-active, active, decrypt-only, compromised, destroyed
    SetState {
        name: String,
        version: u32,
        state: String,
    },
    /// Erase a version's material (it must be pre-active, decrypt-only or compromised); the record stays
    Destroy { name: String, version: u32 },
    /// Set or clear the rotation policy
    Policy {
        name: String,
        #[command(flatten)]
        policy: PolicyArg,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct PolicyArg {
    #[arg(long)]
    rotate_every: Option<String>,
    #[arg(long)]
    no_rotation: bool,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the hash chain and signatures (of the vault, or of an export with --file: no passphrase)
    Verify {
        #[arg(long)]
        file: Option<PathBuf>,
        /// Audit key fingerprint the export must be signed with (default: the vault's, if it is the same vault)
        #[arg(long)]
        expect_key: Option<String>,
    },
    /// Write the log as JSON Lines (docs/audit-format.md)
    Export {
        #[arg(long, value_parser = ["jsonl"])]
        format: String,
        output: PathBuf,
    },
    /// Show the log
    List,
}

/// A failure already explained to the user (e.g. a broken audit chain): exit 1 without another line.
struct Reported;

enum Failure {
    Core(Error),
    Usage(String),
    Reported,
    /// Waiting for approvals: exit status 3.
    Pending(Box<custos_core::RequestView>),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}
impl From<Reported> for Failure {
    fn from(_: Reported) -> Self {
        Failure::Reported
    }
}

type CliResult<T = ()> = Result<T, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Core(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Pending(r)) => {
            if json {
                let _ = print_json(&serde_json::json!({ "result": "pending", "request": r }));
            }
            eprintln!("{}", custody::pending_message(&r));
            ExitCode::from(3)
        }
    }
}

fn vault_path(cli: &Cli) -> CliResult<PathBuf> {
    match &cli.vault {
        Some(p) => Ok(p.clone()),
        None => Ok(Vault::default_path()?),
    }
}

pub(crate) fn read_secret_file(path: &Path) -> CliResult<Passphrase> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Usage(format!(
            "cannot read passphrase file {}: {e}",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or("").to_string();
    drop(zeroize::Zeroizing::new(text));
    Ok(Passphrase::new(line))
}

pub(crate) fn prompt(label: &str) -> CliResult<Passphrase> {
    rpassword::prompt_password(label)
        .map(Passphrase::new)
        .map_err(|e| {
            Failure::Usage(format!(
                "cannot read a passphrase ({e}): set CUSTOS_PASSPHRASE or pass --passphrase-file"
            ))
        })
}

fn passphrase(cli: &Cli) -> CliResult<Passphrase> {
    if let Some(f) = &cli.passphrase_file {
        return read_secret_file(f);
    }
    if let Ok(p) = std::env::var("CUSTOS_PASSPHRASE") {
        return Ok(Passphrase::new(p));
    }
    prompt("Vault passphrase: ")
}

/// A new passphrase: from the environment or file, else typed twice.
pub(crate) fn new_passphrase(env: &str, file: Option<&Path>, label: &str) -> CliResult<Passphrase> {
    if let Some(f) = file {
        return read_secret_file(f);
    }
    if let Ok(p) = std::env::var(env) {
        return Ok(Passphrase::new(p));
    }
    prompt_twice(label)
}

/// A new passphrase typed twice without echo.
pub(crate) fn prompt_twice(label: &str) -> CliResult<Passphrase> {
    let a = prompt(&format!("{label}: "))?;
    let b = prompt(&format!("{label} again: "))?;
    if a.same_as(&b) {
        Ok(a)
    } else {
        Err(Failure::Usage(
            "the two passphrases differ: nothing was changed".into(),
        ))
    }
}

fn unlock(cli: &Cli) -> CliResult<Vault> {
    let path = vault_path(cli)?;
    let pass = passphrase(cli)?;
    unlock_with(cli, &path, &pass)
}

/// Unlock (with the YubiKey when the vault is bound to one) and act as `--as`.
fn unlock_with(cli: &Cli, path: &Path, pass: &Passphrase) -> CliResult<Vault> {
    let info = Vault::peek(path)?;
    let mut v = match &info.piv_required {
        None => Vault::unlock(path, pass, &actor_name())?,
        Some(f) => {
            // A demo PIV twin's serial says so (a demo vault bound to it needs no --demo to open).
            let demo = cli.demo || f.serial >= custos_hardware::piv::demo::DEMO_SERIAL_BASE;
            let mut card = devices::piv_for(path, &f.custodian, demo, Some(f.serial), false)?;
            let pin = devices::pin(&format!(
                "PIV PIN of {}'s YubiKey (serial {}), needed to unlock",
                f.custodian, f.serial
            ))?;
            Vault::unlock_with(path, pass, &actor_name(), Some((card.as_mut(), &pin)))?
        }
    };
    if v.failed_unlocks() > 0 {
        eprintln!(
            "ALERT: {} failed unlock attempt(s) since the last unlock (see `custos audit list`).",
            v.failed_unlocks()
        );
    }
    if let Some(w) = v.integrity_warning() {
        eprintln!("WARNING: AUDIT LOG INTEGRITY: {w}. Run `custos audit verify` and investigate.");
    }
    v.act_as(cli.acting.as_deref())?;
    Ok(v)
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> CliResult {
    let s = serde_json::to_string_pretty(v).map_err(|e| Failure::Usage(e.to_string()))?;
    println!("{s}");
    Ok(())
}

fn progress_printer(json: bool) -> impl FnMut(CalibrationProgress) {
    move |p: CalibrationProgress| {
        if !json {
            eprintln!("[{}/{}] {}", p.step, p.of, p.message);
        }
    }
}

fn run(cli: Cli) -> CliResult {
    match &cli.command {
        Command::Init {
            target_ms,
            insecure_test_kdf,
        } => {
            let path = vault_path(&cli)?;
            if Vault::exists(&path) {
                return Err(Error::VaultExists(path).into());
            }
            let pass =
                if cli.passphrase_file.is_some() || std::env::var("CUSTOS_PASSPHRASE").is_ok() {
                    passphrase(&cli)?
                } else {
                    new_passphrase("CUSTOS_PASSPHRASE", None, "New vault passphrase")?
                };
            let opts = InitOptions {
                target_ms: *target_ms,
                insecure_test_kdf: *insecure_test_kdf,
            };
            let vault = Vault::init(&path, &pass, &opts, &mut progress_printer(cli.json))?;
            let info = vault.info()?;
            if cli.json {
                print_json(&info)?;
            } else {
                println!("created vault {} at {}", info.vault_id, info.path);
                println!(
                    "key derivation: argon2id, {} MiB, {} passes, {} lanes",
                    info.kdf.memory_kib / 1024,
                    info.kdf.iterations,
                    info.kdf.parallelism
                );
                println!(
                    "audit key fingerprint: {}  (write it down: it checks exported logs)",
                    info.audit_key_fingerprint
                );
                if info.insecure_test_kdf {
                    println!("WARNING: insecure test key derivation. Never keep real keys in this vault.");
                }
            }
            vault.lock();
        }
        Command::Vault(cmd) => vault_cmd(&cli, cmd)?,
        Command::Key(cmd) => key_cmd(&cli, cmd)?,
        Command::Encrypt { key, input, output } => {
            let mut v = unlock(&cli)?;
            let bytes = v.encrypt_file(key, input, output)?;
            if cli.json {
                print_json(&serde_json::json!({ "key": key, "bytes": bytes, "output": output }))?;
            } else {
                println!(
                    "encrypted {bytes} bytes with {key:?} to {}",
                    output.display()
                );
            }
        }
        Command::Decrypt { input, output } => {
            let mut v = unlock(&cli)?;
            let r = v.decrypt_file(input, output)?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!(
                    "decrypted {} bytes with {:?} version {} to {}",
                    r.bytes,
                    r.key,
                    r.version,
                    output.display()
                );
            }
            if r.state == KeyState::Compromised {
                eprintln!(
                    "WARNING: {:?} version {} is marked compromised: whoever holds the leaked key could have made this file",
                    r.key, r.version
                );
            }
        }
        Command::Sign {
            key,
            input,
            signature,
        } => {
            let mut v = unlock(&cli)?;
            let version = v.sign_file(key, input, signature)?;
            if cli.json {
                print_json(
                    &serde_json::json!({ "key": key, "version": version, "signature": signature }),
                )?;
            } else {
                println!(
                    "signed with {key:?} version {version}: {}",
                    signature.display()
                );
            }
        }
        Command::Verify {
            key,
            input,
            signature,
        } => {
            let mut v = unlock(&cli)?;
            let r = v.verify_file(key, input, signature)?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!(
                    "signature OK: {:?} version {} ({})",
                    r.key,
                    r.version,
                    r.state.as_str()
                );
                if r.state == KeyState::Compromised {
                    println!("WARNING: that key version is marked compromised; do not trust this signature alone");
                }
            }
        }
        Command::Audit(cmd) => audit_cmd(&cli, cmd)?,
        Command::Custodian(cmd) => custody::custodian_cmd(&cli, cmd)?,
        Command::Approvals(cmd) => custody::approvals_cmd(&cli, cmd)?,
        Command::Rules(cmd) => custody::rules_cmd(&cli, cmd)?,
        Command::Ceremony(cmd) => ceremony::ceremony_cmd(&cli, cmd)?,
    }
    Ok(())
}

fn vault_cmd(cli: &Cli, cmd: &VaultCmd) -> CliResult {
    match cmd {
        VaultCmd::Info => {
            let v = unlock(cli)?;
            let info = v.info()?;
            if cli.json {
                print_json(&info)?;
            } else {
                println!("vault          {}", info.path);
                println!("id             {}", info.vault_id);
                println!("schema         {}", info.schema_version);
                println!("created        {}", info.created);
                println!(
                    "kdf            argon2id m={} KiB t={} p={} salt={} bytes",
                    info.kdf.memory_kib,
                    info.kdf.iterations,
                    info.kdf.parallelism,
                    info.kdf.salt_len
                );
                println!("keys           {}", info.keys);
                println!("audit entries  {}", info.audit_entries);
                println!("audit key      {}", info.audit_key_fingerprint);
                if info.insecure_test_kdf {
                    println!(
                        "WARNING        INSECURE TEST KEY DERIVATION: never keep real keys here"
                    );
                }
            }
        }
        VaultCmd::ChangePassphrase {
            new_passphrase_file,
        } => {
            let old = passphrase(cli)?;
            let new = new_passphrase(
                "CUSTOS_NEW_PASSPHRASE",
                new_passphrase_file.as_deref(),
                "New passphrase",
            )?;
            let mut v = unlock_with(cli, &vault_path(cli)?, &old)?;
            let mut key = custody::requester_key(cli, &v)?;
            v.touch_for(OpKind::VaultPassphrase, devices::borrow(&mut key))?;
            v.change_passphrase(&old, &new)?;
            println!("passphrase changed (the root key was re-wrapped; keys are untouched)");
        }
        VaultCmd::Rekdf { target_ms } => {
            let pass = passphrase(cli)?;
            let mut v = unlock_with(cli, &vault_path(cli)?, &pass)?;
            let mut key = custody::requester_key(cli, &v)?;
            v.touch_for(OpKind::VaultPassphrase, devices::borrow(&mut key))?;
            let kdf = v.rekdf(&pass, *target_ms, &mut progress_printer(cli.json))?;
            if cli.json {
                print_json(&kdf)?;
            } else {
                println!(
                    "re-calibrated: argon2id {} MiB, {} passes, {} lanes",
                    kdf.memory_kib / 1024,
                    kdf.iterations,
                    kdf.parallelism
                );
            }
        }
        VaultCmd::RequirePiv { custodian, serial } => {
            let pass = passphrase(cli)?;
            let path = vault_path(cli)?;
            let mut v = unlock_with(cli, &path, &pass)?;
            let demo = cli.demo || v.custody_status()?.demo;
            let mut key = custody::requester_key(cli, &v)?;
            v.touch_for(OpKind::VaultRequirePiv, devices::borrow(&mut key))?;
            let mut card = devices::piv_for(&path, custodian, demo, *serial, false)?;
            let pin = devices::pin(&format!("PIV PIN of {custodian}'s YubiKey"))?;
            let f = v.require_piv(&pass, custodian, card.as_mut(), &pin)?;
            if cli.json {
                print_json(&f)?;
            } else {
                println!(
                    "unlocking now needs the passphrase and {}'s YubiKey (serial {}, slot {:02x})",
                    f.custodian, f.serial, f.slot
                );
            }
        }
        VaultCmd::BenchKdf => {
            let info = Vault::peek(&vault_path(cli)?)?;
            let k = &info.kdf;
            let best = |p: u32| -> CliResult<f64> {
                let mut best = f64::MAX;
                for _ in 0..3 {
                    best = best.min(
                        custos_core::kdf::time_once(k.memory_kib, k.iterations, p)?.as_secs_f64(),
                    );
                }
                Ok(best)
            };
            let (seconds, seconds_p1) = (best(k.parallelism)?, best(1)?);
            let out = serde_json::json!({
                "memory_kib": k.memory_kib, "iterations": k.iterations, "parallelism": k.parallelism,
                "seconds": seconds, "seconds_p1": seconds_p1,
            });
            if cli.json {
                print_json(&out)?;
            } else {
                println!(
                    "argon2id m={} KiB t={}: p={} {:.3} s, p=1 {:.3} s (best of 3)",
                    k.memory_kib, k.iterations, k.parallelism, seconds, seconds_p1
                );
            }
        }
    }
    Ok(())
}

fn print_detail(d: &KeyDetail) {
    println!("{} ({}), id {}", d.name, d.key_type.as_str(), d.id);
    match (d.rotate_every_secs, &d.rotation_due) {
        (Some(s), Some(due)) => println!(
            "rotation: every {}, due {due} [{}]",
            format_duration(std::time::Duration::from_secs(s)),
            serde_json::to_value(d.rotation_status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
        (Some(s), None) => println!(
            "rotation: every {} (no active version)",
            format_duration(std::time::Duration::from_secs(s))
        ),
        _ => println!("rotation: no policy"),
    }
    println!(
        "{:>7}  {:<13} {:<21} public key",
        "version", "state", "created"
    );
    for v in &d.versions {
        println!(
            "{:>7}  {:<13} {:<21} {}",
            v.version,
            v.state.as_str(),
            v.created,
            v.public_key.as_deref().unwrap_or("-")
        );
    }
}

fn key_cmd(cli: &Cli, cmd: &KeyCmd) -> CliResult {
    let mut v = unlock(cli)?;
    let detail = match cmd {
        KeyCmd::Create {
            name,
            key_type,
            rotate_every,
        } => {
            let ty = KeyType::parse(key_type)?;
            let every = rotate_every.as_deref().map(parse_duration).transpose()?;
            v.create_key(name, ty, every)?
        }
        KeyCmd::List => {
            let keys = v.list_keys()?;
            if cli.json {
                return print_json(&keys);
            }
            if keys.is_empty() {
                println!(
                    "no keys yet: create one with `custos key create NAME --type symmetric-256`"
                );
            }
            println!(
                "{:<24} {:<14} {:<13} {:>6}  rotation",
                "name", "type", "state", "active"
            );
            for k in keys {
                let status = serde_json::to_value(k.rotation_status)
                    .ok()
                    .and_then(|s| s.as_str().map(String::from))
                    .unwrap_or_default();
                let rotation = match &k.rotation_due {
                    Some(due) => format!("{status} (due {due})"),
                    None => "-".into(),
                };
                println!(
                    "{:<24} {:<14} {:<13} {:>6}  {rotation}",
                    k.name,
                    k.key_type.as_str(),
                    k.state.as_str(),
                    k.active_version.map_or("-".into(), |a| a.to_string())
                );
            }
            return Ok(());
        }
        KeyCmd::Show { name } => v.key_detail(name)?,
        KeyCmd::Rotate { name } => {
            gated(cli, &mut v, Operation::KeyRotate { key: name.clone() })?;
            v.key_detail(name)?
        }
        KeyCmd::SetState {
            name,
            version,
            state,
        } => {
            let op = Operation::KeySetState {
                key: name.clone(),
                version: *version,
                state: KeyState::parse(state)?,
            };
            gated(cli, &mut v, op)?;
            v.key_detail(name)?
        }
        KeyCmd::Destroy { name, version } => {
            let op = Operation::KeySetState {
                key: name.clone(),
                version: *version,
                state: KeyState::Destroyed,
            };
            gated(cli, &mut v, op)?;
            v.key_detail(name)?
        }
        KeyCmd::Policy { name, policy } => {
            let every = match (&policy.rotate_every, policy.no_rotation) {
                (Some(d), _) => Some(parse_duration(d)?),
                (None, true) => None,
                (None, false) => {
                    return Err(Failure::Usage(
                        "give --rotate-every DURATION or --no-rotation".into(),
                    ))
                }
            };
            let op = Operation::KeyPolicy {
                key: name.clone(),
                rotate_every_secs: every.map(|d| d.as_secs()),
            };
            gated(cli, &mut v, op)?;
            v.key_detail(name)?
        }
    };
    if cli.json {
        print_json(&detail)
    } else {
        print_detail(&detail);
        Ok(())
    }
}

/// Run a sensitive operation through the presence gate; a pending request ends the command (exit 3).
fn gated(cli: &Cli, v: &mut Vault, op: Operation) -> CliResult {
    match custody::perform(cli, v, op)? {
        custos_core::Performed::Done { .. } => Ok(()),
        custos_core::Performed::Pending { request } => Err(Failure::Pending(Box::new(request))),
    }
}

fn report_audit(cli: &Cli, report: &AuditReport) -> CliResult {
    if cli.json {
        print_json(report)?;
    } else if report.ok {
        println!("{}", report.message);
        if let Some(h) = &report.head_hash {
            println!("head hash: {h}");
        }
    }
    if report.ok {
        Ok(())
    } else {
        eprintln!("error: audit chain BROKEN: {}", report.message);
        Err(Reported.into())
    }
}

/// The vault id named in an export's header line, if readable.
fn export_vault_id(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let first: serde_json::Value = serde_json::from_str(text.lines().next()?).ok()?;
    first.get("vault_id")?.as_str().map(String::from)
}

fn audit_cmd(cli: &Cli, cmd: &AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Verify {
            file: Some(file),
            expect_key,
        } => {
            // Pin the audit key: the one given, else this vault's when the export is from this vault.
            let pinned = match expect_key {
                Some(k) => Some(k.clone()),
                None => vault_path(cli)
                    .ok()
                    .filter(|p| Vault::exists(p))
                    .and_then(|p| Vault::peek(&p).ok())
                    .filter(|info| export_vault_id(file).as_deref() == Some(info.vault_id.as_str()))
                    .map(|info| info.audit_key_fingerprint),
            };
            let report = custos_core::verify_export(file, pinned.as_deref())?;
            if pinned.is_none() {
                eprintln!(
                    "WARNING: the export is signed by audit key {}, which was not checked against a known key \
                     (no --expect-key, and the vault at --vault is not the one that wrote it). Compare the \
                     fingerprint with the one recorded when the vault was created.",
                    report.audit_key_fingerprint
                );
            }
            report_audit(cli, &report)
        }
        AuditCmd::Verify { file: None, .. } => {
            let mut v = unlock(cli)?;
            let report = v.audit_verify()?;
            report_audit(cli, &report)
        }
        AuditCmd::Export { format: _, output } => {
            let mut v = unlock(cli)?;
            let op = Operation::AuditExport {
                path: output.clone(),
            };
            let n = match custody::perform(cli, &mut v, op)? {
                custos_core::Performed::Done { .. } => std::fs::read_to_string(output)
                    .map(|t| t.lines().count().saturating_sub(1) as u64)
                    .unwrap_or(0),
                custos_core::Performed::Pending { request } => {
                    return Err(Failure::Pending(Box::new(request)))
                }
            };
            if cli.json {
                print_json(&serde_json::json!({ "entries": n, "output": output }))
            } else {
                println!("exported {n} entries to {}", output.display());
                Ok(())
            }
        }
        AuditCmd::List => {
            let v = unlock(cli)?;
            let entries = v.audit_entries()?;
            if cli.json {
                return print_json(&entries);
            }
            for e in entries {
                let target = match (&e.key_name, &e.key_id, e.version) {
                    (Some(n), _, Some(ver)) => format!("{n} v{ver}"),
                    (Some(n), _, None) => n.clone(),
                    (None, Some(id), _) => {
                        format!("key {}", id.chars().take(8).collect::<String>())
                    }
                    _ => String::new(),
                };
                let outcome = serde_json::to_value(e.outcome)
                    .ok()
                    .and_then(|o| o.as_str().map(String::from))
                    .unwrap_or_default();
                println!(
                    "{:>5} {} {:<8} {:<22} {:<20} {} {}",
                    e.seq,
                    e.time,
                    outcome,
                    e.action,
                    target,
                    e.detail,
                    if e.signed { "" } else { "(unsigned)" }
                );
            }
            Ok(())
        }
    }
}
