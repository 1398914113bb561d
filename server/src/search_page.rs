//! `GET /search`: the search page, rendered on the server alone (`plain.rs`). A person finds
//! messages by their words in the rooms and conversations they may read, newest first, a page at a
//! time, with the words found marked, each a link into its room at that message; narrowed to a
//! room, a person (`@handle`) and a span of dates. The index is `search.rs`'s; every result's room
//! goes through the door (`access::open`) before it is shown.

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState, access,
    accounts::Me,
    people::{Account, RoomKind},
    plain,
    search::{self, Found, PAGE},
    session::unavailable,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/search", get(search_page))
}

/// The form's fields, as the address carries them.
#[derive(Debug, Default, Deserialize)]
struct Asked {
    #[serde(default)]
    q: String,
    /// A room's name (as in its address), or empty for all.
    #[serde(default)]
    room: String,
    /// `@handle` or `handle`, or empty for anyone.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, or empty.
    #[serde(default)]
    after: String,
    #[serde(default)]
    before: String,
    /// The reader's zone, in minutes ahead of UTC, put in by the page's script: the dates are the
    /// reader's days. Empty (no script) or not a zone: UTC's days.
    #[serde(default)]
    tz: String,
    /// The next page: results older than this.
    below: Option<i64>,
}

/// Longest search, in characters: beyond it nothing more is looked for.
const MAX_QUERY_CHARS: usize = 200;

async fn search_page(
    State(state): State<AppState>,
    Me(me): Me,
    Query(asked): Query<Asked>,
) -> Response {
    let Some(index) = &state.search else {
        let main = view! {
            <h1>"Search"</h1>
            <p data-testid="search-unavailable">"Search is turned off on this server (--no-search)."</p>
            <p><a href="/">"Back to the chat"</a></p>
        }
        .to_html();
        return plain::page(
            &state,
            StatusCode::OK,
            "Search · Herald",
            "history-page",
            main,
        );
    };
    let account = &me.account;
    let people = &state.sessions.people;
    let words: String = asked.q.chars().take(MAX_QUERY_CHARS).collect();
    let mut problems = Vec::new();
    let zone = zone_ms(&asked.tz);
    let after_ms = date(&asked.after, "after", &mut problems).map(|day| in_zone(day, zone));
    let before_ms = date(&asked.before, "before", &mut problems)
        .map(|day| in_zone(day.saturating_add(24 * 3600 * 1000), zone));
    let author = match asked.from.trim().trim_start_matches('@') {
        "" => None,
        handle => match people.by_handle(&handle.to_ascii_lowercase()).await {
            Ok(Some(found)) => Some(found.id),
            Ok(None) => {
                problems.push(format!("Nobody here has the handle @{handle}."));
                None
            }
            Err(e) => return unavailable(&e),
        },
    };
    let room = Some(asked.room.trim().to_owned()).filter(|r| !r.is_empty());
    // The person's private rooms and conversations: the only ones not open that are looked in.
    let private: Vec<String> = match people.rooms_of(&account.id).await {
        Ok(rooms) => rooms
            .into_iter()
            .filter(|r| r.kind != RoomKind::Open)
            .map(|r| r.name)
            .collect(),
        Err(e) => return unavailable(&e),
    };
    let query = search::Query {
        words: words.clone(),
        room: room.clone(),
        author,
        after_ms,
        before_ms,
        below: asked.below,
    };
    let searched = !words.trim().is_empty() && problems.is_empty();
    let mut found = Vec::new();
    let mut more = None;
    if searched {
        let mut rows = match index.find(&query, private).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("search: {e}");
                return (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response();
            }
        };
        if rows.len() > PAGE {
            rows.truncate(PAGE);
            more = rows.last().map(|last| last.row);
        }
        found = match readable(&state, account, rows).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
    }
    let marked = search_terms(&words);
    let results = found
        .into_iter()
        .map(|(hit, title)| result_row(hit, title, &marked))
        .collect::<Vec<_>>();
    let none = (searched && results.is_empty())
        .then(|| view! { <p data-testid="no-results">"No messages match."</p> });
    // A new node of a cluster, or an index thrown away, reads the whole history first.
    let catching_up = (searched && !index.caught_up()).then(|| {
        view! {
            <p role="status" data-testid="search-catching-up">
                "Search is still reading the history: older messages may be missing from the results for a little while."
            </p>
        }
    });
    let next = more.map(|below| {
        let mut next = format!(
            "/search?q={}&room={}&from={}&after={}&before={}&tz={}",
            encode(&words),
            encode(room.as_deref().unwrap_or_default()),
            encode(&asked.from),
            encode(&asked.after),
            encode(&asked.before),
            encode(&asked.tz),
        );
        next.push_str(&format!("&below={below}"));
        view! { <p><a href=next data-testid="next-page">"Older results"</a></p> }
    });
    let problems = problems
        .into_iter()
        .map(|p| view! { <p class="error" role="alert">{p}</p> })
        .collect::<Vec<_>>();
    let narrowed = room.is_some()
        || !asked.from.is_empty()
        || !asked.after.is_empty()
        || !asked.before.is_empty();
    let main = view! {
        <h1>"Search"</h1>
        <form method="get" action="/search" class="search-form" role="search">
            <label for="q">"Words"</label>
            <input type="search" id="q" name="q" value=words.clone() maxlength="200" autofocus
                data-testid="search-words"/>
            <details open=narrowed>
                <summary>"Narrow it down"</summary>
                <label for="room">"In room"</label>
                <input type="text" id="room" name="room" value=room.clone().unwrap_or_default()
                    placeholder="any room" data-testid="search-room"/>
                <label for="from">"From"</label>
                <input type="text" id="from" name="from" value=asked.from.clone()
                    placeholder="@handle" data-testid="search-from"/>
                <label for="after">"On or after"</label>
                <input type="date" id="after" name="after" value=asked.after.clone() data-testid="search-after"/>
                <label for="before">"On or before"</label>
                <input type="date" id="before" name="before" value=asked.before.clone() data-testid="search-before"/>
                // Filled in by the page's script (server/src/plain_times.js).
                <input type="hidden" name="tz" value=asked.tz.clone()/>
            </details>
            <button type="submit" data-testid="search-go">"Search"</button>
        </form>
        {problems}
        {catching_up}
        {none}
        <ol class="search-results" data-testid="search-results">{results}</ol>
        {next}
        <p><a href="/">"Back to the chat"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Search · Herald",
        "history-page search-page",
        main,
    )
}

