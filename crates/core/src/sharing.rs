//! M-of-N secret sharing for the recovery escrow (groundwork for the ceremonies): vsss-rs's GF(256)
//! Shamir sharing, with the checks vsss-rs leaves to its caller, and a word encoding that names a wrong
//! word.
//!
//! vsss-rs's `combine` does not know the threshold and returns garbage for too few shares, so a
//! [`ShareSet`] records M, N and a digest of the secret, and [`combine`] checks every share before and
//! the digest after. Each share also has a commitment (a domain-separated hash of everything it is) that
//! lets one share be checked alone, without the others and without rebuilding the secret.
//!
//! Words: a share is 43 bytes (ceremony id 8, index, M, N, value 32) written as 32 words of 11 bits
//! from the BIP-39 English list, plus 2 check words of a Reed–Solomon code over GF(2¹¹). Two check
//! symbols locate any single wrong word, so a typo is named by its position (and the right word is
//! known); more errors are detected as "does not check" with high probability.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretKey;

const COMMIT_DOMAIN: &[u8] = b"custos-share-commitment-v1\0";
const DIGEST_DOMAIN: &[u8] = b"custos-recovery-digest-v1\0";
/// Share bytes: ceremony id, index, M, N, value.
const SHARE_LEN: usize = 8 + 3 + 32;
/// Data words (11 bits each, 352 ≥ 344 bits) and check words.
const DATA_WORDS: usize = 32;
const CHECK_WORDS: usize = 2;
pub const SHARE_WORDS: usize = DATA_WORDS + CHECK_WORDS;
/// The largest N.
pub const MAX_SHARES: u8 = 32;

/// What is kept of a split: never the shares themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSet {
    /// Ceremony id (hex, 8 bytes).
    pub ceremony: String,
    pub threshold: u8,
    pub total: u8,
    /// SHA-256 over the domain, the ceremony id and the secret: checks a rebuilt secret.
    pub digest: String,
    /// Per-share commitments, index 1..=N in order.
    pub commitments: Vec<String>,
}

/// One share. Its value is secret: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub ceremony: [u8; 8],
    pub index: u8,
    pub threshold: u8,
    pub total: u8,
    value: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Share({} #{} of {}-of-{}, <redacted>)",
            hex::encode(self.ceremony),
            self.index,
            self.threshold,
            self.total
        )
    }
}

impl Share {
    fn bytes(&self) -> Zeroizing<[u8; SHARE_LEN]> {
        let mut b = Zeroizing::new([0u8; SHARE_LEN]);
        b[..8].copy_from_slice(&self.ceremony);
        b[8] = self.index;
        b[9] = self.threshold;
        b[10] = self.total;
        b[11..].copy_from_slice(self.value.as_slice());
        b
    }

