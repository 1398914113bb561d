//! What a request's `Accept-Encoding` takes: read the same way for the site files (`assets.rs`)
//! and the chat page (`pages.rs`). A leaf, so neither imports the other for it.

use axum::http::{HeaderMap, header};

/// Whether `Accept-Encoding` takes `encoding` (listed, or `*`, without `q=0`).
pub fn accepts(request: &HeaderMap, encoding: &str) -> bool {
    let mut named = None;
    let mut any = false;
    for item in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if name.eq_ignore_ascii_case(encoding) {
            named = Some(!refused);
        } else if name == "*" {
            any = !refused;
        }
    }
    named.unwrap_or(any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("header"),
            );
            h
        };
        assert!(accepts(&headers("gzip, deflate, br, zstd"), "br"));
        assert!(accepts(&headers("gzip;q=1.0, BR;q=0.5"), "br"));
        assert!(!accepts(&headers("gzip, br;q=0"), "br"));
        assert!(accepts(&headers("gzip, br;q=0"), "gzip"));
        assert!(accepts(&headers("*"), "br"));
        assert!(!accepts(&headers("*, br;q=0"), "br"));
        assert!(!accepts(&headers("identity"), "gzip"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
        // A prefix is not a name.
        assert!(!accepts(&headers("brotli, gzipx"), "br"));
        assert!(!accepts(&headers("gzipx"), "gzip"));
    }
}