/// The results whose room `account` may open now, each with the room's name as they see it. A
/// room is asked once.
async fn readable(
    state: &AppState,
    account: &Account,
    rows: Vec<Found>,
) -> Result<Vec<(Found, String)>, Response> {
    let mut doors: HashMap<String, Option<String>> = HashMap::new();
    let mut shown = Vec::new();
    for hit in rows {
        if !doors.contains_key(&hit.room) {
            let title = match access::title_if_open(state, account, &hit.room).await {
                Ok(title) => title,
                Err(e) => {
                    tracing::warn!("search door: {e}");
                    return Err(
                        (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response()
                    );
                }
            };
            doors.insert(hit.room.clone(), title);
        }
        if let Some(Some(title)) = doors.get(&hit.room) {
            let title = title.clone();
            shown.push((hit, title));
        }
    }
    Ok(shown)
}

/// One result: the room, who, when, the words with what was looked for marked, and the link into
/// the room at that message.
fn result_row(hit: Found, title: String, marked: &[String]) -> impl IntoView + use<> {
    let link = format!("/r/{}?at={}", hit.room, hit.seq);
    let parts = mark(&hit.body, marked)
        .into_iter()
        .map(|(text, hit)| match hit {
            true => leptos::either::Either::Left(view! { <mark>{text}</mark> }),
            false => leptos::either::Either::Right(text),
        })
        .collect::<Vec<_>>();
    view! {
        <li class="search-result" data-testid="search-result" data-room=hit.room.clone() data-seq=hit.seq.to_string()>
            <div class="meta">
                <span class="room-title">{title}</span>
                <span class="author">{hit.name}</span>
                {plain::moment(hit.sent_at)}
            </div>
            <a href=link class="body">{parts}</a>
        </li>
    }
}

/// The terms to mark in the results: what was typed, split as the search splits it, lowercased.
fn search_terms(words: &str) -> Vec<String> {
    words
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(16)
        .collect()
}

/// `body` cut where any of `terms` is found (ignoring case), each piece with whether it is one.
fn mark(body: &str, terms: &[String]) -> Vec<(String, bool)> {
    let lower: Vec<(usize, char)> = body.char_indices().collect();
    let folded: Vec<char> = lower
        .iter()
        .map(|(_, c)| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let terms: Vec<Vec<char>> = terms.iter().map(|t| t.chars().collect()).collect();
    let mut pieces = Vec::new();
    let (mut at, mut from) = (0, 0);
    while at < folded.len() {
        let found = terms
            .iter()
            .filter(|t| !t.is_empty() && folded[at..].starts_with(t))
            .map(Vec::len)
            .max();
        match found {
            Some(len) => {
                let start = lower[at].0;
                let end = lower.get(at + len).map_or(body.len(), |(i, _)| *i);
                if from < start {
                    pieces.push((body[from..start].to_owned(), false));
                }
                pieces.push((body[start..end].to_owned(), true));
                from = end;
                at += len;
            }
            None => at += 1,
        }
    }
    if from < body.len() {
        pieces.push((body[from..].to_owned(), false));
    }
    pieces
}

/// `YYYY-MM-DD` as ms since the Unix epoch at its start (UTC); a problem noted if it is not one.
fn date(text: &str, field: &str, problems: &mut Vec<String>) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let day = parse_day(text);
    if day.is_none() {
        problems.push(format!("“{field}” is not a date like 2026-12-31."));
    }
    day
}

/// The longest a zone is ahead of or behind UTC (UTC+14, Kiribati; UTC−12), in minutes.
const FARTHEST_ZONE_MINUTES: i64 = 14 * 60;

/// A zone's offset from UTC in ms, from minutes ahead of UTC; 0 (UTC) for anything else.
fn zone_ms(minutes: &str) -> i64 {
    minutes
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|m| m.abs() <= FARTHEST_ZONE_MINUTES)
        .map_or(0, |m| m * 60_000)
}