    fn from_bytes(b: &[u8; SHARE_LEN]) -> Share {
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&b[11..]);
        let mut ceremony = [0u8; 8];
        ceremony.copy_from_slice(&b[..8]);
        Share {
            ceremony,
            index: b[8],
            threshold: b[9],
            total: b[10],
            value,
        }
    }

    /// The commitment that lets this share be checked alone.
    pub fn commitment(&self) -> String {
        let mut h = Sha256::new();
        h.update(COMMIT_DOMAIN);
        h.update(self.bytes().as_slice());
        hex::encode(h.finalize())
    }

    /// The share as uppercase RFC 4648 base32 without padding (fits a QR code's alphanumeric mode).
    pub fn qr_text(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let bytes = self.bytes();
        let mut out = String::with_capacity(SHARE_LEN * 8 / 5 + 1);
        let (mut acc, mut bits) = (0u32, 0u32);
        for b in bytes.iter() {
            acc = (acc << 8) | *b as u32;
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        out
    }

    /// A short public fingerprint for transcripts and share cards (not enough to rebuild anything).
    pub fn fingerprint(&self) -> String {
        self.commitment()[..16].to_string()
    }

    /// The share as 34 checksummed words.
    pub fn to_words(&self) -> Vec<&'static str> {
        let data = to_symbols(self.bytes().as_slice());
        let code = rs_encode(&data);
        let list = bip39::Language::English.word_list();
        code.iter().map(|s| list[*s as usize]).collect()
    }

    /// Read a share from its words. A single wrong word is named by its position (1-based) with the
    /// word that belongs there; an unknown word is named too.
    pub fn from_words(text: &str) -> Result<Share> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() != SHARE_WORDS {
            return Err(Error::BadShare(format!(
                "a share has {SHARE_WORDS} words; {} were given",
                words.len()
            )));
        }
        let lang = bip39::Language::English;
        let mut code = [0u16; SHARE_WORDS];
        for (i, w) in words.iter().enumerate() {
            code[i] = lang.find_word(&w.to_lowercase()).ok_or_else(|| {
                Error::BadShare(format!("word {} ({w:?}) is not in the word list", i + 1))
            })?;
        }
        match rs_check(&code) {
            Check::Ok => {}
            Check::OneError { position, right } => {
                return Err(Error::BadShare(format!(
                    "word {} is wrong (it should probably be {:?}); check that word on the share",
                    position + 1,
                    lang.word_list()[right as usize]
                )))
            }
            Check::Bad => {
                return Err(Error::BadShare(
                    "the words do not check: more than one word is wrong, or they are in the wrong order".into(),
                ))
            }
        }
        let bytes = from_symbols(&code[..DATA_WORDS])
            .ok_or_else(|| Error::BadShare("the words do not encode a share".into()))?;
        Share::checked(Share::from_bytes(&bytes), "the words")
    }

    /// A share whose index, threshold and total make sense; `what` names where it came from.
    fn checked(share: Share, what: &str) -> Result<Share> {
        if share.index == 0
            || share.index > share.total
            || share.threshold < 2
            || share.threshold > share.total
        {
            return Err(Error::BadShare(format!(
                "{what} do not encode a valid share"
            )));
        }
        Ok(share)
    }

    /// Read a share from its QR text (uppercase RFC 4648 base32 without padding, as
    /// [`Share::qr_text`] writes it).
    pub fn from_qr_text(text: &str) -> Result<Share> {
        let text = text.trim();
        if text.len() != (SHARE_LEN * 8).div_ceil(5) {
            return Err(Error::BadShare(
                "the QR code does not hold a Custos share (wrong length)".into(),
            ));
        }
        let mut bytes = Zeroizing::new([0u8; SHARE_LEN]);
        let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
        for c in text.chars() {
            let v = match c {
                'A'..='Z' => c as u32 - 'A' as u32,
                'a'..='z' => c as u32 - 'a' as u32,
                '2'..='7' => c as u32 - '2' as u32 + 26,
                _ => {
                    return Err(Error::BadShare(
                        "the QR code does not hold a Custos share (not base32)".into(),
                    ))
                }
            };
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if n == SHARE_LEN {
                    return Err(Error::BadShare(
                        "the QR code does not hold a Custos share (too long)".into(),
                    ));
                }
                bytes[n] = (acc >> bits) as u8;
                n += 1;
            }
            acc &= (1 << bits) - 1;
        }
        if n != SHARE_LEN || acc != 0 {
            return Err(Error::BadShare(
                "the QR code does not hold a Custos share (wrong length)".into(),
            ));
        }
        Share::checked(Share::from_bytes(&bytes), "the QR code's contents")
    }
}

/// The digest a [`ShareSet`] keeps of its secret.
pub fn digest_of(ceremony: &[u8; 8], secret: &SecretKey) -> String {
    digest(ceremony, secret.expose())
}

fn digest(ceremony: &[u8; 8], secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(DIGEST_DOMAIN);
    h.update(ceremony);
    h.update(secret);
    hex::encode(h.finalize())
}

fn vsss_form(s: &Share) -> Vec<u8> {
    let mut v = Vec::with_capacity(33);
    v.push(s.index);
    v.extend_from_slice(s.value.as_slice());
    v
}

