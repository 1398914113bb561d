//! When a message was sent, as its reader reads it: the time alone for today's messages, with
//! "Yesterday" or the date for older ones, so a message from last week does not pass for this
//! morning's. In the reader's own time zone once the page is hydrated; in UTC (and saying so) in the
//! page the server renders, which cannot know the reader's zone. Also the day dividers' labels
//! ("Today", "Yesterday", "Friday 4 December"). (The full date and time on hovering a time is the
//! page's inline script's: app/src/early.js. The server's plain pages label their times by the same
//! rule in their own script, server/src/plain_times.js: change both together.)

const MS_PER_DAY: i64 = 86_400_000;

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// From Sunday: 1970-01-01 (day 0) was a Thursday.
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A moment on a wall clock of some time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wall {
    /// Days since 1970-01-01 in that zone: what decides "today" and "yesterday".
    day: i64,
    year: i64,
    /// 1–12.
    month: u32,
    /// 1–31.
    date: u32,
    hour: u32,
    minute: u32,
}

impl Wall {
    /// The wall clock `offset_ms` ahead of UTC at `ms` since the Unix epoch.
    fn at(ms: i64, offset_ms: i64) -> Self {
        let local = ms + offset_ms;
        let day = local.div_euclid(MS_PER_DAY);
        let minute_of_day = local.rem_euclid(MS_PER_DAY) / 60_000;
        let (year, month, date) = civil(day);
        Self {
            day,
            year,
            month,
            date,
            hour: (minute_of_day / 60) as u32,
            minute: (minute_of_day % 60) as u32,
        }
    }
}

/// Year, month and day of the `days`-th day since 1970-01-01 (proleptic Gregorian; the algorithm
/// from Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, date)
}

/// What the reader sees for a message sent at `sent`, read at `now` (both on the same wall clock),
/// with `zone` after it ("UTC" on the server's page, nothing in the reader's own zone).
fn label(sent: Wall, now: Wall, zone: &str) -> String {
    let time = format!("{:02}:{:02}", sent.hour, sent.minute);
    let month = MONTHS[(sent.month as usize - 1) % 12];
    let stamp = if sent.day == now.day {
        time
    } else if sent.day + 1 == now.day {
        format!("Yesterday {time}")
    } else if sent.year == now.year {
        format!("{} {month} {time}", sent.date)
    } else {
        format!("{} {month} {} {time}", sent.date, sent.year)
    };
    if zone.is_empty() {
        stamp
    } else {
        format!("{stamp} {zone}")
    }
}

/// The label of a message sent at `sent_at_ms`: in the reader's zone if `local` (and in the
/// browser), else in UTC.
pub fn sent_label(sent_at_ms: u64, local: bool) -> String {
    let sent = i64::try_from(sent_at_ms).unwrap_or(i64::MAX / 2);
    if local && cfg!(feature = "hydrate") {
        let now = now_ms();
        return label(
            Wall::at(sent, reader_offset(sent)),
            Wall::at(now, reader_offset(now)),
            "",
        );
    }
    label(Wall::at(sent, 0), Wall::at(now_ms(), 0), "UTC")
}

/// Now, in ms since the Unix epoch. The browser's clock in the browser: `std::time` is not there
/// (it panics on wasm32-unknown-unknown), and the page renders this label before it is hydrated.
pub(crate) fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    return js_sys::Date::now() as i64;
    #[cfg(not(feature = "hydrate"))]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The offset of the reader's wall clock from UTC at `ms` (0 on the server: UTC).
fn reader_offset(ms: i64) -> i64 {
    #[cfg(feature = "hydrate")]
    {
        // getTimezoneOffset is minutes *behind* UTC, and may differ between two dates (DST).
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        -(date.get_timezone_offset() as i64) * 60_000
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ms;
        0
    }
}

/// The reader's day of `sent_at_ms` (days since 1970-01-01 on their wall clock), once the page is
/// hydrated; `None` before, on the server's page as in the browser, so that both render the same
/// (the server does not know the reader's zone; day dividers come with hydration).
pub fn reader_day(sent_at_ms: u64, hydrated: bool) -> Option<i64> {
    if !hydrated || cfg!(not(feature = "hydrate")) {
        return None;
    }
    let ms = i64::try_from(sent_at_ms).unwrap_or(i64::MAX / 2);
    Some(Wall::at(ms, reader_offset(ms)).day)
}

/// The reader's today, as [`reader_day`] counts days.
pub fn reader_today() -> i64 {
    let now = now_ms();
    Wall::at(now, reader_offset(now)).day
}

/// A day divider's words: "Today", "Yesterday", "Friday 4 December", or with the year once it is
/// not this year's.
pub fn day_label(day: i64, today: i64) -> String {
    let weekday = WEEKDAYS[(day + 4).rem_euclid(7) as usize];
    let (year, month, date) = civil(day);
    let month = MONTH_NAMES[(month as usize - 1) % 12];
    if day == today {
        "Today".into()
    } else if day + 1 == today {
        "Yesterday".into()
    } else if year == civil(today).0 {
        format!("{weekday} {date} {month}")
    } else {
        format!("{weekday} {date} {month} {year}")
    }
}

/// The moment as an ISO 8601 UTC timestamp, for `<time datetime>` (the same on server and browser).
pub fn iso(sent_at_ms: u64) -> String {
    let w = Wall::at(i64::try_from(sent_at_ms).unwrap_or(0), 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}Z",
        w.year, w.month, w.date, w.hour, w.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24T10:30Z.
    const NOW: i64 = 1_795_516_200_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn days_since_1970_become_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(19_782), (2024, 2, 29));
        assert_eq!(civil(NOW / MS_PER_DAY), (2026, 11, 24));
        assert_eq!(iso(NOW as u64), "2026-11-24T10:30Z");
    }

    #[test]
    fn today_shows_the_time_and_older_messages_their_day() {
        let utc = |ms| label(Wall::at(ms, 0), Wall::at(NOW, 0), "UTC");
        assert_eq!(utc(NOW - HOUR), "09:30 UTC");
        assert_eq!(utc(NOW - 11 * HOUR), "Yesterday 23:30 UTC");
        assert_eq!(utc(NOW - 2 * 24 * HOUR), "22 Nov 10:30 UTC");
        assert_eq!(utc(NOW - 330 * 24 * HOUR), "29 Dec 2025 10:30 UTC");
    }

    #[test]
    fn day_dividers_say_today_yesterday_or_the_date() {
        let today = NOW / MS_PER_DAY; // Tuesday 24 November 2026
        assert_eq!(day_label(today, today), "Today");
        assert_eq!(day_label(today - 1, today), "Yesterday");
        assert_eq!(day_label(today - 4, today), "Friday 20 November");
        assert_eq!(day_label(today - 330, today), "Monday 29 December 2025");
        assert_eq!(day_label(0, today), "Thursday 1 January 1970");
    }

    #[test]
    fn the_day_is_the_readers_own() {
        // 23:30 UTC yesterday is 08:30 today in Tokyo (UTC+9), and 10:30 is 19:30.
        let tokyo = 9 * HOUR;
        let sent = NOW - 11 * HOUR;
        assert_eq!(
            label(Wall::at(sent, tokyo), Wall::at(NOW, tokyo), ""),
            "08:30"
        );
        // In New York (UTC-5) 09:30 UTC today is 04:30 the same day.
        let new_york = -5 * HOUR;
        assert_eq!(
            label(Wall::at(NOW - HOUR, new_york), Wall::at(NOW, new_york), ""),
            "04:30"
        );
    }
}
