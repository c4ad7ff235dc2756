//! Passphrase key derivation: Argon2id, calibrated on this machine.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::{random_bytes, Passphrase, SecretKey};

/// The floor no real vault goes below (OWASP's minimum for Argon2id: m = 19 MiB, t = 2).
pub const MIN_MEMORY_KIB: u32 = 19 * 1024;
pub const MIN_ITERATIONS: u32 = 2;
/// The ceiling calibration will not exceed, so a vault made on a big workstation still opens on a laptop.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Allowed unlock-time targets.
pub const TARGET_MS_RANGE: std::ops::RangeInclusive<u32> = 100..=500;
pub const DEFAULT_TARGET_MS: u32 = 300;
pub(crate) const SALT_LEN: usize = 32;

/// Argon2id parameters stored in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
}

impl KdfParams {
    /// True when these parameters are below the floor (only `--insecure-test-kdf` vaults).
    pub fn is_insecure(&self) -> bool {
        self.memory_kib < MIN_MEMORY_KIB || self.iterations < MIN_ITERATIONS
    }

    /// Deliberately weak parameters for test vaults (`init --insecure-test-kdf`).
    pub(crate) fn insecure_test() -> Result<Self> {
        Ok(KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            salt: random_bytes::<SALT_LEN>()?.to_vec(),
        })
    }

    /// The same cost with a fresh salt (used when the passphrase changes).
    pub(crate) fn with_fresh_salt(&self) -> Result<Self> {
        Ok(KdfParams {
            salt: random_bytes::<SALT_LEN>()?.to_vec(),
            ..self.clone()
        })
    }
}

/// Progress of a calibration run, for the window's progress bar.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationProgress {
    pub step: u32,
    pub of: u32,
    pub message: String,
}

fn argon2(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Argon2<'static>> {
    let params = Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|e| Error::Internal(format!("argon2 parameters rejected: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Derive the 256-bit passphrase key.
pub(crate) fn derive(pass: &Passphrase, params: &KdfParams) -> Result<SecretKey> {
    let a = argon2(params.memory_kib, params.iterations, params.parallelism)?;
    let mut out = [0u8; 32];
    a.hash_password_into(pass.expose(), &params.salt, &mut out)
        .map_err(|e| Error::Internal(format!("argon2 failed: {e}")))?;
    Ok(SecretKey::from_bytes(out))
}

/// Time one derivation at the given cost (dummy passphrase and salt).
pub fn time_once(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Duration> {
    let a = argon2(memory_kib, iterations, parallelism)?;
    let mut out = [0u8; 32];
    let start = Instant::now();
    a.hash_password_into(b"calibration", &[0u8; SALT_LEN], &mut out)
        .map_err(|e| Error::Internal(format!("argon2 failed: {e}")))?;
    Ok(start.elapsed())
}

/// Lanes: one per core, at most 4 (a vault must still open on a smaller laptop in reasonable time).
fn default_parallelism() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4) as u32)
        .unwrap_or(1)
}

/// Pick Argon2id parameters so that one derivation takes about `target_ms` on this machine, never below
/// m = 19 MiB, t = 2. Memory is raised first (it is what makes guessing expensive on GPUs), with t = 3.
pub(crate) fn calibrate(
    target_ms: u32,
    progress: &mut dyn FnMut(CalibrationProgress),
) -> Result<KdfParams> {
    if !TARGET_MS_RANGE.contains(&target_ms) {
        return Err(Error::InvalidTarget(target_ms));
    }
    let p = default_parallelism();
    let target = Duration::from_millis(u64::from(target_ms)).as_secs_f64();
    const STEPS: u32 = 4;
    let mut report = |step: u32, message: String| {
        progress(CalibrationProgress {
            step,
            of: STEPS,
            message,
        })
    };

    report(1, "measuring this machine".into());
    let probe_m = 32 * 1024;
    let t = 3;
    let probe = time_once(probe_m, t, p)?.as_secs_f64().max(1e-4);

    // Time grows about linearly with memory; scale, then refine once with a real measurement.
    let scale = |m: u32, secs: f64| -> u32 {
        let m = (f64::from(m) * target / secs) as u64;
        m.clamp(u64::from(MIN_MEMORY_KIB), u64::from(MAX_MEMORY_KIB)) as u32
    };
    let mut m = scale(probe_m, probe);
    report(2, format!("trying {} MiB", m / 1024));
    let secs = time_once(m, t, p)?.as_secs_f64().max(1e-4);
    m = scale(m, secs);

    // On a slow machine even the memory floor may exceed the target: drop to the iteration floor.
    let mut iterations = t;
    if m == MIN_MEMORY_KIB && secs > target * 1.2 {
        iterations = MIN_ITERATIONS;
    }
    report(
        3,
        format!("checking {} MiB, {} passes", m / 1024, iterations),
    );
    let check = time_once(m, iterations, p)?;
    report(
        4,
        format!(
            "chosen: {} MiB, {} passes, {} lanes ({} ms here)",
            m / 1024,
            iterations,
            p,
            check.as_millis()
        ),
    );
    Ok(KdfParams {
        memory_kib: m,
        iterations,
        parallelism: p,
        salt: random_bytes::<SALT_LEN>()?.to_vec(),
    })
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_depends_on_salt_and_passphrase() {
        // The argon2 crate checks itself against the RFC 9106 vectors; here: our use of it.
        let p = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            salt: vec![7; 16],
        };
        let a = derive(&Passphrase::new("one".into()), &p).unwrap();
        let b = derive(&Passphrase::new("one".into()), &p).unwrap();
        let c = derive(&Passphrase::new("two".into()), &p).unwrap();
        let d = derive(
            &Passphrase::new("one".into()),
            &KdfParams {
                salt: vec![8; 16],
                ..p.clone()
            },
        )
        .unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
        assert_ne!(a.expose(), d.expose());
    }

    #[test]
    fn calibration_respects_floor_and_target_range() {
        assert!(matches!(
            calibrate(50, &mut |_| {}),
            Err(Error::InvalidTarget(50))
        ));
        let mut steps = vec![];
        let p = calibrate(100, &mut |s| steps.push(s.step)).unwrap();
        assert!(p.memory_kib >= MIN_MEMORY_KIB && p.iterations >= MIN_ITERATIONS);
        assert!(!p.is_insecure());
        assert_eq!(p.salt.len(), SALT_LEN);
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }

    #[test]
    fn test_params_are_flagged_insecure() {
        assert!(KdfParams::insecure_test().unwrap().is_insecure());
    }
}