/// Split `secret` M-of-N. Before returning, checks that every share lies on the one polynomial (so
/// every M-subset rebuilds the secret) and that the first M rebuild it.
pub fn split(
    secret: &SecretKey,
    threshold: u8,
    total: u8,
    ceremony: [u8; 8],
) -> Result<(ShareSet, Vec<Share>)> {
    if threshold < 2 || threshold > total || total > MAX_SHARES {
        return Err(Error::BadShare(format!(
            "{threshold}-of-{total} is not allowed: use 2 ≤ M ≤ N ≤ {MAX_SHARES}"
        )));
    }
    let rng = rand_core::UnwrapErr(getrandom::SysRng);
    let raw = vsss_rs::Gf256::split_bytes(threshold as usize, total as usize, secret.expose(), rng)
        .map_err(|e| Error::Internal(format!("secret sharing failed: {e:?}")))?;
    let raw: Vec<Zeroizing<Vec<u8>>> = raw.into_iter().map(Zeroizing::new).collect();
    let mut shares = Vec::with_capacity(raw.len());
    for r in &raw {
        if r.len() != 33 || r[0] == 0 {
            return Err(Error::Internal(
                "unexpected share layout from vsss-rs".into(),
            ));
        }
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&r[1..]);
        shares.push(Share {
            ceremony,
            index: r[0],
            threshold,
            total,
            value,
        });
    }
    shares.sort_by_key(|s| s.index);
    let set = ShareSet {
        ceremony: hex::encode(ceremony),
        threshold,
        total,
        digest: digest(&ceremony, secret.expose()),
        commitments: shares.iter().map(Share::commitment).collect(),
    };
    // M−1 fixed shares plus any other share rebuild the secret iff that share is on the polynomial.
    let m = threshold as usize;
    for j in (m - 1)..shares.len() {
        let subset: Vec<Share> = shares[..m - 1]
            .iter()
            .chain(std::iter::once(&shares[j]))
            .cloned()
            .collect();
        let rebuilt = combine_unchecked(&subset)?;
        if digest(&ceremony, rebuilt.as_slice()) != set.digest {
            return Err(Error::Internal(format!(
                "share {} does not rebuild the secret: the split was discarded",
                shares[j].index
            )));
        }
    }
    Ok((set, shares))
}

fn combine_unchecked(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>> {
    let forms: Vec<Vec<u8>> = shares.iter().map(vsss_form).collect();
    let out = vsss_rs::Gf256::combine_bytes(&forms);
    for mut f in forms {
        zeroize::Zeroize::zeroize(&mut f);
    }
    out.map(Zeroizing::new)
        .map_err(|e| Error::BadShare(format!("the shares do not combine: {e:?}")))
}

/// Check one share alone against the set: the right ceremony, a valid index, its commitment.
pub fn check_share(set: &ShareSet, share: &Share) -> Result<()> {
    if hex::encode(share.ceremony) != set.ceremony {
        return Err(Error::BadShare(format!(
            "share #{} belongs to another ceremony ({}), not {}",
            share.index,
            hex::encode(share.ceremony),
            set.ceremony
        )));
    }
    if share.threshold != set.threshold || share.total != set.total {
        return Err(Error::BadShare(format!(
            "share #{} says {}-of-{}, the ceremony is {}-of-{}",
            share.index, share.threshold, share.total, set.threshold, set.total
        )));
    }
    let expected = set
        .commitments
        .get((share.index as usize).wrapping_sub(1))
        .ok_or_else(|| {
            Error::BadShare(format!(
                "share #{} does not exist in this ceremony",
                share.index
            ))
        })?;
    if &share.commitment() != expected {
        return Err(Error::BadShare(format!(
            "share #{} does not match its commitment: it is corrupted or forged",
            share.index
        )));
    }
    Ok(())
}

/// Rebuild the secret from at least M shares, each checked first (a bad or duplicate share is named
/// and never combined), then the result checked against the digest.
pub fn combine(set: &ShareSet, shares: &[Share]) -> Result<SecretKey> {
    let mut seen = std::collections::BTreeSet::new();
    for s in shares {
        check_share(set, s)?;
        if !seen.insert(s.index) {
            return Err(Error::BadShare(format!(
                "share #{} was given twice: bring another custodian's share",
                s.index
            )));
        }
    }
    if shares.len() < set.threshold as usize {
        return Err(Error::BadShare(format!(
            "too few shares: {} of the {} needed",
            shares.len(),
            set.threshold
        )));
    }
    let secret = combine_unchecked(&shares[..set.threshold as usize])?;
    let ceremony: [u8; 8] = hex::decode(&set.ceremony)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::Tampered("the share set's ceremony id is malformed".into()))?;
    if digest(&ceremony, secret.as_slice()) != set.digest {
        return Err(Error::BadShare(
            "the rebuilt secret does not match the ceremony's digest".into(),
        ));
    }
    SecretKey::from_slice(secret.as_slice())
}

// ---- words: bits <-> 11-bit symbols, Reed–Solomon over GF(2^11) ---------------------------------

