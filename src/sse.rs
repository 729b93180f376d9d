//! Server-Sent Events: a parser for the `text/event-stream` format, and a
//! follower of `GET /api/v1/queues/{id}/events` that reconnects when the
//! connection drops before `end` and never hands out a log byte twice.
//!
//! The stream is read on its own thread and handed over a channel, so the
//! caller can redraw a progress line while no event comes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use testarena_wire::api::{LogChunk, Queue};

use crate::client::{Client, ClientError, enc};

/// One event as sent: its name and its (joined) data lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub event: String,
    pub data: String,
}

/// Reads events from a stream; `None` at its end.
#[derive(Debug)]
pub struct Parser<R> {
    reader: BufReader<R>,
}

impl<R: Read> Parser<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader: BufReader::new(reader),
        }
    }

    pub fn next_event(&mut self) -> std::io::Result<Option<RawEvent>> {
        let mut event = String::new();
        let mut data: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if data.is_empty() && event.is_empty() {
                    continue;
                }
                return Ok(Some(RawEvent {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        std::mem::take(&mut event)
                    },
                    data: data.join("\n"),
                }));
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => value.clone_into(&mut event),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
    }
}

/// What a queue's stream tells.
#[derive(Debug, Clone)]
pub enum Event {
    Status(Box<Queue>),
    Log(LogChunk),
    /// The queue ended; `None` when it was deleted while followed.
    End(Option<Box<Queue>>),
}

/// Connection attempts in a row before giving up.
const RETRIES: u32 = 5;

/// Follows one queue's events on a thread; see [`Follower::recv`].
#[derive(Debug)]
pub struct Follower {
    rx: Receiver<Result<Event, ClientError>>,
}

impl Follower {
    /// Starts following queue `id`; with `path`, only that file's log.
    pub fn start(client: &Client, id: &str, path: Option<&str>) -> Self {
        let (tx, rx) = mpsc::channel();
        let client = client.clone();
        let id = id.to_owned();
        let path = path.map(str::to_owned);
        thread::spawn(move || {
            let result = follow(&client, &id, path.as_deref(), &mut |e| {
                tx.send(Ok(e)).is_ok()
            });
            if let Err(e) = result {
                let _ = tx.send(Err(e));
            }
        });
        Self { rx }
    }

    /// The next event, `Ok(None)` if none came within `timeout`.
    /// After `End` or an error, the stream is over.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::BadAnswer {
                url: String::new(),
                detail: "the event stream stopped without an end".into(),
            }),
        }
    }
}

/// Reads the stream until `end`, reconnecting after a drop; `emit` returns
/// false when nobody listens any more.
fn follow(
    client: &Client,
    id: &str,
    path: Option<&str>,
    emit: &mut dyn FnMut(Event) -> bool,
) -> Result<(), ClientError> {
    // Per file: the bytes already handed out.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut failures = 0;
    // A server that never answered is reported at once; one that did is
    // given a few tries to come back.
    let mut connected = false;
    loop {
        let mut url = format!("/api/v1/queues/{}/events", enc(id));
        if let Some(p) = path {
            let offset = seen.get(p).copied().unwrap_or(0);
            url.push_str(&format!("?path={}&offset={offset}", enc(p)));
        }
        let err = match client.get_stream(&url) {
            Ok(res) => {
                failures = 0;
                connected = true;
                let mut parser = Parser::new(res.into_body().into_reader());
                match read_events(&mut parser, &mut seen, emit) {
                    Ok(true) => return Ok(()),
                    Ok(false) => None,
                    Err(e) => Some(ClientError::BadAnswer {
                        url: format!("{}{url}", client.base()),
                        detail: e.to_string(),
                    }),
                }
            }
            // Refusals (404, 401...) will not change by trying again.
            Err(e @ (ClientError::Api { .. } | ClientError::Http { .. })) => return Err(e),
            Err(e) if !connected => return Err(e),
            Err(e) => Some(e),
        };
        failures += 1;
        if failures > RETRIES {
            return Err(err.unwrap_or_else(|| ClientError::BadAnswer {
                url: format!("{}{url}", client.base()),
                detail: "the event stream keeps closing before the end".into(),
            }));
        }
        thread::sleep(Duration::from_millis(250 << failures));
    }
}

