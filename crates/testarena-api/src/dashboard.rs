//! The dashboard's files: the copy of `static/` built into the binary
//! (so `testarena-app` needs nothing beside it), or the folder named by
//! `server.static_dir`, for working on the dashboard without rebuilding.

use std::path::PathBuf;

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::Embed;

use crate::error::ApiError;

/// `static/`, embedded at build time (in debug builds too).
#[derive(Embed)]
#[folder = "../../static/"]
struct Bundled;

/// Serves the dashboard at `/`: from `dir` when given, else the bundled copy.
pub fn config(cfg: &mut web::ServiceConfig, dir: Option<PathBuf>) {
    match dir {
        Some(dir) => {
            cfg.service(
                actix_files::Files::new("/", dir)
                    .index_file("index.html")
                    .prefer_utf8(true),
            );
        }
        None => {
            cfg.service(web::resource("/{path:.*}").to(bundled));
        }
    }
}

/// One bundled file; a folder's path serves its `index.html`. Answers with
/// an `ETag` (the file's SHA-256) so browsers revalidate cheaply.
async fn bundled(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(HttpResponse::MethodNotAllowed().finish());
    }
    let mut path = path.into_inner();
    if path.is_empty() || path.ends_with('/') {
        path.push_str("index.html");
    }
    let file = Bundled::get(&path).ok_or_else(|| ApiError::NotFound(format!("no file /{path}")))?;
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    if fresh {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let mut content_type = file.metadata.mimetype().to_owned();
    if content_type.starts_with("text/") || content_type.ends_with("javascript") {
        content_type.push_str("; charset=utf-8");
    }
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(file.data.into_owned()))
}