fn to_symbols(bytes: &[u8]) -> [u16; DATA_WORDS] {
    let mut out = [0u16; DATA_WORDS];
    let bit = |i: usize| -> u16 {
        bytes
            .get(i / 8)
            .map_or(0, |b| ((b >> (7 - i % 8)) & 1) as u16)
    };
    for (w, o) in out.iter_mut().enumerate() {
        *o = (0..11).fold(0, |acc, k| (acc << 1) | bit(w * 11 + k));
    }
    out
}

/// The inverse of [`to_symbols`]; `None` if the padding bits are not zero.
fn from_symbols(symbols: &[u16]) -> Option<[u8; SHARE_LEN]> {
    let mut out = [0u8; SHARE_LEN];
    for i in 0..DATA_WORDS * 11 {
        let b = (symbols[i / 11] >> (10 - i % 11)) & 1;
        if i / 8 < SHARE_LEN {
            out[i / 8] |= (b as u8) << (7 - i % 8);
        } else if b != 0 {
            return None;
        }
    }
    Some(out)
}

/// GF(2^11) with the primitive polynomial x^11 + x^2 + 1.
struct Gf {
    exp: [u16; 4096],
    log: [u16; 2048],
}

const GF_ORDER: usize = 2047;

fn gf() -> &'static Gf {
    static GF: std::sync::OnceLock<Gf> = std::sync::OnceLock::new();
    GF.get_or_init(|| {
        let mut g = Gf {
            exp: [0; 4096],
            log: [0; 2048],
        };
        let mut x: u16 = 1;
        for i in 0..GF_ORDER {
            g.exp[i] = x;
            g.log[x as usize] = i as u16;
            x <<= 1;
            if x & 0x800 != 0 {
                x ^= 0x805;
            }
        }
        for i in GF_ORDER..4096 {
            g.exp[i] = g.exp[i - GF_ORDER];
        }
        g
    })
}

fn mul(a: u16, b: u16) -> u16 {
    if a == 0 || b == 0 {
        return 0;
    }
    let g = gf();
    g.exp[g.log[a as usize] as usize + g.log[b as usize] as usize]
}

fn div(a: u16, b: u16) -> u16 {
    if a == 0 {
        return 0;
    }
    let g = gf();
    g.exp[(g.log[a as usize] as usize + GF_ORDER - g.log[b as usize] as usize) % GF_ORDER]
}

/// α^e.
fn alpha(e: usize) -> u16 {
    gf().exp[e % GF_ORDER]
}

/// Syndromes S1 = Σ c_i α^i and S2 = Σ c_i α^(2i).
fn syndromes(code: &[u16]) -> (u16, u16) {
    code.iter().enumerate().fold((0, 0), |(s1, s2), (i, c)| {
        (s1 ^ mul(*c, alpha(i)), s2 ^ mul(*c, alpha(2 * i)))
    })
}

/// Append two check symbols so that both syndromes vanish.
fn rs_encode(data: &[u16; DATA_WORDS]) -> [u16; SHARE_WORDS] {
    let k = DATA_WORDS;
    let (d1, d2) = syndromes(data);
    // Solve p0·α^k + p1·α^(k+1) = d1 and p0·α^(2k) + p1·α^(2k+2) = d2 (characteristic 2).
    let det = alpha(3 * k + 2) ^ alpha(3 * k + 1);
    let p0 = div(mul(d1, alpha(2 * k + 2)) ^ mul(d2, alpha(k + 1)), det);
    let p1 = div(mul(d1, alpha(2 * k)) ^ mul(d2, alpha(k)), det);
    let mut out = [0u16; SHARE_WORDS];
    out[..k].copy_from_slice(data);
    out[k] = p0;
    out[k + 1] = p1;
    out
}

enum Check {
    Ok,
    OneError { position: usize, right: u16 },
    Bad,
}