/// The UTC moment `utc_midnight_ms` is on the wall clock of a zone `zone_ms` ahead of UTC.
fn in_zone(utc_midnight_ms: u64, zone_ms: i64) -> u64 {
    let at = i64::try_from(utc_midnight_ms).unwrap_or(i64::MAX);
    u64::try_from(at.saturating_sub(zone_ms)).unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, in ms (Howard Hinnant's `days_from_civil`).
fn parse_day(text: &str) -> Option<u64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days).ok()?.checked_mul(24 * 3600 * 1000)
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_since_1970_in_ms() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-12-06"), Some(1_796_515_200_000));
        assert_eq!(parse_day("2026-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
        assert_eq!(parse_day("99999999999-01-01"), None);
    }

    #[test]
    fn a_day_is_the_readers_own_when_the_page_says_their_zone() {
        let day = parse_day("2026-12-06").expect("a day");
        // Tokyo (UTC+9): its 6 December began at 15:00 UTC on the 5th.
        assert_eq!(in_zone(day, zone_ms("540")), day - 9 * 3_600_000);
        // New York in winter (UTC−5).
        assert_eq!(in_zone(day, zone_ms("-300")), day + 5 * 3_600_000);
        // No zone, or nothing a zone can be: UTC.
        for not_a_zone in ["", "Asia/Tokyo", "841", "-100000000000000000000", "1e3"] {
            assert_eq!(in_zone(day, zone_ms(not_a_zone)), day, "{not_a_zone}");
        }
        // The first day, east of UTC: never before 1970.
        assert_eq!(in_zone(0, zone_ms("840")), 0);
    }

    #[test]
    fn the_words_looked_for_are_marked_whatever_their_case() {
        assert_eq!(
            mark("Lunch at NOON, lunch", &["lunch".into()]),
            vec![
                ("Lunch".into(), true),
                (" at NOON, ".into(), false),
                ("lunch".into(), true)
            ]
        );
        assert_eq!(
            mark("明日東京で会議", &["東京".into()]),
            vec![
                ("明日".into(), false),
                ("東京".into(), true),
                ("で会議".into(), false)
            ]
        );
    }
}
