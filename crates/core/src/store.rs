//! The vault file: one SQLite database, versioned schema migrations.
//!
//! What is stored in the clear: random ids, versions, the KDF parameters and salt, the audit public key,
//! the audit log (which names keys only by id) and sealed blobs. Key names, types, policies, states and
//! material are all sealed (see `seal`).

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};

/// The schema this build writes. Older vaults are migrated forward on open.
pub const SCHEMA_VERSION: u32 = 3;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the foundation.
    "CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
     );
     CREATE TABLE keys (
        id     BLOB PRIMARY KEY CHECK (length(id) = 16),
        record BLOB NOT NULL,  -- sealed KeyRecord (root key)
        kek    BLOB NOT NULL   -- sealed KEK (root key)
     );
     CREATE TABLE key_versions (
        key_id   BLOB NOT NULL REFERENCES keys(id),
        version  INTEGER NOT NULL CHECK (version >= 1),
        record   BLOB NOT NULL,  -- sealed VersionRecord (root key)
        material BLOB,           -- sealed material (KEK); NULL once destroyed
        PRIMARY KEY (key_id, version)
     );
     CREATE TABLE audit (
        seq   INTEGER PRIMARY KEY,
        hash  TEXT NOT NULL,
        entry TEXT NOT NULL
     );
     CREATE TABLE audit_checkpoints (
        seq       INTEGER PRIMARY KEY,
        hash      TEXT NOT NULL,
        signature TEXT NOT NULL
     );",
    // 1 -> 2: custodians, approval requests, and the persistent back-off counters.
    "CREATE TABLE custodians (
        id     BLOB PRIMARY KEY CHECK (length(id) = 16),
        record BLOB NOT NULL  -- sealed CustodianRecord (root key)
     );
     CREATE TABLE requests (
        id     BLOB PRIMARY KEY CHECK (length(id) = 16),
        record BLOB NOT NULL  -- sealed RequestRecord (root key)
     );
     -- In the clear on purpose: written while the vault is locked (failed unlocks).
     CREATE TABLE backoff (
        scope        TEXT PRIMARY KEY,
        failures     INTEGER NOT NULL,
        last_failure INTEGER NOT NULL
     );",
    // 2 -> 3: ceremony transcripts (public: no secret in them; covered by the state seal).
    "CREATE TABLE ceremonies (
        id         BLOB PRIMARY KEY CHECK (length(id) = 8),
        transcript TEXT NOT NULL
     );",
];

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL for crash safety with readers; FULL so a committed operation survives power loss;
    // secure_delete so destroyed key material is overwritten, not left in free pages.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn schema_version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current = schema_version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(())
}

/// Create a new, empty vault file (owner-only permissions) with the current schema.
pub(crate) fn create(path: &Path) -> Result<Connection> {
    if path.exists() {
        return Err(Error::VaultExists(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    // Create the file ourselves so it is 0600 from the first byte.
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(path).map_err(|e| Error::io(path.display(), e))?;
    }
    let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Open an existing vault file and bring its schema up to date.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(Error::NoVault(path.to_path_buf()));
    }
    let not_a_vault = |detail: String| Error::NotAVault {
        path: path.to_path_buf(),
        detail,
    };
    // Only "this is not a database" means not a vault; I/O errors and lock time-outs stay what they are.
    let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => not_a_vault("not an SQLite database".into()),
        _ => Error::Database(e),
    };
    let mut conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(classify)?;
    configure(&conn).map_err(|e| match e {
        Error::Database(d) => classify(d),
        other => other,
    })?;
    let v = schema_version(&conn)?;
    if v == 0 {
        return Err(not_a_vault("no Custos schema".into()));
    }
    migrate(&mut conn)?;
    if get_meta(&conn, "vault_id")?.is_none() {
        return Err(not_a_vault("vault id missing".into()));
    }
    Ok(conn)
}

pub(crate) fn get_meta(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

/// A meta value that must be there; its absence means the file was damaged or tampered with.
pub(crate) fn require_meta(conn: &Connection, name: &str) -> Result<Vec<u8>> {
    get_meta(conn, name)?
        .ok_or_else(|| Error::Tampered(format!("vault metadata {name:?} is missing")))
}

pub(crate) fn set_meta(conn: &Connection, name: &str, value: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

/// Push the WAL into the main file and truncate it, so erased material does not linger in the log.
pub(crate) fn checkpoint_wal(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

pub(crate) fn schema_of(conn: &Connection) -> Result<u32> {
    schema_version(conn)
}
