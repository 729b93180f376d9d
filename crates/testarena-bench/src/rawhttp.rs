//! A minimal HTTP/1.1 keep-alive client for the load runs: one connection,
//! one prepared GET, answers read into a reused buffer. It spends far less
//! CPU per request than a general client, and the load generator shares
//! the machine's two cores with the server it measures.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use anyhow::{Context as _, bail};

/// One keep-alive connection that sends the same GET again and again.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `base` (`http://host:port`) for GET `path`.
    pub fn connect(base: &str, path: &str, authorization: Option<&str>) -> anyhow::Result<Self> {
        let host = base
            .strip_prefix("http://")
            .context("only http:// is supported")?;
        let stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
        if let Some(auth) = authorization {
            request.push_str(&format!("Authorization: {auth}\r\n"));
        }
        request.push_str("\r\n");
        Ok(Self {
            stream,
            request: request.into_bytes(),
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends the request and reads the whole answer; returns its status.
    pub fn get(&mut self) -> anyhow::Result<u16> {
        self.stream.write_all(&self.request)?;
        self.buf.clear();
        let (head, length) = loop {
            self.fill()?;
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = end + 4;
                break (head, content_length(&self.buf[..head])?);
            }
        };
        while self.buf.len() < head + length {
            self.fill()?;
        }
        let status = std::str::from_utf8(self.buf.get(9..12).context("short status line")?)?
            .parse()
            .context("bad status line")?;
        Ok(status)
    }

    fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> anyhow::Result<usize> {
    let text = std::str::from_utf8(head)?;
    for line in text.split("\r\n") {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            return Ok(value.trim().parse()?);
        }
    }
    bail!(
        "an answer without Content-Length: {}",
        text.lines().next().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: x\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(content_length(head).unwrap(), 12);
        assert_eq!(find(b"ab\r\n\r\ncd", b"\r\n\r\n"), Some(2));
        assert!(content_length(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
