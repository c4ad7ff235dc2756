//! Persistent back-off after failed unlocks and wrong PINs.
//!
//! The counters live in the vault file in the clear (a failed unlock has no key to seal with). They slow
//! down a person guessing through Custos; they do not stop someone who copies the file and attacks it
//! offline — Argon2id is what stands against that.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::now;
use crate::error::{Error, Result};

/// Attempts allowed before the first delay.
pub(crate) const FREE_ATTEMPTS: u32 = 3;
/// The longest delay.
pub(crate) const MAX_DELAY_SECS: u64 = 15 * 60;

/// The delay after `failures` consecutive failures: none for the first three, then 5 s, doubling, at
/// most 15 minutes.
pub(crate) fn delay_after(failures: u32) -> u64 {
    if failures < FREE_ATTEMPTS {
        return 0;
    }
    let doublings = (failures - FREE_ATTEMPTS).min(16);
    (5u64 << doublings).min(MAX_DELAY_SECS)
}

/// (consecutive failures, time of the last one).
pub(crate) fn state(conn: &Connection, scope: &str) -> Result<(u32, i64)> {
    Ok(conn
        .query_row(
            "SELECT failures, last_failure FROM backoff WHERE scope = ?1",
            [scope],
            |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0)))
}

/// Seconds still to wait before another attempt (0: go ahead).
pub(crate) fn remaining(conn: &Connection, scope: &str) -> Result<u64> {
    let (failures, last) = state(conn, scope)?;
    let until = last.saturating_add(delay_after(failures) as i64);
    Ok(until.saturating_sub(now()).max(0) as u64)
}

pub(crate) fn check(conn: &Connection, scope: &str) -> Result<()> {
    match remaining(conn, scope)? {
        0 => Ok(()),
        wait_secs => Err(Error::BackedOff { wait_secs }),
    }
}

pub(crate) fn record_failure(conn: &Connection, scope: &str) -> Result<u32> {
    conn.execute(
        "INSERT INTO backoff (scope, failures, last_failure) VALUES (?1, 1, ?2)
         ON CONFLICT(scope) DO UPDATE SET failures = failures + 1, last_failure = excluded.last_failure",
        params![scope, now()],
    )?;
    Ok(state(conn, scope)?.0)
}

pub(crate) fn clear(conn: &Connection, scope: &str) -> Result<()> {
    conn.execute("DELETE FROM backoff WHERE scope = ?1", [scope])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_is_capped() {
        assert_eq!(delay_after(0), 0);
        assert_eq!(delay_after(2), 0);
        assert_eq!(delay_after(3), 5);
        assert_eq!(delay_after(4), 10);
        assert_eq!(delay_after(5), 20);
        assert_eq!(delay_after(30), MAX_DELAY_SECS);
    }
}
