//! Pages rendered on the server alone: the account pages (`accounts.rs`), search
//! (`search_page.rs`), mentions (`mentions.rs`) and a message's edit history (`edit_history.rs`).
//! They work before and without the chat's WebAssembly, cost it no byte, and share its stylesheet
//! (inline, under the page's nonce). Their one script, inline too, shows their times in the
//! reader's own zone ([`moment`]); without it they read in UTC, and say so.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use leptos::{prelude::*, tachys::view::RenderHtml};

use crate::{AppState, guard};

/// The pages' script: their times in the reader's zone, labelled as the chat labels its messages'.
const TIMES: &str = include_str!("plain_times.js");

/// When something was written, as these pages show it: labelled in UTC as the chat's page is before
/// its script runs ("08:45 UTC", "Yesterday 08:45 UTC", "4 Dec 08:45 UTC"), then in the reader's
/// own zone by [`TIMES`]; the moment itself in `datetime`.
pub fn moment(at_ms: u64) -> impl IntoView + use<> {
    use app::components::sent_at::{iso, sent_label};
    view! { <time datetime=iso(at_ms)>{sent_label(at_ms, false)}</time> }
}

/// A whole page: `main` (HTML made by `view!`, so every text in it is escaped) in a `<main>` of
/// `class`, titled `title`. Never cached: it says who is signed in, or holds a form's answer.
pub fn page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    class: &'static str,
    main: String,
) -> Response {
    let nonce = crate::ids::random_hex(16);
    let style = state
        .page_style
        .as_ref()
        .map(|style| view! { <style nonce=nonce.clone()>{style.0.to_string()}</style> });
    let head = view! {
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="color-scheme" content="light dark"/>
        <meta name="description" content="Herald: real-time chat in one binary."/>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
        <title>{title.to_owned()}</title>
        {style}
    }
    .to_html();
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head>{head}</head><body>\
         <main class=\"{class}\">{main}</main><script nonce=\"{nonce}\">{TIMES}</script></body></html>"
    );
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response();
    if let Ok(csp) = HeaderValue::from_str(&guard::page_csp(&nonce, None)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}
