//! The site's static files — JS glue, wasm, CSS, everything from `public/` — served with the right
//! content types and cache headers, brotli- or gzip-compressed (copies made at build time) when the
//! browser accepts it.
//!
//! With the `embed` feature (the release binary) the files are compiled in from `target/site`, so the
//! binary needs nothing beside it. Without it they are read from `--site-dir`, for development.

use std::borrow::Cow;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::AppState;

/// The page's script, wasm and stylesheet are named after their content ([`app::SiteFiles`]): a
/// browser may keep them for good, for a new build has new names.
const HASHED: &str = "public, max-age=31536000, immutable";
/// Other files under this folder (the build's manifest) keep their names from build to build, so
/// browsers must revalidate them (a cheap 304 thanks to the ETag).
const PKG_DIR: &str = "pkg";
/// Everything else (favicon, images) changes rarely: let browsers keep it for a day.
const STATIC_MAX_AGE: &str = "public, max-age=86400";

#[cfg(feature = "embed")]
#[derive(rust_embed::Embed)]
#[folder = "$CARGO_MANIFEST_DIR/../target/site"]
struct Site;

/// One file of the site, as stored.
struct Asset {
    bytes: Cow<'static, [u8]>,
    /// Strong validator: a hash of the content.
    etag: String,
}

/// Serves a site file, or renders the app's "not found" page for any other path.
pub async fn serve(State(state): State<AppState>, request: Request) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD)
        && let Some(response) = file_response(&state, request.uri().path(), request.headers()).await
    {
        return response;
    }
    crate::pages::render(State(state), request).await
}

async fn file_response(state: &AppState, path: &str, request: &HeaderMap) -> Option<Response> {
    let path = path.trim_start_matches('/');
    // Only plain relative paths: no `..`, no empty segments, no backslashes.
    if path.is_empty()
        || path
            .split('/')
            .any(|segment| segment.is_empty() || segment == ".." || segment.contains('\\'))
    {
        return None;
    }
    // The smallest copy the browser takes: brotli, then gzip, then the file itself.
    let mut found = None;
    for (encoding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
        if crate::accept::accepts(request, encoding)
            && let Some(asset) = load(state, &format!("{path}{suffix}")).await
        {
            found = Some((asset, Some(encoding)));
            break;
        }
    }
    let (asset, encoding) = match found {
        Some(found) => found,
        None => (load(state, path).await?, None),
    };

    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = match (mime.type_(), mime.subtype().as_str()) {
        (mime_guess::mime::TEXT, _) | (_, "javascript") => format!("{mime}; charset=utf-8"),
        _ => mime.to_string(),
    };
    let hashed = state.site_files.as_deref().is_some_and(|files| {
        [&files.js, &files.wasm, &files.css]
            .iter()
            .any(|f| *f == path)
    });
    let cache = if hashed {
        HASHED
    } else if path.starts_with(&format!("{PKG_DIR}/")) {
        "no-cache"
    } else {
        STATIC_MAX_AGE
    };
    let etag = format!(
        "\"{}{}\"",
        asset.etag,
        encoding.map_or(String::new(), |e| format!("-{e}"))
    );

    let mut headers = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, &content_type);
    set(header::CACHE_CONTROL, cache);
    set(header::ETAG, &etag);
    set(header::VARY, "Accept-Encoding");
    if let Some(encoding) = encoding {
        set(header::CONTENT_ENCODING, encoding);
    }

    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if not_modified {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Some((headers, Body::from(asset.bytes)).into_response())
}

#[cfg(feature = "embed")]
async fn load(_state: &AppState, path: &str) -> Option<Asset> {
    let file = Site::get(path)?;
    Some(Asset {
        etag: hex(&file.metadata.sha256_hash()[..16]),
        bytes: file.data,
    })
}

#[cfg(not(feature = "embed"))]
async fn load(state: &AppState, path: &str) -> Option<Asset> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let bytes = tokio::fs::read(state.site_dir.join(path)).await.ok()?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(Asset {
        etag: format!("{:016x}", hasher.finish()),
        bytes: Cow::Owned(bytes),
    })
}

#[cfg(feature = "embed")]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A site file that is UTF-8 text.
pub async fn text(state: &AppState, path: &str) -> Option<std::sync::Arc<str>> {
    let asset = load(state, path).await?;
    std::str::from_utf8(&asset.bytes).ok().map(Into::into)
}

/// The page's files, as the build named them in [`app::SITE_FILES`], once each is found in the site
/// this binary serves (else the page would never come alive: say so at start).
pub async fn site_files(state: &AppState) -> Result<app::SiteFiles, String> {
    let rebuild = "build it with `cargo xtask build`";
    let manifest = load(state, app::SITE_FILES)
        .await
        .ok_or_else(|| format!("the site has no {}: {rebuild}", app::SITE_FILES))?;
    let files: app::SiteFiles = serde_json::from_slice(&manifest.bytes).map_err(|e| {
        format!(
            "{} is not what the build writes ({e}): {rebuild}",
            app::SITE_FILES
        )
    })?;
    for file in [&files.js, &files.wasm, &files.css] {
        if load(state, file).await.is_none() {
            return Err(format!(
                "the site has no {file}: the page will not come alive ({rebuild})"
            ));
        }
    }
    Ok(files)
}
