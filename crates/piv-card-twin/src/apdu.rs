//! ISO 7816-4 command APDUs, status words and the BER-TLV the PIV application speaks. Every parser
//! here answers `None` (or a status word) on malformed input: nothing the card receives may panic it.

/// Status words this card answers.
pub mod sw {
    pub const OK: u16 = 0x9000;
    /// `61xx`: more response data, fetch it with GET RESPONSE.
    pub const MORE_DATA: u16 = 0x6100;
    /// `63Cx`: wrong PIN/PUK, x tries left.
    pub const VERIFY_FAIL: u16 = 0x63C0;
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Security status not satisfied: PIN not verified, management key not authenticated, or (as
    /// on a YubiKey) no touch within the time allowed.
    pub const SECURITY_STATUS: u16 = 0x6982;
    /// Authentication method blocked (PIN or PUK at 0 tries).
    pub const AUTH_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const INCORRECT_DATA: u16 = 0x6A80;
    pub const FILE_NOT_FOUND: u16 = 0x6A82;
    pub const INCORRECT_P1P2: u16 = 0x6A86;
    /// Referenced data not found (an empty key slot's metadata).
    pub const REF_DATA_NOT_FOUND: u16 = 0x6A88;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
}

/// A parsed command APDU (short or extended length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
}

impl Command {
    /// Parses the four cases of ISO 7816-4, short and extended. `None` when the lengths do not add
    /// up.
    pub fn parse(raw: &[u8]) -> Option<Command> {
        let (header, body) = (raw.get(..4)?, raw.get(4..)?);
        let data = match body.len() {
            // Case 1, or case 2 (Le only).
            0 | 1 => Vec::new(),
            _ if body[0] == 0 && body.len() >= 3 => {
                // Extended: 00 Lc(2) data [Le(2)], or 00 Le(2).
                let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
                match body.len() - 3 {
                    0 => Vec::new(),
                    rest if rest == lc || rest == lc + 2 => body.get(3..3 + lc)?.to_vec(),
                    _ => return None,
                }
            }
            _ => {
                let lc = usize::from(body[0]);
                match body.len() - 1 {
                    rest if rest == lc || rest == lc + 1 => body.get(1..1 + lc)?.to_vec(),
                    _ => return None,
                }
            }
        };
        Some(Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data,
        })
    }
}

/// A response APDU: data and status word.
pub fn response(data: &[u8], sw: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(&sw.to_be_bytes());
    out
}

/// A BER length.
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        let l = (len.min(0xFFFF)) as u16;
        out.push(0x82);
        out.extend_from_slice(&l.to_be_bytes());
    }
}

/// A TLV with a one-byte tag (two-byte tags are written with [`tlv2`]).
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    encode_len(value.len(), &mut out);
    out.extend_from_slice(value);
    out
}

/// A TLV with a two-byte tag (`7F 49`).
pub fn tlv2(tag: [u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    encode_len(value.len(), &mut out);
    out.extend_from_slice(value);
    out
}

/// One TLV with a one-byte tag from the front of `input`: `(tag, value, rest)`.
pub fn parse_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7F => (usize::from(first), rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            (usize::from(l), rest)
        }
        0x82 => {
            let l = rest.get(..2)?;
            (
                usize::from(u16::from_be_bytes([l[0], l[1]])),
                rest.get(2..)?,
            )
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

/// All TLVs of `input` (one-byte tags); `None` if any is malformed.
pub fn parse_all(mut input: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tag, value, rest) = parse_tlv(input)?;
        out.push((tag, value));
        input = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_cases_and_extended_lengths_parse() {
        let c = Command::parse(&[0, 0xFD, 0, 0]).expect("case 1");
        assert!(c.data.is_empty());
        let c = Command::parse(&[0, 0xFD, 0, 0, 0]).expect("Lc 0 as the yubikey crate sends it");
        assert!(c.data.is_empty());
        let c = Command::parse(&[0, 0x20, 0, 0x80, 2, 1, 2]).expect("case 3");
        assert_eq!(c.data, [1, 2]);
        let c = Command::parse(&[0, 0x20, 0, 0x80, 2, 1, 2, 0]).expect("case 4");
        assert_eq!(c.data, [1, 2]);
        let c = Command::parse(&[0, 0xDB, 0x3F, 0xFF, 0, 0, 2, 9, 9]).expect("extended");
        assert_eq!(c.data, [9, 9]);
        assert!(Command::parse(&[0, 0x20, 0]).is_none());
        assert!(Command::parse(&[0, 0x20, 0, 0x80, 5, 1]).is_none());
        assert!(Command::parse(&[0, 0x20, 0, 0x80, 0, 0, 9, 1]).is_none());
    }

    #[test]
    fn tlvs_round_trip_and_truncation_is_refused() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 0x400] {
            let v = vec![7u8; len];
            let t = tlv(0x53, &v);
            let (tag, value, rest) = parse_tlv(&t).expect("parse");
            assert_eq!((tag, value, rest.len()), (0x53, v.as_slice(), 0));
            assert!(parse_tlv(&t[..t.len().saturating_sub(1).max(1)]).is_none() || len == 0);
        }
        assert!(parse_tlv(&[0x53, 0x83, 0, 0, 1]).is_none());
        assert!(parse_tlv(&[0x53]).is_none());
        assert!(parse_all(&[0x80, 0x00, 0x81, 0x01]).is_none());
    }
}
