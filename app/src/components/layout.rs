//! How the conversation's lines sit around their content: which messages start a group (author
//! and time shown) and which continue one (the same author again within [`GROUP_GAP_MS`]: the body
//! alone, as Slack and Discord show a run of messages), and where the reader's days begin (a
//! divider). Later kinds of line follow the same rule: a line that is not a person's or a bot's
//! message ends the group. A reply starts a group (its quote and its author go together, as in
//! Discord); an edited or deleted message keeps its place in one.
//!
//! Pure, and computed the same on the server and in the browser: the page the server renders and the
//! page hydrated from it must not disagree. Days depend on the reader's time zone, which the server
//! does not know, so before hydration there are none on either side (`day_of` answers `None`), and
//! the dividers go in once the page is the reader's.

use crate::{protocol::MessageKind, state::Line};

/// How long after one message the same author's next still belongs to its group.
pub const GROUP_GAP_MS: u64 = 5 * 60 * 1000;

/// How one line sits: by default it starts a group, on the day of the line above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Row {
    /// It continues the group above it.
    pub continued: bool,
    /// A new day of the reader's begins here (days since 1970-01-01 on the reader's wall clock).
    pub day: Option<i64>,
}

/// How each of `lines` (oldest first) sits, in their order; `day_of(sent_at_ms)` is the reader's
/// day of a moment, or `None` while the reader's zone is unknown.
pub fn layout(lines: &[Line], day_of: impl Fn(u64) -> Option<i64>) -> Vec<Row> {
    let mut out = Vec::with_capacity(lines.len());
    let mut last_day = None;
    // The message above, while it can still be continued: who wrote it and when.
    let mut above: Option<(&MessageKind, &str, &str, u64)> = None;
    for line in lines {
        let Line::Message(shown) = line else {
            above = None;
            out.push(Row::default());
            continue;
        };
        let msg = &shown.msg;
        let day = day_of(msg.sent_at);
        let new_day = day.is_some() && day != last_day;
        last_day = day;
        let groups = msg.kind != MessageKind::Announcement;
        let same = above.is_some_and(|(kind, id, name, at)| {
            *kind == msg.kind
                && id == msg.author.id
                && name == msg.author.name
                && msg.sent_at >= at
                && msg.sent_at - at <= GROUP_GAP_MS
        });
        out.push(Row {
            continued: groups && same && !new_day && msg.reply_to.is_none(),
            day: day.filter(|_| new_day),
        });
        above = groups.then_some((&msg.kind, &msg.author.id, &msg.author.name, msg.sent_at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol::{ChatMessage, Identity},
        state::Shown,
    };

    const MIN: u64 = 60_000;
    const DAY: u64 = 24 * 60 * MIN;

    fn msg(seq: u64, who: &str, kind: MessageKind, at: u64) -> Line {
        Line::Message(Shown {
            epoch: "e".into(),
            msg: ChatMessage {
                room: "general".into(),
                seq,
                author: Identity {
                    id: format!("id-{who}"),
                    name: who.into(),
                },
                body: "hi".into(),
                sent_at: at,
                client_id: format!("c{seq}"),
                kind,
                ..Default::default()
            },
        })
    }

    /// The seqs of the lines that continue a group.
    fn continued(lines: &[Line], rows: &[Row]) -> Vec<u64> {
        lines
            .iter()
            .zip(rows)
            .filter(|(_, row)| row.continued)
            .filter_map(|(line, _)| match line {
                Line::Message(shown) => Some(shown.msg.seq),
                Line::Notice { .. } => None,
            })
            .collect()
    }

    /// The days that begin, by seq.
    fn days(lines: &[Line], rows: &[Row]) -> Vec<(u64, i64)> {
        lines
            .iter()
            .zip(rows)
            .filter_map(|(line, row)| match line {
                Line::Message(shown) => Some((shown.msg.seq, row.day?)),
                Line::Notice { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_run_by_one_author_within_five_minutes_is_one_group() {
        let t = 100 * DAY;
        let lines = [
            msg(1, "ann", MessageKind::User, t),
            msg(2, "ann", MessageKind::User, t + MIN),
            msg(3, "ann", MessageKind::User, t + MIN + GROUP_GAP_MS),
            msg(4, "ann", MessageKind::User, t + 2 * MIN + 2 * GROUP_GAP_MS), // too long after
            msg(5, "bob", MessageKind::User, t + 2 * MIN + 2 * GROUP_GAP_MS),
            msg(6, "bob", MessageKind::Bot, t + 2 * MIN + 2 * GROUP_GAP_MS), // a bot is not Bob
            msg(7, "bob", MessageKind::Bot, t + 3 * MIN + 2 * GROUP_GAP_MS),
            Line::Notice {
                id: 1,
                text: "Bob is now Rob".into(),
            },
            msg(8, "bob", MessageKind::Bot, t + 3 * MIN + 2 * GROUP_GAP_MS),
            msg(
                9,
                "ops",
                MessageKind::Announcement,
                t + 4 * MIN + 2 * GROUP_GAP_MS,
            ),
            msg(
                10,
                "ops",
                MessageKind::Announcement,
                t + 4 * MIN + 2 * GROUP_GAP_MS,
            ),
        ];
        let rows = layout(&lines, |_| None);
        assert_eq!(rows.len(), lines.len());
        assert_eq!(continued(&lines, &rows), [2, 3, 7]);
        // Without the reader's zone (the server's page, and the browser's until hydrated): no days.
        assert!(days(&lines, &rows).is_empty());
    }

    #[test]
    fn a_new_day_starts_a_divider_and_a_new_group() {
        let t = 100 * DAY + DAY - 2 * MIN; // two minutes to midnight
        let lines = [
            msg(1, "ann", MessageKind::User, t),
            msg(2, "ann", MessageKind::User, t + MIN),
            msg(3, "ann", MessageKind::User, t + 3 * MIN), // the next day
            msg(4, "ann", MessageKind::User, t + 4 * MIN),
        ];
        let rows = layout(&lines, |ms| Some((ms / DAY) as i64));
        assert_eq!(continued(&lines, &rows), [2, 4]);
        assert_eq!(days(&lines, &rows), [(1, 100), (3, 101)]);
        // The same lines before hydration group across midnight, and the server renders them so.
        assert_eq!(continued(&lines, &layout(&lines, |_| None)), [2, 3, 4]);
    }

    #[test]
    fn a_reply_starts_a_group_and_an_edited_or_deleted_message_keeps_its_place() {
        let t = 100 * DAY;
        let mut lines = vec![
            msg(1, "ann", MessageKind::User, t),
            msg(2, "ann", MessageKind::User, t + MIN),
            msg(3, "ann", MessageKind::User, t + 2 * MIN),
            msg(4, "ann", MessageKind::User, t + 3 * MIN),
        ];
        if let Line::Message(shown) = &mut lines[1] {
            shown.msg.edited = Some(t + 5 * MIN);
        }
        if let Line::Message(shown) = &mut lines[2] {
            shown.msg.reply_to = Some(Box::new(crate::protocol::Quote {
                seq: 1,
                ..Default::default()
            }));
        }
        if let Line::Message(shown) = &mut lines[3] {
            shown.msg.deleted = Some(Box::new(shown.msg.author.clone()));
        }
        let rows = layout(&lines, |_| None);
        assert_eq!(continued(&lines, &rows), [2, 4]);
    }
}
