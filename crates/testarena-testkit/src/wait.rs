//! Waiting for an event with a deadline, never a bare sleep: a condition is
//! polled until it holds, and a timeout names what was waited for.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Polls often at first (a daemon answers within milliseconds), then every
/// 25 ms, so a long wait costs little CPU.
fn pause(started: Instant) {
    let ms = if started.elapsed() < Duration::from_millis(200) {
        5
    } else {
        25
    };
    std::thread::sleep(Duration::from_millis(ms));
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with
/// "timed out after … waiting for `what`".
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    crate::error::or_panic(try_wait_for(timeout, what, || {
        Ok::<_, std::convert::Infallible>(f())
    }))
}

/// Polls `f` until it returns `Ok(Some)`; an `Err` counts as "not yet"
/// (a daemon still starting) and is quoted if the deadline passes.
pub fn try_wait_for<T, E: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<Option<T>, E>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        let last = match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => String::new(),
            Err(e) => format!(": {e}"),
        };
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
                last,
            });
        }
        pause(started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value() {
        let mut n = 0;
        let v = wait_for(Duration::from_secs(5), "three calls", || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, 3);
    }

    #[test]
    fn a_timeout_names_what_and_the_last_error() {
        let e = try_wait_for(Duration::from_millis(30), "the moon", || {
            Err::<Option<()>, _>("not risen")
        })
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("waiting for the moon: not risen"), "{text}");
    }
}
