//! Start-up configuration: where the vault lives, how long until the idle auto-lock, whether the
//! window may create an insecure test vault, and whether it uses demo (software) keys.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::AppError;

/// Idle auto-lock when `CUSTOS_IDLE_LOCK_SECS` is not set.
pub const DEFAULT_IDLE_LOCK: Duration = Duration::from_secs(5 * 60);

/// How long a PIN dialog waits for the person before the operation fails with `pin_required`.
pub const DEFAULT_PROMPT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub vault_path: PathBuf,
    pub idle_timeout: Duration,
    /// `CUSTOS_TEST_KDF=1`: the create screen may make a vault with the insecure test KDF (E2E only).
    pub test_kdf_allowed: bool,
    /// `--demo` or `CUSTOS_DEMO=1`: custodians' keys are the software twins stored next to the vault
    /// (`<vault>.demo-keys/`), never USB or PC/SC devices. Every screen says so.
    pub demo: bool,
    /// How long a PIN dialog waits ([`DEFAULT_PROMPT_TIMEOUT`]).
    pub prompt_timeout: Duration,
}

impl Config {
    /// Reads the real process arguments and environment.
    pub fn from_process() -> Result<Config, AppError> {
        Config::resolve(
            std::env::args_os().skip(1),
            |name| std::env::var_os(name),
            || custos_core::Vault::default_path().map_err(AppError::from),
        )
    }

    /// Vault path: `--vault PATH` (or `--vault=PATH`) if given, else `CUSTOS_VAULT`, else the default.
    /// Demo keys: `--demo`, or `CUSTOS_DEMO=1`.
    pub fn resolve(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<OsString>,
        default_path: impl FnOnce() -> Result<PathBuf, AppError>,
    ) -> Result<Config, AppError> {
        let mut from_arg: Option<PathBuf> = None;
        let mut demo_arg = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if text == "--demo" {
                demo_arg = true;
            } else if text == "--vault" {
                match args.next() {
                    Some(path) if !path.is_empty() => from_arg = Some(PathBuf::from(path)),
                    _ => return Err(AppError::new("usage", "--vault needs a path")),
                }
            } else if let Some(path) = text.strip_prefix("--vault=") {
                if path.is_empty() {
                    return Err(AppError::new("usage", "--vault needs a path"));
                }
                from_arg = Some(PathBuf::from(path));
            }
        }
        let vault_path = match from_arg {
            Some(path) => path,
            None => match env("CUSTOS_VAULT").filter(|v| !v.is_empty()) {
                Some(path) => PathBuf::from(path),
                None => default_path()?,
            },
        };

        let idle_timeout = match env("CUSTOS_IDLE_LOCK_SECS") {
            None => DEFAULT_IDLE_LOCK,
            Some(raw) => match raw.to_string_lossy().trim().parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => {
                    return Err(AppError::new(
                        "usage",
                        format!(
                        "CUSTOS_IDLE_LOCK_SECS must be a whole number of seconds above 0, got {:?}",
                        raw.to_string_lossy()
                    ),
                    ))
                }
            },
        };

        let test_kdf_allowed = env("CUSTOS_TEST_KDF").is_some_and(|v| v == "1");
        let demo = demo_arg || env("CUSTOS_DEMO").is_some_and(|v| v == "1");

        Ok(Config {
            vault_path,
            idle_timeout,
            test_kdf_allowed,
            demo,
            prompt_timeout: DEFAULT_PROMPT_TIMEOUT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, AppError> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::resolve(
            args.iter().map(OsString::from),
            |name| env.get(name).cloned(),
            || Ok(PathBuf::from("/default/custos/vault.db")),
        )
    }

    #[test]
    fn argument_beats_environment_beats_default() {
        let c = resolve(&["--vault", "/a.db"], &[("CUSTOS_VAULT", "/b.db")]).unwrap();
        assert_eq!(c.vault_path, PathBuf::from("/a.db"));
        let c = resolve(&["--vault=/c.db"], &[("CUSTOS_VAULT", "/b.db")]).unwrap();
        assert_eq!(c.vault_path, PathBuf::from("/c.db"));
        let c = resolve(&[], &[("CUSTOS_VAULT", "/b.db")]).unwrap();
        assert_eq!(c.vault_path, PathBuf::from("/b.db"));
        let c = resolve(&[], &[]).unwrap();
        assert_eq!(c.vault_path, PathBuf::from("/default/custos/vault.db"));
    }

    #[test]
    fn missing_vault_argument_is_an_error() {
        assert_eq!(resolve(&["--vault"], &[]).unwrap_err().kind, "usage");
        assert_eq!(resolve(&["--vault="], &[]).unwrap_err().kind, "usage");
    }

    #[test]
    fn idle_lock_defaults_to_five_minutes_and_env_overrides() {
        assert_eq!(
            resolve(&[], &[]).unwrap().idle_timeout,
            Duration::from_secs(300)
        );
        let c = resolve(&[], &[("CUSTOS_IDLE_LOCK_SECS", "3")]).unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(3));
        assert_eq!(
            resolve(&[], &[("CUSTOS_IDLE_LOCK_SECS", "0")])
                .unwrap_err()
                .kind,
            "usage"
        );
        assert_eq!(
            resolve(&[], &[("CUSTOS_IDLE_LOCK_SECS", "soon")])
                .unwrap_err()
                .kind,
            "usage"
        );
    }

    #[test]
    fn demo_from_flag_or_environment() {
        assert!(!resolve(&[], &[]).unwrap().demo);
        assert!(resolve(&["--demo"], &[]).unwrap().demo);
        assert!(resolve(&["--vault", "/a.db", "--demo"], &[]).unwrap().demo);
        assert!(resolve(&[], &[("CUSTOS_DEMO", "1")]).unwrap().demo);
        assert!(!resolve(&[], &[("CUSTOS_DEMO", "yes")]).unwrap().demo);
        assert_eq!(
            resolve(&[], &[]).unwrap().prompt_timeout,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn test_kdf_only_with_exact_flag() {
        assert!(!resolve(&[], &[]).unwrap().test_kdf_allowed);
        assert!(
            !resolve(&[], &[("CUSTOS_TEST_KDF", "yes")])
                .unwrap()
                .test_kdf_allowed
        );
        assert!(
            resolve(&[], &[("CUSTOS_TEST_KDF", "1")])
                .unwrap()
                .test_kdf_allowed
        );
    }
}
