//! `custos ceremony …`: the recovery escrow (escrow, rekey, recover, drill) and its transcripts.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use custos_core::escrow::{self, EscrowPlan, HandOut, HandOutReport, Medium, Room, Transcript};
use custos_core::hardware::{DeviceIdentity, Fido2Client};
use custos_core::scan;
use custos_core::sharefile::{self, FileLock};
use custos_core::sharing::Share;
use custos_core::{Error, Passphrase, Result, Vault};

use crate::{devices, print_json, unlock, vault_path, Cli, CliResult, Failure};

#[derive(Subcommand)]
pub enum CeremonyCmd {
    /// Split a new recovery key M-of-N among custodians (rekey when an escrow exists: old shares die)
    Escrow(EscrowArgs),
    /// Same as escrow when an escrow exists: a new split, the old shares are dead
    Rekey(EscrowArgs),
    /// Rebuild the recovery key from M shares and set a new passphrase (no passphrase needed)
    Recover {
        #[command(flatten)]
        shares: ShareArgs,
        /// The new passphrase, first line of this file (else CUSTOS_NEW_PASSPHRASE or a prompt)
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Check one share alone against the escrow's commitments (nothing is unlocked by the share)
    Drill {
        #[command(flatten)]
        shares: ShareArgs,
        /// The escrow (ceremony id) the share belongs to: refused unless it is the vault's current one
        #[arg(long)]
        escrow: Option<String>,
    },
    /// The witness records the hand-out of the current escrow (with a touch): the tamper-evident bag
    /// of each card and any deviation from the script; appended to the transcript
    Handout {
        id: String,
        /// NAME=SERIAL: the bag NAME's card was sealed in (repeat per card)
        #[arg(long = "bag-serial")]
        bag_serials: Vec<String>,
        /// A deviation from the script, in the witness's words
        #[arg(long)]
        note: Option<String>,
    },
    /// The witness notes a deviation from the script at one step of a ceremony (with a touch);
    /// appended to the transcript as a step of its own
    Deviation {
        id: String,
        /// The step it concerns, as numbered in the transcript (`ceremony transcript ID`)
        #[arg(long)]
        step: u32,
        /// What happened, in the witness's words
        #[arg(long)]
        note: String,
    },
    /// The escrow, its shares and their drill state
    List,
    /// Write a ceremony's transcript (JSON)
    Transcript {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an exported transcript: hash chain and audit-key signature (no vault needed)
    VerifyTranscript {
        file: PathBuf,
        #[arg(long)]
        expect_key: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct EscrowArgs {
    /// M: how many shares recover the vault (2 ≤ M ≤ N ≤ 32)
    #[arg(long)]
    threshold: u8,
    /// NAME[:screen|card|file|passphrase-file], once per share holder (`file`: encrypted to the
    /// holder's YubiKey PIV key)
    #[arg(long = "custodian", required = true)]
    custodians: Vec<String>,
    /// The witness: a custodian who is neither the administrator nor a holder
    #[arg(long)]
    witness: String,
    /// The drill policy: each holder checks their share alone at least every DAYS days
    /// (`ceremony list` shows who is due). Default: a rekey keeps the current policy, a first escrow
    /// takes 180
    #[arg(long = "drill-every", value_name = "DAYS")]
    drill_every: Option<u32>,
    /// Where share cards, share files and the transcript are written
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// NAME=FILE: the passphrase of NAME's `passphrase-file` share, first line of FILE (else the
    /// holder types it, twice)
    #[arg(long = "share-passphrase-file")]
    share_passphrases: Vec<String>,
    /// The hand-out happens now, at this terminal: each screen holder in turn sees their words,
    /// writes them down and types them back (standard input; a wrong word is named, three tries);
    /// then the witness records the hand-out with a touch, as `ceremony handout` does
    #[arg(long)]
    type_back: bool,
    /// With --type-back: NAME=SERIAL, the tamper-evident bag NAME's card was sealed in
    #[arg(long = "bag-serial", requires = "type_back")]
    bag_serials: Vec<String>,
    /// With --type-back: a deviation from the script, in the witness's words
    #[arg(long, requires = "type_back")]
    note: Option<String>,
}

/// Shares given on the command line: as words, or as share files.
#[derive(clap::Args)]
pub struct ShareArgs {
    /// One share as its words (repeat for each share)
    #[arg(long = "share-words")]
    words: Vec<String>,
    /// A picture (PNG or JPEG) of a share's QR code, e.g. a scan of its card (repeat for each)
    #[arg(long = "share-qr")]
    images: Vec<PathBuf>,
    /// A share file (repeat for each): one locked to a YubiKey asks for that YubiKey's PIV PIN and
    /// a touch (with --demo: the custodians' demo PIV keys)
    #[arg(long = "share-file")]
    files: Vec<PathBuf>,
    /// The passphrase of a passphrase-locked share file, first line of this file; one per such
    /// file, in the order of the files (else asked for each)
    #[arg(long = "share-passphrase-file")]
    passphrases: Vec<PathBuf>,
}

struct CliRoom<'a> {
    vault: &'a Path,
    demo: bool,
}

impl Room for CliRoom<'_> {
    fn key_of(
        &mut self,
        custodian: &str,
        enrolled: &[DeviceIdentity],
    ) -> Result<Box<dyn Fido2Client>> {
        let descriptions: Vec<String> = enrolled.iter().map(|d| d.description.clone()).collect();
        // A demo vault's keys are demo twins: they say so, and only twins can answer for them.
        let demo = self.demo || enrolled.iter().any(|d| d.demo);
        devices::fido2_for(self.vault, custodian, demo, &descriptions)
    }
    fn step(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

fn parse_holders(list: &[String]) -> CliResult<Vec<(String, Medium)>> {
    list.iter()
        .map(|s| {
            let (name, medium) = s.split_once(':').unwrap_or((s.as_str(), "screen"));
            Ok((name.to_string(), Medium::parse(medium)?))
        })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A printable share card: QR, words, ceremony, custodian, index, M-of-N, date, custody log, bag serial.
fn share_card(h: &HandOut, ceremony: &str, date: &str) -> CliResult<String> {
    let qr = escrow::qr_svg(&h.qr_text())?;
    let words: String = h
        .words()
        .iter()
        .enumerate()
        .map(|(i, w)| format!("<li><b>{}</b> {w}</li>", i + 1))
        .collect();
    let s = &h.share;
    Ok(format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Custos share card</title>
<style>body{{font-family:sans-serif;max-width:42em;margin:2em auto}}ol{{columns:3;list-style:none;padding:0}}
td,th{{border:1px solid #333;padding:.4em;height:1.6em}}table{{border-collapse:collapse;width:100%}}</style></head><body>
<h1>Custos recovery share #{index} of {total}</h1>
<p><b>Ceremony</b> {ceremony} · <b>Custodian</b> {custodian} · <b>Threshold</b> {m}-of-{total} · <b>Date</b> {date}<br>
<b>Share fingerprint</b> {fp}</p>
<p>Keep this card sealed in its tamper-evident bag. Anyone holding {m} shares can recover the vault.</p>
{qr}
<h2>Words</h2><ol>{words}</ol>
<p><b>Tamper-evident bag serial:</b> ______________________</p>
<h2>Custody log</h2><table><tr><th>date</th><th>from</th><th>to</th><th>bag serial</th><th>signature</th></tr>
<tr><td></td><td></td><td></td><td></td><td></td></tr><tr><td></td><td></td><td></td><td></td><td></td></tr>
<tr><td></td><td></td><td></td><td></td><td></td></tr></table></body></html>
"#,
        index = s.index,
        total = s.total,
        m = s.threshold,
        custodian = html_escape(&h.custodian),
        fp = s.fingerprint(),
    ))
}

fn write_new(path: &Path, text: &str) -> CliResult {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))
}

/// The passphrase of each `passphrase-file` holder, asked before the ceremony starts (so that a
/// mistyped confirmation costs nothing).
fn share_passphrases(plan: &EscrowPlan, given: &[String]) -> CliResult<Vec<(String, Passphrase)>> {
    let mut files = Vec::new();
    for g in given {
        let (name, file) = g.split_once('=').ok_or_else(|| {
            Failure::Usage(format!(
                "--share-passphrase-file takes NAME=FILE, not {g:?}"
            ))
        })?;
        if !plan
            .holders
            .iter()
            .any(|(h, m)| h == name && *m == Medium::PassphraseFile)
        {
            return Err(Failure::Usage(format!(
                "--share-passphrase-file {name}=…: {name} does not receive a passphrase-file share"
            )));
        }
        files.push((name.to_string(), PathBuf::from(file)));
    }
    let mut out = Vec::new();
    for (h, m) in &plan.holders {
        if *m != Medium::PassphraseFile {
            continue;
        }
        let file = files.iter().find(|(n, _)| n == h).map(|(_, f)| f.as_path());
        let p = match file {
            Some(f) => crate::read_secret_file(f)?,
            None => crate::prompt_twice(&format!("{h}: choose the passphrase of your share file"))?,
        };
        if p.is_empty() {
            return Err(Failure::Core(Error::EmptyPassphrase));
        }
        out.push((h.clone(), p));
    }
    Ok(out)
}

fn run_escrow(cli: &Cli, args: &EscrowArgs) -> CliResult {
    let EscrowArgs {
        threshold,
        custodians,
        witness,
        drill_every,
        out_dir,
        share_passphrases: given_passphrases,
        type_back,
        bag_serials,
        note,
    } = args;
    let (threshold, out_dir) = (*threshold, out_dir.as_deref());
    if *type_back && cli.json {
        return Err(Failure::Usage(
            "--type-back is a conversation at the terminal: it cannot be used with --json".into(),
        ));
    }
    let mut v = unlock(cli)?;
    let path = vault_path(cli)?;
    let demo = cli.demo || v.custody_status()?.demo;
    let plan = EscrowPlan {
        threshold,
        holders: parse_holders(custodians)?,
        witness: witness.to_string(),
        drill_every_days: *drill_every,
    };
    if plan
        .holders
        .iter()
        .any(|(_, m)| *m == Medium::Card || m.is_file())
        && out_dir.is_none()
    {
        return Err(Failure::Usage(
            "share cards and share files need --out-dir DIR".into(),
        ));
    }
    let passphrases = share_passphrases(&plan, given_passphrases)?;
    let mut room = CliRoom { vault: &path, demo };
    let out = v.escrow(&plan, &mut room)?;
    let date = out
        .transcript
        .steps
        .first()
        .map(|s| s.time.clone())
        .unwrap_or_default();
    let mut screen = Vec::new();
    for h in &out.shares {
        match h.medium {
            Medium::Screen => screen.push(serde_json::json!({
                "custodian": h.custodian, "index": h.share.index,
                "words": h.words().join(" "), "qr_text": h.qr_text(),
            })),
            Medium::Card => {
                let dir = out_dir.ok_or_else(|| Failure::Usage("--out-dir missing".into()))?;
                let file = dir.join(escrow::share_file_name(
                    &out.ceremony,
                    h.share.index,
                    &h.custodian,
                    "html",
                ));
                write_new(&file, &share_card(h, &out.ceremony, &date)?)?;
                eprintln!(
                    "share card for {} written to {}",
                    h.custodian,
                    file.display()
                );
            }
            Medium::File | Medium::PassphraseFile => {
                let dir = out_dir.ok_or_else(|| Failure::Usage("--out-dir missing".into()))?;
                let pass = passphrases
                    .iter()
                    .find(|(n, _)| *n == h.custodian)
                    .map(|(_, p)| p);
                let bytes = h.share_file(pass)?;
                let file = dir.join(escrow::share_file_name(
                    &out.ceremony,
                    h.share.index,
                    &h.custodian,
                    "age",
                ));
                write_new(&file, &String::from_utf8_lossy(&bytes))?;
                eprintln!(
                    "share file for {} written to {} ({})",
                    h.custodian,
                    file.display(),
                    if h.medium == Medium::File {
                        "opens with their YubiKey"
                    } else {
                        "opens with their passphrase"
                    }
                );
            }
        }
    }
    if let Some(dir) = out_dir {
        let t = serde_json::to_string_pretty(&out.transcript)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        write_new(&dir.join(format!("{}-transcript.json", out.ceremony)), &t)?;
    }
    if cli.json {
        print_json(&serde_json::json!({ "ceremony": out.ceremony, "shares": screen }))
    } else if *type_back {
        println!(
            "ceremony {}: {}-of-{} {} done; the hand-out starts",
            out.ceremony,
            threshold,
            plan.holders.len(),
            out.transcript.kind
        );
        let confirmed = type_back_each(&out.shares)?;
        let holders: Vec<(String, u8)> = out
            .shares
            .iter()
            .map(|h| (h.custodian.clone(), h.share.index))
            .collect();
        let serials = parse_bag_serials(&holders, bag_serials)?;
        let report = HandOutReport {
            confirmed: &confirmed,
            bag_serials: &serials,
            note: note.as_deref(),
            ..HandOutReport::default()
        };
        eprintln!("witness {}: record the hand-out", plan.witness);
        let (records, t) = v.finish_handout(&out.ceremony, &report, &mut room)?;
        for r in records.iter().filter(|r| r.medium == Medium::Screen) {
            println!(
                "share #{} ({}): {}",
                r.index,
                r.custodian,
                if r.confirmed {
                    "typed back correctly"
                } else {
                    "NOT confirmed"
                }
            );
        }
        println!(
            "hand-out of ceremony {} recorded in its transcript ({} steps, head {})",
            out.ceremony,
            t.steps.len(),
            t.head
        );
        Ok(())
    } else {
        println!(
            "ceremony {}: {}-of-{} escrow done",
            out.ceremony,
            threshold,
            plan.holders.len()
        );
        eprintln!(
            "when every share is out (cards sealed), the witness records the hand-out: custos --as {} ceremony handout {} [--bag-serial NAME=SERIAL] [--note TEXT]",
            plan.witness, out.ceremony
        );
        for s in screen {
            println!(
                "\nshare #{} for {} — write these words down, then keep them offline:\n{}",
                s["index"],
                s["custodian"].as_str().unwrap_or_default(),
                s["words"].as_str().unwrap_or_default()
            );
        }
        Ok(())
    }
}

pub fn ceremony_cmd(cli: &Cli, cmd: &CeremonyCmd) -> CliResult {
    match cmd {
        CeremonyCmd::Escrow(args) | CeremonyCmd::Rekey(args) => run_escrow(cli, args),
        CeremonyCmd::Recover {
            shares,
            new_passphrase_file,
        } => {
            let shares = read_shares(cli, shares)?;
            let new = crate::new_passphrase(
                "CUSTOS_NEW_PASSPHRASE",
                new_passphrase_file.as_deref(),
                "New passphrase",
            )?;
            let path = vault_path(cli)?;
            let mut room = CliRoom {
                vault: &path,
                demo: cli.demo,
            };
            let v = Vault::recover(&path, &shares, &new, &custos_core::actor_name(), &mut room)?;
            println!("recovered: the vault now opens with the new passphrase");
            v.lock();
            Ok(())
        }
        CeremonyCmd::Drill { shares, escrow } => {
            let given = shares.words.len() + shares.files.len() + shares.images.len();
            if given > 1 {
                return Err(Failure::Usage(
                    "a drill checks one share: give one --share-words, --share-qr or --share-file"
                        .into(),
                ));
            }
            let mut v = unlock(cli)?;
            // The escrow named is checked before any share is read (a file may ask a PIN, a touch).
            if let Some(id) = escrow {
                let current = v.escrow_status()?.map(|s| s.ceremony);
                if current.as_deref() != Some(id.trim()) {
                    return Err(Failure::Core(Error::BadShare(match current {
                        Some(c) => format!(
                            "escrow {id} is not the vault's current escrow ({c}): its shares were replaced by a rekey and cannot be drilled"
                        ),
                        None => format!("escrow {id}: this vault has no escrow"),
                    })));
                }
            }
            let share = if given == 1 {
                read_shares(cli, shares)?.pop()
            } else {
                None
            };
            match share {
                Some(s) => {
                    let st = v.drill(&s)?;
                    if cli.json {
                        print_json(&st)
                    } else {
                        println!(
                            "share #{} of {}: verified against its commitment",
                            st.index, st.custodian
                        );
                        Ok(())
                    }
                }
                None => list(cli, &v),
            }
        }
        CeremonyCmd::Handout {
            id,
            bag_serials,
            note,
        } => {
            let mut v = unlock(cli)?;
            let path = vault_path(cli)?;
            let status = v.escrow_status()?.ok_or_else(|| {
                Failure::Core(Error::BadShare("this vault has no escrow yet".into()))
            })?;
            let holders: Vec<(String, u8)> = status
                .shares
                .iter()
                .map(|s| (s.custodian.clone(), s.index))
                .collect();
            let serials = parse_bag_serials(&holders, bag_serials)?;
            let mut room = CliRoom {
                vault: &path,
                demo: cli.demo || v.custody_status()?.demo,
            };
            let report = HandOutReport {
                bag_serials: &serials,
                note: note.as_deref(),
                ..HandOutReport::default()
            };
            let (_, t) = v.finish_handout(id, &report, &mut room)?;
            println!(
                "hand-out of ceremony {id} recorded in its transcript ({} steps, head {})",
                t.steps.len(),
                t.head
            );
            Ok(())
        }
        CeremonyCmd::Deviation { id, step, note } => {
            let mut v = unlock(cli)?;
            let path = vault_path(cli)?;
            let mut room = CliRoom {
                vault: &path,
                demo: cli.demo || v.custody_status()?.demo,
            };
            let t = v.record_deviation(id, *step, note, &mut room)?;
            println!(
                "deviation at step {step} of ceremony {id} recorded in its transcript ({} steps, head {})",
                t.steps.len(),
                t.head
            );
            Ok(())
        }
        CeremonyCmd::List => {
            let v = unlock(cli)?;
            list(cli, &v)
        }
        CeremonyCmd::Transcript { id, out } => {
            let v = unlock(cli)?;
            let t = v.transcript(id)?;
            let text =
                serde_json::to_string_pretty(&t).map_err(|e| Failure::Usage(e.to_string()))?;
            write_new(out, &text)?;
            println!("transcript of ceremony {id} written to {}", out.display());
            Ok(())
        }
        CeremonyCmd::VerifyTranscript { file, expect_key } => {
            let t: Transcript = escrow::verify_transcript(file, expect_key.as_deref())?;
            if cli.json {
                print_json(
                    &serde_json::json!({ "ok": true, "ceremony": t.ceremony, "kind": t.kind, "steps": t.steps.len(), "head": t.head }),
                )
            } else {
                println!(
                    "transcript OK: {} ceremony {}, {} steps, hash-chained, signed by audit key {}",
                    t.kind,
                    t.ceremony,
                    t.steps.len(),
                    hex_fp(&t.audit_public)
                );
                if expect_key.is_none() {
                    eprintln!("WARNING: the audit key was not pinned: compare its fingerprint with the one recorded when the vault was created (--expect-key)");
                }
                Ok(())
            }
        }
    }
}

/// `--bag-serial NAME=SERIAL` as (share index, serial), for the holders (custodian, index) given.
fn parse_bag_serials(holders: &[(String, u8)], given: &[String]) -> CliResult<Vec<(u8, String)>> {
    given
        .iter()
        .map(|b| {
            let (name, serial) = b.split_once('=').ok_or_else(|| {
                Failure::Usage(format!("--bag-serial takes NAME=SERIAL, not {b:?}"))
            })?;
            let (_, index) = holders
                .iter()
                .find(|(h, _)| h == name)
                .ok_or_else(|| Failure::Usage(format!("{name} holds no share of this escrow")))?;
            Ok((*index, serial.to_string()))
        })
        .collect()
}

/// The hand-out of the screen shares at the terminal: each holder in turn sees their words, writes
/// them down, presses Enter (the screen is cleared when it is a terminal) and types them back from
/// standard input, three tries. Returns the shares typed back correctly; a holder who gives up (or
/// the end of the input) leaves theirs unconfirmed, and the record says so.
fn type_back_each(shares: &[HandOut]) -> CliResult<Vec<u8>> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let mut read = |prompt: &str| -> Option<zeroize::Zeroizing<String>> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = zeroize::Zeroizing::new(String::new());
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    };
    let clear = std::io::stdout().is_terminal();
    let mut confirmed = Vec::new();
    for h in shares.iter().filter(|h| h.medium == Medium::Screen) {
        let name = &h.custodian;
        println!(
            "\n== share #{} for {name}: only {name} looks at the screen now ==",
            h.share.index
        );
        for (row, chunk) in h.words().chunks(6).enumerate() {
            let cells: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{:>2} {w:<9}", row * 6 + i + 1))
                .collect();
            println!("  {}", cells.join(" "));
        }
        let _ = std::io::stdout().flush();
        if read(&format!(
            "{name}: write the words down, then press Enter (the words leave the screen): "
        ))
        .is_none()
        {
            eprintln!("no input: share #{} is not confirmed", h.share.index);
            continue;
        }
        if clear {
            print!("\x1b[2J\x1b[3J\x1b[H");
            let _ = std::io::stdout().flush();
        }
        for attempt in 1..=3 {
            let Some(typed) = read(&format!("{name}: type your words back from your paper: "))
            else {
                break;
            };
            match h.confirm(&typed) {
                Ok(()) => {
                    eprintln!("share #{} confirmed: {name} wrote it down correctly", h.share.index);
                    confirmed.push(h.share.index);
                    break;
                }
                Err(e) if attempt < 3 => eprintln!("{e}; try again ({} tries left)", 3 - attempt),
                Err(e) => eprintln!(
                    "{e}; share #{} stays NOT confirmed: {name} must not leave without a correct copy",
                    h.share.index
                ),
            }
        }
    }
    Ok(confirmed)
}

fn hex_fp(public_hex: &str) -> String {
    hex_to_32(public_hex)
        .map(|p| custos_core::key_fingerprint(&p))
        .unwrap_or_else(|| "?".into())
}

fn hex_to_32(s: &str) -> Option<[u8; 32]> {
    let b: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<_>>()?;
    b.try_into().ok()
}

/// Each share is read and checked on its own; a bad one is named by its position on the command line.
fn read_shares(cli: &Cli, given: &ShareArgs) -> CliResult<Vec<Share>> {
    if given.words.is_empty() && given.files.is_empty() && given.images.is_empty() {
        return Err(Failure::Usage(
            "no share given: use --share-words \"…\", --share-qr IMAGE or --share-file FILE, once per share".into(),
        ));
    }
    let named = |what: String, e: Error| match e {
        Error::BadShare(_) => Failure::Core(Error::BadShare(format!(
            "{what}: {}",
            e.to_string().trim_start_matches("share refused: ")
        ))),
        other => Failure::Core(other),
    };
    let mut shares = Vec::new();
    for (i, w) in given.words.iter().enumerate() {
        shares.push(
            Share::from_words(w)
                .map_err(|e| named(format!("share {} on the command line", i + 1), e))?,
        );
    }
    for image in &given.images {
        let what = format!("share picture {}", image.display());
        let bytes = std::fs::read(image)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", image.display())))?;
        shares.push(scan::share_from_image(&bytes).map_err(|e| named(what, e))?);
    }
    let mut passphrases = given.passphrases.iter();
    for f in &given.files {
        let what = format!("share file {}", f.display());
        shares.push(
            read_share_file(cli, f, &mut passphrases).map_err(|e| match e {
                Failure::Core(e) => named(what.clone(), e),
                other => other,
            })?,
        );
    }
    if passphrases.next().is_some() {
        return Err(Failure::Usage(
            "more --share-passphrase-file than passphrase-locked share files".into(),
        ));
    }
    Ok(shares)
}

/// Open one share file: with its passphrase, or with the YubiKey (demo: the demo PIV key) that
/// holds the key it is locked to.
fn read_share_file<'a>(
    cli: &Cli,
    path: &Path,
    passphrases: &mut impl Iterator<Item = &'a PathBuf>,
) -> CliResult<Share> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    match sharefile::lock_of(&bytes)? {
        FileLock::Passphrase => {
            let pass = match passphrases.next() {
                Some(f) => crate::read_secret_file(f)?,
                None => crate::prompt(&format!("Passphrase of share file {}: ", path.display()))?,
            };
            Ok(sharefile::open_with_passphrase(&bytes, &pass)?)
        }
        FileLock::Piv { tags } => {
            let vault = vault_path(cli)?;
            let mut card = if cli.demo {
                demo_card_for(&vault, &tags)?
            } else {
                let serial = std::env::var("CUSTOS_YUBIKEY_SERIAL")
                    .ok()
                    .and_then(|s| s.parse().ok());
                devices::piv_for(&vault, "", false, serial, false)?
            };
            // The card must hold the key before anyone types a PIN.
            sharefile::piv_slot_for(card.as_mut(), &tags)?;
            let pin = devices::pin(&format!(
                "YubiKey PIV {} (share file {})",
                card.serial(),
                path.display()
            ))?;
            Ok(sharefile::open_with_piv(&bytes, card.as_mut(), &pin)?)
        }
    }
}