fn rs_check(code: &[u16; SHARE_WORDS]) -> Check {
    let (s1, s2) = syndromes(code);
    if s1 == 0 && s2 == 0 {
        return Check::Ok;
    }
    if s1 == 0 || s2 == 0 {
        return Check::Bad;
    }
    // One error e at position j: S1 = e·α^j, S2 = e·α^(2j) → α^j = S2/S1.
    let aj = div(s2, s1);
    let j = gf().log[aj as usize] as usize;
    if j >= SHARE_WORDS {
        return Check::Bad;
    }
    let e = div(s1, aj);
    let right = code[j] ^ e;
    if right >= 2048 {
        return Check::Bad;
    }
    Check::OneError { position: j, right }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretKey {
        SecretKey::generate().unwrap()
    }

    #[test]
    fn every_m_subset_rebuilds_and_m_minus_one_is_refused() {
        let s = secret();
        let (set, shares) = split(&s, 3, 5, [1; 8]).unwrap();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let got = combine(
                        &set,
                        &[shares[a].clone(), shares[b].clone(), shares[c].clone()],
                    )
                    .unwrap();
                    assert_eq!(got.expose(), s.expose());
                }
                let e = combine(&set, &[shares[a].clone(), shares[b].clone()]).unwrap_err();
                assert!(e.to_string().contains("too few shares: 2 of the 3"), "{e}");
            }
        }
    }

    #[test]
    fn duplicate_flipped_and_foreign_shares_are_named() {
        let (set, shares) = split(&secret(), 2, 3, [2; 8]).unwrap();
        let e = combine(&set, &[shares[0].clone(), shares[0].clone()]).unwrap_err();
        assert!(e.to_string().contains("share #1 was given twice"), "{e}");
        let mut bad = shares[1].clone();
        bad.value[5] ^= 1;
        let e = combine(&set, &[shares[0].clone(), bad]).unwrap_err();
        assert!(
            e.to_string()
                .contains("share #2 does not match its commitment"),
            "{e}"
        );
        // A share of the same ceremony id but another secret fails its commitment; one of another
        // ceremony is named as such.
        let (_, forged) = split(&secret(), 2, 3, [2; 8]).unwrap();
        let e = combine(&set, &[shares[0].clone(), forged[2].clone()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("share #3 does not match its commitment"),
            "{e}"
        );
        let (_, other) = split(&secret(), 2, 3, [3; 8]).unwrap();
        let e = combine(&set, &[shares[0].clone(), other[2].clone()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("share #3 belongs to another ceremony"),
            "{e}"
        );
        // One share alone checks against the commitments.
        check_share(&set, &shares[2]).unwrap();
    }

    #[test]
    fn words_round_trip_and_a_wrong_word_is_named_by_position() {
        let (_, shares) = split(&secret(), 3, 5, [3; 8]).unwrap();
        for share in &shares {
            let words = share.to_words();
            assert_eq!(words.len(), SHARE_WORDS);
            let back = Share::from_words(&words.join(" ")).unwrap();
            assert_eq!(&back, share);
            // Any single word replaced by any other is named, with the right word.
            let list = bip39::Language::English.word_list();
            for pos in [0usize, 7, 31, 32, 33] {
                let mut w: Vec<&str> = words.clone();
                let original = w[pos];
                w[pos] = if original == list[0] {
                    list[1]
                } else {
                    list[0]
                };
                let e = Share::from_words(&w.join(" ")).unwrap_err().to_string();
                assert!(e.contains(&format!("word {} is wrong", pos + 1)), "{e}");
                assert!(e.contains(original), "{e}");
            }
        }
    }

    #[test]
    fn qr_text_round_trips_and_other_text_is_refused() {
        let (_, shares) = split(&secret(), 2, 3, [6; 8]).unwrap();
        for s in &shares {
            assert_eq!(&Share::from_qr_text(&s.qr_text()).unwrap(), s);
            assert_eq!(
                &Share::from_qr_text(&s.qr_text().to_lowercase()).unwrap(),
                s
            );
        }
        let t = shares[0].qr_text();
        for bad in [&t[1..], &format!("{t}A"), "https://example.com/", ""] {
            let e = Share::from_qr_text(bad).unwrap_err();
            assert!(
                e.to_string().contains("does not hold a Custos share"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn two_swapped_words_are_detected() {
        let (_, shares) = split(&secret(), 2, 2, [4; 8]).unwrap();
        let mut w = shares[0].to_words();
        w.swap(3, 4);
        if w[3] != w[4] {
            assert!(Share::from_words(&w.join(" ")).is_err());
        }
    }

    #[test]
    fn thresholds_out_of_range_are_refused() {
        assert!(split(&secret(), 1, 3, [5; 8]).is_err());
        assert!(split(&secret(), 4, 3, [5; 8]).is_err());
        assert!(split(&secret(), 2, 33, [5; 8]).is_err());
        let (set, shares) = split(&secret(), 2, 32, [5; 8]).unwrap();
        assert_eq!(shares.len(), 32);
        assert_eq!(set.commitments.len(), 32);
    }
}
