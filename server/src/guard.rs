//! What every HTTP response is guarded by, whatever route it came from: the `Host` check against
//! DNS rebinding, and the protective response headers (Content-Security-Policy and friends).
//!
//! DNS rebinding: a page on `evil.example` has its name re-pointed at 127.0.0.1, so the browser sends
//! it to a Herald on loopback with `Host: evil.example` and `Origin: http://evil.example` — which look
//! like Herald's own origin. A request is served only when its `Host` is one Herald can be reached
//! as: an IP address (a rebinding needs a name), `localhost` or a name under it (RFC 6761: browsers
//! resolve those to loopback themselves), a name given with `--allowed-host`, or the host of an
//! `--allowed-origin`. Anything else gets 421 Misdirected Request, saying which flag allows it.
//! `/healthz`, `/readyz` and `/metrics` are exempt: probes and scrapers often ask by a container or
//! service name, and none of them shows anyone's messages (`/metrics` needs its token here anyway).

use std::{net::IpAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The policy of every response that does not set its own: nothing may load, nothing may frame it.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The names Herald answers to. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    /// `--allowed-host *`: any name (the operator opts out of the check, e.g. behind a proxy that
    /// checks it already).
    any: bool,
    /// Lowercase names without a trailing dot, each with the port it must be asked with, if one.
    names: Arc<[(String, Option<u16>)]>,
}

impl AllowedHosts {
    /// From `--allowed-host` entries (`name`, `name:port`, or `*`) and the `--allowed-origin` URLs.
    pub fn new(hosts: &[String], origins: &[String]) -> Self {
        let from_origins = origins.iter().filter_map(|origin| {
            let rest = origin.split_once("://").map_or(origin.as_str(), |(_, r)| r);
            rest.split('/').next()
        });
        let entries = hosts.iter().map(String::as_str).chain(from_origins);
        let mut any = false;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry == "*" {
                any = true;
            } else if let Some((name, port)) = split_host(entry) {
                names.push((name, port));
            }
        }
        Self {
            any,
            names: names.into(),
        }
    }

    /// Whether a request asking for `host` (the `Host` header's value) may be served.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if self.any || name.parse::<IpAddr>().is_ok() || is_localhost(&name) {
            return true;
        }
        self.names
            .iter()
            .any(|(allowed, want)| *allowed == name && want.is_none_or(|want| Some(want) == port))
    }
}

/// `name[:port]` or `[v6]:port` → (lowercase name without brackets or trailing dot, port). `None`
/// for anything that is not a host: empty, a bad port, characters no host name has.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok()?),
        None => None,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid.then_some((name, port))
}

fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// The host a request asks for: `Host`, or an HTTP/2 request's `:authority`.
pub fn requested_host(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

/// Middleware: refuses requests for a host Herald does not answer to.
pub async fn check_host(
    State(hosts): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    match requested_host(&request) {
        Some(host) if hosts.allows(host) => next.run(request).await,
        Some(host) => {
            tracing::info!(host, "refused a request for a host Herald does not serve");
            (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Herald does not answer to the host {host:?}. If that is this server's \
                     public name, start it with --allowed-host {host} (or HERALD_ALLOWED_HOSTS)."
                ),
            )
                .into_response()
        }
        None => (StatusCode::BAD_REQUEST, "a request must name its Host").into_response(),
    }
}

/// Middleware: the protective headers on every response. A page sets its own policy (with its
/// script's nonce, see `pages.rs`); everything else gets [`DEFAULT_CSP`].
pub async fn protective_headers(request: Request, next: Next) -> Response<Body> {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    set_if_absent(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: under it browsers send `Origin: null` with the page's own form posts, and
    // the name form refuses posts from elsewhere. Other sites learn nothing either way.
    set_if_absent(headers, header::REFERRER_POLICY, "same-origin");
    set_if_absent(headers, header::X_FRAME_OPTIONS, "DENY");
    set_if_absent(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set_if_absent(headers, header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
    response
}

fn set_if_absent(headers: &mut HeaderMap, name: HeaderName, value: &'static str) {
    headers
        .entry(name)
        .or_insert(HeaderValue::from_static(value));
}

/// The chat page's policy: scripts only from Herald (the hydration script by its `nonce`), the
/// wasm compiled from them, styles and images from Herald, connections back to Herald only (its
/// WebSocket and Server-Sent Events on `host`), forms posted only to Herald, framed by nobody.
pub fn page_csp(nonce: &str, host: Option<&str>) -> String {
    // `'self'` covers ws: and wss: of the same host in CSP 3; named too for browsers before it.
    let sockets = host
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-_[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; font-src 'self'; manifest-src 'self'; \
         connect-src 'self'{sockets}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_localhost_names_are_served_other_names_only_when_allowed() {
        let none = AllowedHosts::new(&[], &[]);
        for host in [
            "127.0.0.1:3000",
            "127.0.0.1",
            "[::1]:3000",
            "[::1]",
            "10.1.2.3:8080",
            "localhost:3000",
            "LOCALHOST",
            "localhost.",
            "app.localhost:3000",
        ] {
            assert!(none.allows(host), "{host}");
        }
        for host in [
            "rebind.evil.example:3000",
            "evil.example",
            "",
            ":3000",
            "localhost:99999",
            "local host",
            "[::1",
            "[::1]x",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
        ] {
            assert!(!none.allows(host), "{host}");
        }
        let some = AllowedHosts::new(
            &["Chat.Example".into(), "other.example:8443".into()],
            &["https://app.example".into()],
        );
        assert!(some.allows("chat.example"));
        assert!(some.allows("chat.example:3000"));
        assert!(some.allows("chat.example."));
        assert!(some.allows("other.example:8443"));
        assert!(!some.allows("other.example:3000"));
        assert!(some.allows("app.example"));
        assert!(!some.allows("evil.example"));
        assert!(!some.allows("sub.chat.example"));
        assert!(AllowedHosts::new(&["*".into()], &[]).allows("anything.example"));
    }

    #[test]
    fn the_page_policy_names_its_nonce_and_its_own_sockets() {
        let csp = page_csp("abc", Some("127.0.0.1:3000"));
        assert!(csp.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:3000 wss://127.0.0.1:3000;"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!page_csp("abc", Some("x\"; script-src *")).contains('*'));
    }
}