/// Hands out one connection's events; true once `end` came (or nobody
/// listens), false when the stream closed first.
fn read_events<R: Read>(
    parser: &mut Parser<R>,
    seen: &mut HashMap<String, u64>,
    emit: &mut dyn FnMut(Event) -> bool,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    while let Some(raw) = parser.next_event()? {
        let event = match raw.event.as_str() {
            "status" => Event::Status(serde_json::from_str(&raw.data)?),
            "log" => {
                let chunk: LogChunk = serde_json::from_str(&raw.data)?;
                match fresh(seen, chunk) {
                    Some(chunk) => Event::Log(chunk),
                    None => continue,
                }
            }
            "end" => {
                let value: serde_json::Value = serde_json::from_str(&raw.data)?;
                let queue = if value["status"] == "deleted" {
                    None
                } else {
                    Some(serde_json::from_value(value)?)
                };
                emit(Event::End(queue));
                return Ok(true);
            }
            _ => continue,
        };
        if !emit(event) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The part of `chunk` not handed out yet (a reconnection replays files
/// from the start), recording what is handed out now.
fn fresh(seen: &mut HashMap<String, u64>, mut chunk: LogChunk) -> Option<LogChunk> {
    let done = seen.entry(chunk.path.clone()).or_insert(0);
    let end = chunk.offset + chunk.text.len() as u64;
    if end <= *done {
        return None;
    }
    if chunk.offset < *done {
        let skip = usize::try_from(*done - chunk.offset).unwrap_or(usize::MAX);
        let mut cut = skip.min(chunk.text.len());
        while !chunk.text.is_char_boundary(cut) {
            cut += 1;
        }
        chunk.text.drain(..cut);
        chunk.offset = *done;
    }
    *done = end;
    Some(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<RawEvent> {
        let mut p = Parser::new(text.as_bytes());
        std::iter::from_fn(|| p.next_event().unwrap()).collect()
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let got = events(
            ": keepalive\n\nevent: status\ndata: {\"a\":1}\n\nevent: log\r\ndata:x\r\ndata: y\r\n\r\ndata: plain\n\n",
        );
        assert_eq!(
            got,
            [
                RawEvent {
                    event: "status".into(),
                    data: "{\"a\":1}".into()
                },
                RawEvent {
                    event: "log".into(),
                    data: "x\ny".into()
                },
                RawEvent {
                    event: "message".into(),
                    data: "plain".into()
                },
            ]
        );
        assert!(
            events("event: cut").is_empty(),
            "an unfinished event is dropped"
        );
    }

    fn chunk(path: &str, offset: u64, text: &str) -> LogChunk {
        LogChunk {
            path: path.into(),
            offset,
            next_offset: offset + text.len() as u64,
            text: text.into(),
        }
    }

    #[test]
    fn replayed_log_bytes_are_dropped() {
        let mut seen = HashMap::new();
        assert!(fresh(&mut seen, chunk("a.log", 0, "one\ntwo\n")).is_some());
        assert!(fresh(&mut seen, chunk("a.log", 0, "one\n")).is_none());
        let partial = fresh(&mut seen, chunk("a.log", 4, "two\nthree\n")).unwrap();
        assert_eq!((partial.offset, partial.text.as_str()), (8, "three\n"));
        assert!(fresh(&mut seen, chunk("b.log", 0, "other\n")).is_some());
    }

    #[test]
    fn deleted_queues_end_without_a_queue() {
        let text = "event: end\ndata: {\"status\":\"deleted\"}\n\nevent: log\ndata: {}\n\n";
        let mut parser = Parser::new(text.as_bytes());
        let mut got = Vec::new();
        let ended = read_events(&mut parser, &mut HashMap::new(), &mut |e| {
            got.push(e);
            true
        })
        .unwrap();
        assert!(ended);
        assert!(matches!(got.as_slice(), [Event::End(None)]));
    }
}
