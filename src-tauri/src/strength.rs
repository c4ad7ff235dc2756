//! Passphrase strength, estimated with zxcvbn in Rust so the window and the create command agree.

use serde::Serialize;

/// The lowest zxcvbn score (0..=4) the window accepts for a vault passphrase.
pub const MIN_SCORE: u8 = 3;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Strength {
    pub score: u8,
    pub guesses_log10: f64,
    pub feedback: Feedback,
    pub acceptable: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Feedback {
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
}

pub fn estimate(passphrase: &str) -> Strength {
    let entropy = zxcvbn::zxcvbn(passphrase, &["custos", "vault", "passphrase"]);
    let score = u8::from(entropy.score());
    let feedback = entropy
        .feedback()
        .map(|f| Feedback {
            warning: f.warning().map(|w| w.to_string()),
            suggestions: f.suggestions().iter().map(|s| s.to_string()).collect(),
        })
        .unwrap_or_default();
    let log10 = entropy.guesses_log10();
    Strength {
        score,
        guesses_log10: if log10.is_finite() { log10 } else { 0.0 },
        feedback,
        acceptable: score >= MIN_SCORE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong() {
        let weak = estimate("password1");
        assert!(weak.score < MIN_SCORE);
        assert!(!weak.acceptable);
        let empty = estimate("");
        assert_eq!(empty.score, 0);
        assert_eq!(empty.guesses_log10, 0.0);
        let strong = estimate("correct-horse-battery-staple-71-quietly");
        assert_eq!(strong.score, 4);
        assert!(strong.acceptable);
        assert!(strong.guesses_log10 > 10.0);
    }
}
