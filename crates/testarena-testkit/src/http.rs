//! An HTTP/1.1 client of the API over loopback: keep-alive connections,
//! fixed credentials, every status handed back (a 4xx is an answer, not an
//! error) and no answer at all told apart as status 0.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::error::{Error, Result};

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How a request signs in.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    /// An `Authorization` header's whole value.
    Header(&'a str),
}

/// A raw `Authorization` value (`"Bearer …"`, `"Basic …"`).
impl<'a> From<&'a str> for Auth<'a> {
    fn from(value: &'a str) -> Self {
        Auth::Header(value)
    }
}

impl<'a> From<&'a String> for Auth<'a> {
    fn from(value: &'a String) -> Self {
        Auth::Header(value)
    }
}

impl Auth<'_> {
    /// The `Authorization` header's value.
    pub fn header(self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Header(value) => Some(value.to_owned()),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
            Auth::Basic(user, password) => {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {pair}"))
            }
        }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// 0 when no answer came (connection refused or reset).
    pub status: u16,
    pub retry_after: Option<String>,
    /// Every `Set-Cookie` header.
    pub set_cookie: Vec<String>,
    /// The body, decoded lossily.
    pub body: String,
    pub took: Duration,
}

impl Resp {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A client with fixed credentials. Clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

impl Client {
    /// `base` is `http://host:port`.
    pub fn new<'a>(base: &str, auth: impl Into<Auth<'a>>) -> Self {
        Self {
            agent: agent(),
            base: base.to_owned(),
            auth: auth.into().header(),
        }
    }

    /// A client that sends no credentials.
    pub fn anonymous(base: &str) -> Self {
        Self::new(base, Auth::None)
    }

    /// The same credentials over connections of its own.
    pub fn fresh(&self) -> Self {
        Self {
            agent: agent(),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `Authorization` header it sends.
    pub fn authorization(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request with this client's credentials (`auth` overrides them
    /// when given) and extra headers; no answer is status 0.
    pub fn send(
        &self,
        auth: Option<Auth<'_>>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let started = Instant::now();
        match self.try_send(auth, method, path, headers, body) {
            Ok(mut resp) => {
                resp.took = started.elapsed();
                resp
            }
            Err(_) => Resp {
                status: 0,
                retry_after: None,
                set_cookie: Vec::new(),
                body: String::new(),
                took: started.elapsed(),
            },
        }
    }

    /// [`Client::send`] that tells why no answer came.
    pub fn try_send(
        &self,
        auth: Option<Auth<'_>>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Resp> {
        let (status, bytes, retry_after, set_cookie) =
            self.exchange(auth, method, path, headers, body)?;
        Ok(Resp {
            status,
            retry_after,
            set_cookie,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            took: Duration::ZERO,
        })
    }

    /// A request with this client's credentials; no answer is status 0.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.send(None, method, path, &[], body)
    }

    /// The status and the raw body; an error when no answer came.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>)> {
        let (status, bytes, _, _) = self.exchange(None, method, path, &[], body)?;
        Ok((status, bytes))
    }

    #[expect(clippy::type_complexity, reason = "one private helper's tuple")]
    fn exchange(
        &self,
        auth: Option<Auth<'_>>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>, Option<String>, Vec<String>)> {
        let fail = |message: String| Error::Http {
            method: method.to_owned(),
            path: path.to_owned(),
            message,
        };
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        let authorization = match auth {
            Some(a) => a.header(),
            None => self.auth.clone(),
        };
        if let Some(value) = authorization {
            req = req.header("Authorization", value);
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(body.map(Value::to_string).unwrap_or_default().into_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let mut res = self.agent.run(req).map_err(|e| fail(e.to_string()))?;
        let header = |name: &str| -> Vec<String> {
            res.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect()
        };
        let retry_after = header("retry-after").into_iter().next();
        let set_cookie = header("set-cookie");
        let status = res.status().as_u16();
        let bytes = res
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| fail(format!("reading the body: {e}")))?;
        Ok((status, bytes, retry_after, set_cookie))
    }

    /// A GET whose body is read as it arrives (Server-Sent Events); an
    /// error unless the answer is 200.
    pub fn stream(&self, path: &str) -> Result<impl std::io::Read + use<>> {
        let fail = |message: String| Error::Http {
            method: "GET".into(),
            path: path.to_owned(),
            message,
        };
        let mut req = self.agent.get(self.url(path));
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let res = req.call().map_err(|e| fail(e.to_string()))?;
        if res.status() != 200 {
            return Err(fail(format!("status {}", res.status())));
        }
        Ok(res.into_body().into_reader())
    }

    /// GET that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.request("GET", path, None)?;
        if status != 200 {
            return Err(Error::Http {
                method: "GET".into(),
                path: path.to_owned(),
                message: format!("{status} {}", String::from_utf8_lossy(&body)),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Http {
            method: "GET".into(),
            path: path.to_owned(),
            message: format!("not JSON: {e}"),
        })
    }

    /// POST JSON; the status and the body as JSON (`Null` when it is not).
    pub fn post_json(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let (status, bytes) = self.request("POST", path, Some(body))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}
