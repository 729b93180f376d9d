//! Free loopback ports for the daemons a process starts.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

use crate::error::{Error, IoContext as _, Result};

/// Every port handed out by this process: the kernel may offer a port
/// again once its listener is closed, and two farms of one test binary
/// must never race for one.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that was free a moment ago (bound to port 0, then
/// released for a daemon to take) and that this process never handed out
/// before.
pub fn free_port() -> Result<u16> {
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").what(|| "binding 127.0.0.1:0".into())?;
        let port = listener
            .local_addr()
            .what(|| "reading a bound port".into())?
            .port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::Other(
        "no new free loopback port in 1000 tries".into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_the_same_port_twice() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            assert!(seen.insert(super::free_port().unwrap()));
        }
    }
}
