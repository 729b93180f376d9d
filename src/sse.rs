//! Server-Sent Events: a parser for the `text/event-stream` format, and a
//! follower of `GET /api/v1/queues/{id}/events` that reconnects when the
//! connection drops before `end` and never hands out a log byte twice.
//!
//! What was handed out is counted in bytes of the file, from each event's
//! `offset` and `next_offset`, never from its text: the text is decoded
//! lossily, so a log that is not UTF-8 has more (or fewer) bytes of text
//! than of file. A follower of one file resumes at `next_offset`; one of
//! every file gets them replayed from the start and drops what it has.
//!
//! The stream is read on its own thread and handed over a channel, so the
//! caller can redraw a progress line while no event comes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use testarena_wire::api::{LogChunk, Queue};

use crate::client::{Client, ClientError, enc, enc_path};

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
    // Per file: the byte offset up to which it was handed out.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut failures = 0;
    // A server that never answered is reported at once; one that did is
    // given a few tries to come back.
    let mut connected = false;
    // The bytes of a replayed event that were only partly handed out.
    let mut reread = |file: &str, from: u64, to: u64| -> Result<Vec<u8>, ClientError> {
        let url = format!(
            "/api/v1/queues/{}/logs/{}?offset={from}&limit={}",
            enc(id),
            enc_path(file),
            to - from
        );
        let mut res = client.get_raw(&url)?;
        client.bytes(&url, &mut res, to - from)
    };
    loop {
        let mut url = format!("/api/v1/queues/{}/events", enc(id));
        if let Some(p) = path {
            // Resume where the last event ended.
            let offset = seen.get(p).copied().unwrap_or(0);
            url.push_str(&format!("?path={}&offset={offset}", enc(p)));
        }
        let err = match client.get_stream(&url) {
            Ok(res) => {
                failures = 0;
                connected = true;
                let mut parser = Parser::new(res.into_body().into_reader());
                match read_events(&mut parser, &mut seen, &mut reread, emit) {
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

/// Reads the bytes `from..to` of a file (for a replayed event that was
/// partly handed out before).
type Reread<'a> = dyn FnMut(&str, u64, u64) -> Result<Vec<u8>, ClientError> + 'a;

/// Hands out one connection's events; true once `end` came (or nobody
/// listens), false when the stream closed first.
fn read_events<R: Read>(
    parser: &mut Parser<R>,
    seen: &mut HashMap<String, u64>,
    reread: &mut Reread<'_>,
    emit: &mut dyn FnMut(Event) -> bool,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    while let Some(raw) = parser.next_event()? {
        let event = match raw.event.as_str() {
            "status" => Event::Status(serde_json::from_str(&raw.data)?),
            "log" => {
                let chunk: LogChunk = serde_json::from_str(&raw.data)?;
                match fresh(seen, chunk) {
                    Fresh::Seen => continue,
                    Fresh::New(chunk) => Event::Log(chunk),
                    Fresh::Partly { path, from, to } => {
                        let bytes = reread(&path, from, to)?;
                        let next_offset = from + bytes.len() as u64;
                        seen.insert(path.clone(), next_offset);
                        Event::Log(LogChunk {
                            path,
                            offset: from,
                            next_offset,
                            text: String::from_utf8_lossy(&bytes).into_owned(),
                        })
                    }
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

/// What is new in a `log` event.
#[derive(Debug, PartialEq, Eq)]
enum Fresh {
    /// Every byte of it was handed out already (a replay).
    Seen,
    /// Bytes not handed out yet: all of the event, or its tail when the
    /// tail could be cut from the text exactly (recorded as handed out).
    New(LogChunk),
    /// Its bytes `from..to` are new, but where they start in the text cannot
    /// be told (it was decoded lossily): read them from the file.
    Partly { path: String, from: u64, to: u64 },
}

/// The part of `chunk` not handed out yet, by byte offsets (a reconnection
/// replays files from the start), recording what is handed out now.
fn fresh(seen: &mut HashMap<String, u64>, mut chunk: LogChunk) -> Fresh {
    let done = seen.entry(chunk.path.clone()).or_insert(0);
    if chunk.next_offset <= *done {
        return Fresh::Seen;
    }
    if chunk.offset < *done {
        let skip = *done - chunk.offset;
        // The text is the bytes themselves only when nothing was replaced:
        // then the offsets of one are those of the other.
        let exact = !chunk.text.contains(char::REPLACEMENT_CHARACTER)
            && chunk.text.len() as u64 == chunk.next_offset - chunk.offset;
        let cut = usize::try_from(skip)
            .ok()
            .filter(|&c| exact && chunk.text.is_char_boundary(c));
        let Some(cut) = cut else {
            return Fresh::Partly {
                path: chunk.path,
                from: *done,
                to: chunk.next_offset,
            };
        };
        chunk.text.drain(..cut);
        chunk.offset = *done;
    }
    *done = chunk.next_offset;
    Fresh::New(chunk)
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

    /// An event as the server makes it: the bytes' offsets, their text lossily.
    fn lossy(path: &str, offset: u64, bytes: &[u8]) -> LogChunk {
        LogChunk {
            path: path.into(),
            offset,
            next_offset: offset + bytes.len() as u64,
            text: String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    fn text(f: Fresh) -> (u64, u64, String) {
        match f {
            Fresh::New(c) => (c.offset, c.next_offset, c.text),
            other => panic!("not new: {other:?}"),
        }
    }

    #[test]
    fn replayed_log_bytes_are_dropped() {
        let mut seen = HashMap::new();
        assert!(matches!(
            fresh(&mut seen, chunk("a.log", 0, "one\ntwo\n")),
            Fresh::New(_)
        ));
        assert_eq!(fresh(&mut seen, chunk("a.log", 0, "one\n")), Fresh::Seen);
        let partial = text(fresh(&mut seen, chunk("a.log", 4, "two\nthree\n")));
        assert_eq!(partial, (8, 14, "three\n".into()));
        assert!(matches!(
            fresh(&mut seen, chunk("b.log", 0, "other\n")),
            Fresh::New(_)
        ));
        assert_eq!(seen["a.log"], 14);
    }

    #[test]
    fn offsets_are_bytes_of_the_file_not_of_the_text() {
        // Three bytes that are not UTF-8 and a newline: nine bytes of text.
        let bad = [0xff, 0xfe, 0xc3, b'\n'];
        let first = lossy("a.log", 0, &bad);
        assert!(first.text.len() > 4, "the text is longer than its bytes");
        let mut seen = HashMap::new();
        assert_eq!(
            text(fresh(&mut seen, first.clone())),
            (0, 4, first.text.clone())
        );
        assert_eq!(
            seen["a.log"], 4,
            "resume at next_offset, not at the text's length"
        );
        // The next event starts where the last one ended: all of it is new.
        let next = text(fresh(&mut seen, lossy("a.log", 4, b"abc\n")));
        assert_eq!(next, (4, 8, "abc\n".into()));
        // A replay of the first event after a reconnection is dropped whole.
        assert_eq!(fresh(&mut seen, first), Fresh::Seen);
        // Multi-byte characters: fewer chars than bytes, cut exactly.
        let mut seen = HashMap::from([("u.log".to_owned(), 6)]);
        let replay = lossy("u.log", 0, "\u{e9}t\u{e9}\n\u{2713}\n".as_bytes());
        assert_eq!(text(fresh(&mut seen, replay)), (6, 10, "\u{2713}\n".into()));
    }

    #[test]
    fn a_lossy_replay_that_was_partly_handed_out_is_read_again() {
        // Handed out before the drop: the first line (4 bytes). The replay
        // joins it with the next line in one event whose text cannot be cut
        // by bytes: the new bytes are read from the file.
        let file = [0xff, 0xfe, 0xc3, b'\n', b'o', b'k', 0xff, b'\n'];
        let mut seen = HashMap::from([("a.log".to_owned(), 4)]);
        assert_eq!(
            fresh(&mut seen, lossy("a.log", 0, &file)),
            Fresh::Partly {
                path: "a.log".into(),
                from: 4,
                to: 8
            }
        );
        let stream = format!(
            "event: log\ndata: {}\n\nevent: end\ndata: {{\"status\":\"deleted\"}}\n\n",
            serde_json::to_string(&lossy("a.log", 0, &file)).unwrap()
        );
        let mut parser = Parser::new(stream.as_bytes());
        let mut asked = Vec::new();
        let mut reread = |path: &str, from: u64, to: u64| {
            asked.push((path.to_owned(), from, to));
            Ok(file[from as usize..to as usize].to_vec())
        };
        let mut got = Vec::new();
        read_events(&mut parser, &mut seen, &mut reread, &mut |e| {
            got.push(e);
            true
        })
        .unwrap();
        assert_eq!(asked, [("a.log".to_owned(), 4, 8)]);
        let Some(Event::Log(c)) = got.first() else {
            panic!("no log event: {got:?}")
        };
        assert_eq!(
            (c.offset, c.next_offset, c.text.as_str()),
            (4, 8, "ok\u{fffd}\n")
        );
        assert_eq!(seen["a.log"], 8);
    }

    #[test]
    fn deleted_queues_end_without_a_queue() {
        let text = "event: end\ndata: {\"status\":\"deleted\"}\n\nevent: log\ndata: {}\n\n";
        let mut parser = Parser::new(text.as_bytes());
        let mut got = Vec::new();
        let mut reread = |_: &str, _: u64, _: u64| -> Result<Vec<u8>, ClientError> {
            panic!("nothing to read again")
        };
        let ended = read_events(&mut parser, &mut HashMap::new(), &mut reread, &mut |e| {
            got.push(e);
            true
        })
        .unwrap();
        assert!(ended);
        assert!(matches!(got.as_slice(), [Event::End(None)]));
    }
}