/// The demo PIV key (of any custodian of this vault) that holds the key a share file is locked to.
fn demo_card_for(
    vault: &Path,
    tags: &[[u8; 4]],
) -> CliResult<Box<dyn custos_core::hardware::PivCard>> {
    let found = custos_hardware::piv::find_demo_piv(&devices::demo_dir(vault), |card| {
        sharefile::piv_slot_for(card, tags).is_ok()
    })?;
    let (mut card, _) = found.ok_or(Failure::Core(Error::NoDevice(
        "DEMO PIV key holding the key this share file is locked to",
    )))?;
    card.set_prompt(devices::prompt());
    Ok(Box::new(card))
}

fn list(cli: &Cli, v: &Vault) -> CliResult {
    let status = v.escrow_status()?;
    if cli.json {
        return print_json(&status);
    }
    match status {
        None => println!("no escrow yet: run `custos ceremony escrow` with your custodians"),
        Some(s) => {
            println!(
                "escrow {} ({}-of-{}), created {}; each share drilled at least every {} days{}",
                s.ceremony,
                s.threshold,
                s.total,
                s.created,
                s.drill_every_days,
                if s.overdue > 0 {
                    format!("; {} OVERDUE", s.overdue)
                } else {
                    String::new()
                }
            );
            for sh in s.shares {
                println!(
                    "  share #{:<2} {:<20} {:<9} last drill {:<20} {} {}",
                    sh.index,
                    sh.custodian,
                    sh.status,
                    sh.last_drill.as_deref().unwrap_or("-"),
                    if sh.overdue {
                        "OVERDUE since"
                    } else {
                        "due by"
                    },
                    sh.due
                );
            }
        }
    }
    Ok(())
}
