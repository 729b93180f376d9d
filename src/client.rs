//! A blocking client of TestArena's REST API (DESIGN section 6) on `ureq`.
//!
//! Every answer of 400 or more becomes a [`ClientError`] carrying the API's
//! code and message; the JSON types are the domain crate's.

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use testarena_wire::api::{ErrorBody, ErrorCode};
use ureq::http::{Method, Request, Response};
use ureq::{Agent, Body};

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API refused, with its error body.
    #[error("{}", api_message(*.code, .message, .field.as_deref()))]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
        field: Option<String>,
        /// How long to wait before trying again (503 `unavailable`).
        retry_after: Option<Duration>,
    },
    /// An error status without TestArena's error body (a proxy's page, say).
    #[error("{url} answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// No answer: refused, unknown host, TLS, timeout...
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        #[source]
        source: ureq::Error,
    },
    /// An answer that is not what the API sends.
    #[error("unexpected answer from {url}: {detail}")]
    BadAnswer { url: String, detail: String },
}

fn api_message(code: ErrorCode, message: &str, field: Option<&str>) -> String {
    let code = serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"));
    match field {
        Some(field) => format!("{code} ({field}): {message}"),
        None => format!("{code}: {message}"),
    }
}

impl ClientError {
    /// The API's error code, when the API answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A hint for the user, printed after the error.
    pub fn hint(&self) -> Option<&'static str> {
        match self.code() {
            Some(ErrorCode::Unauthorized) => {
                Some("give a valid token with --token or TESTARENA_TOKEN, or run `testarena login`")
            }
            Some(ErrorCode::Forbidden) => Some("only the queue's owner or an admin may do that"),
            _ => match self {
                ClientError::Unreachable { .. } => {
                    Some("is the server running? set its address with --url or TESTARENA_URL")
                }
                _ => None,
            },
        }
    }
}

/// How requests prove who sends them.
#[derive(Clone)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(..)",
            Auth::Basic { .. } => "Basic(..)",
        })
    }
}

/// The API at one base URL, with one way to authenticate.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    auth: Auth,
    agent: Agent,
    stream_agent: Agent,
}

/// Room for the mirror fetch a submission may wait for (60 s on the server).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Reads tried again while the database stays busy.
const BUSY_RETRIES: u32 = 3;
/// A live stream gets a comment at least every 15 s.
const STREAM_IDLE: Duration = Duration::from_secs(45);

fn agent(global: Option<Duration>, per_read: Option<Duration>) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("testarena/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(global)
        .timeout_per_read(per_read)
        .build()
        .into()
}

impl Client {
    pub fn new(base: &str, auth: Auth) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            auth,
            agent: agent(Some(REQUEST_TIMEOUT), None),
            stream_agent: agent(None, Some(STREAM_IDLE)),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request. A read answered 503 `unavailable` (the database
    /// stayed busy) is tried again after its `Retry-After`, a few times:
    /// it changes nothing, so trying again is safe.
    fn send(
        &self,
        agent: &Agent,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Body>, ClientError> {
        let mut tries = 0;
        loop {
            match self.send_once(agent, method.clone(), path, body.clone()) {
                Err(ClientError::Api {
                    status: 503,
                    retry_after,
                    ..
                }) if method == Method::GET && tries < BUSY_RETRIES => {
                    tries += 1;
                    std::thread::sleep(retry_after.unwrap_or(Duration::from_secs(1)));
                }
                other => return other,
            }
        }
    }

    fn send_once(
        &self,
        agent: &Agent,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Body>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => req = req.header("Authorization", format!("Bearer {token}")),
            Auth::Basic { username, password } => {
                let pair = STANDARD.encode(format!("{username}:{password}"));
                req = req.header("Authorization", format!("Basic {pair}"));
            }
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req
            .body(body.unwrap_or_default())
            .map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                detail: format!("cannot build the request: {e}"),
            })?;
        let mut res = agent.run(req).map_err(|source| ClientError::Unreachable {
            url: self.base.clone(),
            reason: match &source {
                ureq::Error::Io(e) => e.to_string(),
                ureq::Error::HostNotFound => "host not found".into(),
                other => other.to_string(),
            },
            source,
        })?;
        let status = res.status().as_u16();
        if status < 400 {
            return Ok(res);
        }
        let retry_after = res
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.clamp(1, 10)));
        let text = res
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api {
                status,
                code: body.error.code,
                message: body.error.message,
                field: body.error.field,
                retry_after,
            },
            Err(_) => ClientError::Http {
                url,
                status,
                body: text.trim().chars().take(200).collect(),
            },
        })
    }

    fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        mut res: Response<Body>,
    ) -> Result<T, ClientError> {
        let bytes = read_all(&mut res, 64 << 20).map_err(|e| self.bad(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.bad(path, e))
    }

    fn bad(&self, path: &str, detail: impl std::fmt::Display) -> ClientError {
        ClientError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: detail.to_string(),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let res = self.send(&self.agent, Method::GET, path, None)?;
        self.json(path, res)
    }

    /// A GET whose answer is kept as it came (logs, JUnit XML).
    pub fn get_raw(&self, path: &str) -> Result<Response<Body>, ClientError> {
        self.send(&self.agent, Method::GET, path, None)
    }

    /// A GET that may stay open for as long as the server sends (SSE).
    pub fn get_stream(&self, path: &str) -> Result<Response<Body>, ClientError> {
        self.send(&self.stream_agent, Method::GET, path, None)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| self.bad(path, e))?;
        let res = self.send(&self.agent, Method::POST, path, body)?;
        self.json(path, res)
    }

    pub fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| self.bad(path, e))?;
        let res = self.send(&self.agent, Method::PATCH, path, Some(body))?;
        self.json(path, res)
    }

    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(&self.agent, Method::DELETE, path, None).map(drop)
    }

    /// Reads a whole answer as bytes, up to `limit`.
    pub fn bytes(
        &self,
        path: &str,
        res: &mut Response<Body>,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        read_all(res, limit).map_err(|e| self.bad(path, e))
    }
}

fn read_all(res: &mut Response<Body>, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    res.body_mut()
        .with_config()
        .limit(limit)
        .reader()
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a relative file path, keeping its `/`.
pub fn enc_path(path: &str) -> String {
    path.split('/').map(enc).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_ids_and_slashes() {
        assert_eq!(enc("20240101-120000-ab.c_d"), "20240101-120000-ab.c_d");
        assert_eq!(enc("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(enc_path("tasks/q.1/unit.log"), "tasks/q.1/unit.log");
    }

    #[test]
    fn api_errors_read_like_the_api() {
        let e = ClientError::Api {
            status: 422,
            code: ErrorCode::ValidationFailed,
            message: "branch \"nope\" does not exist in firmware".into(),
            field: Some("branch".into()),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "validation_failed (branch): branch \"nope\" does not exist in firmware"
        );
        let e = ClientError::Api {
            status: 401,
            code: ErrorCode::Unauthorized,
            message: "bad token".into(),
            field: None,
            retry_after: None,
        };
        assert_eq!(e.to_string(), "unauthorized: bad token");
        assert!(e.hint().is_some());
    }
}
