//! Authentication as extractors (DESIGN section 7).
//!
//! [`AuthUser`] accepts, in this order, `Authorization: Bearer <token>`,
//! `Authorization: Basic` (the older hub's clients) and the session cookie,
//! and answers 401 itself. [`Admin`] adds the admin check (403). A
//! cookie-authenticated POST, PATCH or DELETE must carry
//! `X-Requested-With: testarena` (CSRF defence). Handlers never look at
//! credentials.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine as _;
use testarena_domain::models::UserRow;
use testarena_domain::{secret, store};

use crate::credentials::BasicCache;
use crate::error::ApiError;
use crate::state::{AppState, blocking};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "testarena_session";
/// How long a dashboard session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The header a cookie-authenticated unsafe request must carry, and its value.
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_VALUE: &str = "testarena";

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Token,
    Basic,
    Cookie,
}

/// A signed-in, enabled user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: i32,
    pub username: String,
    pub is_admin: bool,
    pub method: AuthMethod,
}

impl AuthUser {
    fn from_row(user: &UserRow, method: AuthMethod) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            is_admin: user.is_admin,
            method,
        }
    }

    /// Owner-or-admin: who may abort, delete or rerun a queue.
    pub fn may_change(&self, owner: &str) -> Result<(), ApiError> {
        if self.is_admin || self.username == owner {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "only {owner} or an admin may do this"
            )))
        }
    }
}

/// An admin: users and other people's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub AuthUser);

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = BoxFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = BoxFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(&req).await?;
            if user.is_admin {
                Ok(Admin(user))
            } else {
                Err(ApiError::Forbidden("admins only".into()))
            }
        })
    }
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("app state missing"))
}

async fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let state = state(req)?;
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        return match scheme.to_ascii_lowercase().as_str() {
            "bearer" => bearer(&state, credentials).await,
            "basic" => basic(&state, client_ip(req), credentials).await,
            _ => Err(ApiError::Unauthorized(
                "unsupported Authorization scheme: use Bearer or Basic".into(),
            )),
        };
    }
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        let user = session(&state, cookie).await?;
        if !is_safe(req.method())
            && req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some(CSRF_VALUE)
        {
            return Err(ApiError::Forbidden(format!(
                "cookie-authenticated {} requests must send the header X-Requested-With: {CSRF_VALUE}",
                req.method()
            )));
        }
        return Ok(user);
    }
    Err(ApiError::Unauthorized(
        "sign in, or send an API token as Authorization: Bearer".into(),
    ))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn enabled(user: UserRow) -> Result<UserRow, ApiError> {
    if user.disabled {
        Err(ApiError::Unauthorized("this account is disabled".into()))
    } else {
        Ok(user)
    }
}

async fn bearer(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    if token.is_empty() {
        return Err(ApiError::Unauthorized("empty Bearer token".into()));
    }
    let hash = secret::hash_token(token);
    let user = state
        .db(move |conn| {
            let found = store::token_user(conn, &hash)?
                .ok_or_else(|| ApiError::Unauthorized("invalid or revoked token".into()))?;
            let (token, _) = &found;
            // Note use at most once a minute: a polling client must not
            // turn every read into a write.
            let now = store::now();
            if token
                .last_used_at
                .is_none_or(|t| now - t > chrono::Duration::seconds(60))
            {
                store::touch_token(conn, token.id, now)?;
            }
            Ok(found.1)
        })
        .await?;
    Ok(AuthUser::from_row(&enabled(user)?, AuthMethod::Token))
}

async fn basic(state: &AppState, ip: IpAddr, credentials: &str) -> Result<AuthUser, ApiError> {
    let malformed = || ApiError::Unauthorized("malformed Basic credentials".into());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
    let user = verify_credentials(state, ip, username, password).await?;
    Ok(AuthUser::from_row(&user, AuthMethod::Basic))
}

