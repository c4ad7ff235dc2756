//! `custos ceremony …`: the recovery escrow (escrow, rekey, recover, drill) and its transcripts.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use custos_core::escrow::{self, EscrowPlan, HandOut, Medium, Room, Transcript};
use custos_core::hardware::Fido2Client;
use custos_core::sharing::Share;
use custos_core::{Error, Result, Vault};

use crate::{devices, print_json, unlock, vault_path, Cli, CliResult, Failure};

#[derive(Subcommand)]
pub enum CeremonyCmd {
    /// Split a new recovery key M-of-N among custodians (rekey when an escrow exists: old shares die)
    Escrow {
        #[arg(long)]
        threshold: u8,
        /// NAME[:screen|card], once per share holder
        #[arg(long = "custodian", required = true)]
        custodians: Vec<String>,
        #[arg(long)]
        witness: String,
        /// Where share cards (medium `card`) and the transcript are written
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Same as escrow when an escrow exists: a new split, the old shares are dead
    Rekey {
        #[arg(long)]
        threshold: u8,
        #[arg(long = "custodian", required = true)]
        custodians: Vec<String>,
        #[arg(long)]
        witness: String,
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Rebuild the recovery key from M shares and set a new passphrase (no passphrase needed)
    Recover {
        /// One share as its words (repeat for each share)
        #[arg(long = "share-words", required = true)]
        shares: Vec<String>,
        /// The new passphrase, first line of this file (else CUSTOS_NEW_PASSPHRASE or a prompt)
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Check one share alone against the escrow's commitments (nothing is unlocked by the share)
    Drill {
        #[arg(long = "share-words")]
        share: Option<String>,
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

struct CliRoom<'a> {
    vault: &'a Path,
    demo: bool,
    active: Vec<(String, String)>,
}

impl Room for CliRoom<'_> {
    fn key_of(&mut self, custodian: &str) -> Result<Box<dyn Fido2Client>> {
        let active: Vec<String> = self
            .active
            .iter()
            .filter(|(n, _)| n == custodian)
            .map(|(_, d)| d.clone())
            .collect();
        devices::fido2_for(self.vault, custodian, self.demo, &active)
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

fn run_escrow(
    cli: &Cli,
    threshold: u8,
    custodians: &[String],
    witness: &str,
    out_dir: Option<&Path>,
) -> CliResult {
    let mut v = unlock(cli)?;
    let path = vault_path(cli)?;
    let demo = cli.demo || v.custody_status()?.demo;
    let plan = EscrowPlan {
        threshold,
        holders: parse_holders(custodians)?,
        witness: witness.to_string(),
    };
    if plan.holders.iter().any(|(_, m)| *m == Medium::Card) && out_dir.is_none() {
        return Err(Failure::Usage("share cards need --out-dir DIR".into()));
    }
    let active = v
        .custodians()?
        .into_iter()
        .flat_map(|c| {
            let name = c.name.clone();
            c.authenticators
                .into_iter()
                .filter(|a| a.revoked.is_none() && a.kind == "fido2")
                .map(move |a| (name.clone(), a.device.description))
        })
        .collect();
    let mut room = CliRoom {
        vault: &path,
        demo,
        active,
    };
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
                let file = dir.join(format!(
                    "{}-share-{}-{}.html",
                    out.ceremony, h.share.index, h.custodian
                ));
                write_new(&file, &share_card(h, &out.ceremony, &date)?)?;
                eprintln!(
                    "share card for {} written to {}",
                    h.custodian,
                    file.display()
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
    } else {
        println!(
            "ceremony {}: {}-of-{} escrow done",
            out.ceremony,
            threshold,
            plan.holders.len()
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
        CeremonyCmd::Escrow {
            threshold,
            custodians,
            witness,
            out_dir,
        }
        | CeremonyCmd::Rekey {
            threshold,
            custodians,
            witness,
            out_dir,
        } => run_escrow(cli, *threshold, custodians, witness, out_dir.as_deref()),
        CeremonyCmd::Recover {
            shares,
            new_passphrase_file,
        } => {
            let shares = read_shares(shares)?;
            let new = crate::new_passphrase(
                "CUSTOS_NEW_PASSPHRASE",
                new_passphrase_file.as_deref(),
                "New passphrase",
            )?;
            let v = Vault::recover(&vault_path(cli)?, &shares, &new, &custos_core::actor_name())?;
            println!("recovered: the vault now opens with the new passphrase");
            v.lock();
            Ok(())
        }
        CeremonyCmd::Drill { share } => {
            let mut v = unlock(cli)?;
            match share {
                Some(words) => {
                    let s = Share::from_words(words).map_err(Failure::Core)?;
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
fn read_shares(list: &[String]) -> CliResult<Vec<Share>> {
    list.iter()
        .enumerate()
        .map(|(i, w)| {
            Share::from_words(w).map_err(|e| {
                Failure::Core(Error::BadShare(format!(
                    "share {} on the command line: {}",
                    i + 1,
                    e.to_string().trim_start_matches("share refused: ")
                )))
            })
        })
        .collect()
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
                "escrow {} ({}-of-{}), created {}",
                s.ceremony, s.threshold, s.total, s.created
            );
            for sh in s.shares {
                println!(
                    "  share #{:<2} {:<20} {:<9} last drill {}",
                    sh.index,
                    sh.custodian,
                    sh.status,
                    sh.last_drill.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}
