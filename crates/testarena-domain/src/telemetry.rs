//! Tracing setup shared by the binaries (`testarena-app`, `testarena-worker`,
//! `testarena`).
//!
//! Logs go to stderr through `tracing_subscriber::fmt`, filtered by
//! `RUST_LOG` (`info` when it is unset). A bad `RUST_LOG` must not stop a
//! daemon from starting: it is reported once as a warning and the default
//! filter is used instead. Installing is idempotent, so tests and binaries can
//! call [`init`] freely.

use std::env::VarError;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset, empty or invalid.
const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber: stderr, filter from `RUST_LOG`, `info` by
/// default. Does nothing if a subscriber is already installed.
pub fn init() {
    init_with(DEFAULT_FILTER);
}

/// Like [`init`], with `default` (an `EnvFilter` directive string such as
/// `"info,testarena_worker=debug"`) used when `RUST_LOG` is unset or invalid.
/// An invalid `default` falls back to `info`.
pub fn init_with(default: &str) {
    let (filter, warning) = build_filter(std::env::var("RUST_LOG"), default);
    let installed = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init()
        .is_ok();
    // Only the call that installed the subscriber reports, so the warning
    // appears once however often `init` is called.
    if installed && let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
}

/// The filter to use given the value of `RUST_LOG`, and a warning to log
/// when that value had to be ignored.
fn build_filter(rust_log: Result<String, VarError>, default: &str) -> (EnvFilter, Option<String>) {
    match rust_log {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(e) => {
                let (filter, default_warning) = default_filter(default);
                let warning = format!("ignoring invalid RUST_LOG {value:?} ({e}); using {filter}");
                (filter, Some(join(warning, default_warning)))
            }
        },
        Ok(_) | Err(VarError::NotPresent) => default_filter(default),
        Err(VarError::NotUnicode(_)) => {
            let (filter, default_warning) = default_filter(default);
            let warning = format!("ignoring RUST_LOG, which is not valid UTF-8; using {filter}");
            (filter, Some(join(warning, default_warning)))
        }
    }
}

fn default_filter(default: &str) -> (EnvFilter, Option<String>) {
    match EnvFilter::try_new(default) {
        Ok(filter) => (filter, None),
        Err(e) => (
            EnvFilter::new(DEFAULT_FILTER),
            Some(format!(
                "ignoring invalid default log filter {default:?} ({e}); using {DEFAULT_FILTER}"
            )),
        ),
    }
}

fn join(first: String, second: Option<String>) -> String {
    match second {
        Some(second) => format!("{first}; {second}"),
        None => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_does_not_panic() {
        init();
        init();
        init_with("debug");
        tracing::info!("telemetry test");
    }

    #[test]
    fn unset_or_empty_rust_log_uses_the_default() {
        let (f, w) = build_filter(Err(VarError::NotPresent), "info");
        assert_eq!(f.to_string(), "info");
        assert!(w.is_none());
        let (f, w) = build_filter(Ok("  ".into()), "warn,testarena=debug");
        assert!(f.to_string().contains("testarena=debug"), "{f}");
        assert!(w.is_none());
    }

    #[test]
    fn valid_rust_log_is_used() {
        let (f, w) = build_filter(Ok("testarena_worker=trace".into()), "info");
        assert_eq!(f.to_string(), "testarena_worker=trace");
        assert!(w.is_none());
    }

    #[test]
    fn invalid_rust_log_warns_and_falls_back() {
        let (f, w) = build_filter(Ok("foo=notalevel".into()), "info");
        assert_eq!(f.to_string(), "info");
        let w = w.unwrap();
        assert!(w.contains("ignoring invalid RUST_LOG"), "{w}");
        assert!(w.contains("foo=notalevel"), "{w}");
    }

    #[test]
    fn non_unicode_rust_log_warns_and_falls_back() {
        let (f, w) = build_filter(Err(VarError::NotUnicode("\u{fffd}".into())), "info");
        assert_eq!(f.to_string(), "info");
        assert!(w.unwrap().contains("not valid UTF-8"));
    }

    #[test]
    fn invalid_default_falls_back_to_info() {
        let (f, w) = build_filter(Err(VarError::NotPresent), "x=nope");
        assert_eq!(f.to_string(), "info");
        assert!(w.unwrap().contains("invalid default"));
    }
}