/// Checks a username and password: the rate limit first, then the cache of
/// recent successes, then argon2 on the blocking pool. Failures count
/// against the client's address.
pub async fn verify_credentials(
    state: &AppState,
    ip: IpAddr,
    username: &str,
    password: &str,
) -> Result<UserRow, ApiError> {
    state.login_limiter.check(ip)?;
    let username = username.to_owned();
    let lookup = username.clone();
    let user = state
        .db(move |conn| Ok(store::user_by_name(conn, &lookup)?))
        .await?;
    let key = BasicCache::key(&username, password);
    let verified = match &user {
        Some(user) if state.basic_cache.hit(&key, user) => true,
        Some(user) => {
            let (phc, password) = (user.password_hash.clone(), password.to_owned());
            blocking(move || Ok(secret::verify_password(&phc, &password))).await?
        }
        None => {
            // Spend the same time as for a real user, so timing does not
            // tell which usernames exist.
            let password = password.to_owned();
            blocking(move || {
                secret::dummy_verify(&password);
                Ok(false)
            })
            .await?
        }
    };
    match user {
        Some(user) if verified => {
            state.basic_cache.insert(key, &user);
            enabled(user)
        }
        _ => {
            state.login_limiter.failed(ip);
            Err(ApiError::Unauthorized("wrong username or password".into()))
        }
    }
}

/// The session cookie for a user: encrypted and authenticated with the
/// app's key. It holds the user id, the expiry and a fingerprint of the
/// password hash, so changing the password ends every session.
pub fn session_cookie(state: &AppState, user: &UserRow, secure: bool) -> Cookie<'static> {
    let expires = chrono::Utc::now().timestamp() + SESSION_TTL.as_secs() as i64;
    let value = format!(
        "{}:{}:{}",
        user.id,
        expires,
        fingerprint(&user.password_hash)
    );
    let mut jar = CookieJar::new();
    jar.private_mut(&state.cookie_key)
        .add(Cookie::new(SESSION_COOKIE, value));
    let mut cookie = jar
        .get(SESSION_COOKIE)
        .cloned()
        .unwrap_or_else(|| Cookie::new(SESSION_COOKIE, ""));
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(secure);
    cookie.set_path("/");
    cookie.set_max_age(actix_web::cookie::time::Duration::seconds(
        SESSION_TTL.as_secs() as i64,
    ));
    cookie
}

/// A cookie that removes the session cookie.
pub fn expired_session_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = Cookie::new(SESSION_COOKIE, "");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(secure);
    cookie.set_path("/");
    cookie.make_removal();
    cookie
}

fn fingerprint(password_hash: &str) -> String {
    secret::hash_token(password_hash)[..16].to_owned()
}

async fn session(state: &AppState, cookie: Cookie<'static>) -> Result<AuthUser, ApiError> {
    let invalid = || ApiError::Unauthorized("session expired: sign in again".into());
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let value = jar
        .private(&state.cookie_key)
        .get(SESSION_COOKIE)
        .ok_or_else(invalid)?;
    let mut parts = value.value().splitn(3, ':');
    let (Some(id), Some(expires), Some(print)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let id: i32 = id.parse().map_err(|_| invalid())?;
    let expires: i64 = expires.parse().map_err(|_| invalid())?;
    if expires < chrono::Utc::now().timestamp() {
        return Err(invalid());
    }
    let print = print.to_owned();
    let user = state
        .db(move |conn| Ok(store::user_by_id(conn, id)?))
        .await?
        .filter(|u| fingerprint(&u.password_hash) == print)
        .ok_or_else(invalid)?;
    Ok(AuthUser::from_row(&enabled(user)?, AuthMethod::Cookie))
}

/// Whether the request came over TLS (directly or through nginx), so the
/// session cookie gets `Secure`.
pub fn is_tls(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The client's address. `X-Forwarded-For` and `X-Real-IP` are trusted only
/// from a loopback peer (nginx on the same host); anyone else could forge them.
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if !peer.is_loopback() {
        return peer;
    }
    let forwarded = req
        .headers()
        .get("x-real-ip")
        .or_else(|| req.headers().get("x-forwarded-for"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next_back())
        .and_then(|v| v.trim().parse().ok());
    forwarded.unwrap_or(peer)
}
