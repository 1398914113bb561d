//! The Markdown a message is written in: a small, safe subset of CommonMark — **bold**, *italic*,
//! ~~strikethrough~~, `inline code`, fenced code blocks, block quotes, bulleted and numbered lists,
//! `[text](https://…)` links and bare web addresses. Nothing else is markup: `<b>`, `&amp;`,
//! headings, images and raw HTML stay the text they are.
//!
//! [`parse`] turns a body into [`Event`]s (opening and closing tags, and text), the one structure
//! both ends render: [`to_html`] writes it for the server-rendered page, and the browser builds the
//! same elements from it (`components::body`), so hydration finds what it would have made. Text is
//! only ever text: the writer escapes it and the browser makes text nodes of it.
//!
//! Where the subset overlaps CommonMark it agrees with it (a differential test holds it to
//! `pulldown-cmark`), with a chat's differences: a single line break stays a line break (the page
//! shows paragraphs with `white-space: pre-wrap`); a quote or a list ends at the first line that
//! does not continue it (no "lazy" lines); link text is plain text.
//! Every pass is linear in the text, and nesting is bounded ([`MAX_DEPTH`]), so hostile text can
//! neither stall a reader's page nor exhaust its stack (fuzz target `markdown`).

/// How deep quotes and lists may nest; a deeper `>` or list marker is text.
pub const MAX_DEPTH: usize = 8;

/// An element a body may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tag {
    Paragraph,
    /// A fenced code block (`<pre><code>`): its text is verbatim.
    CodeBlock,
    Quote,
    /// A list: `Some(start)` numbered from `start`, `None` bulleted.
    List(Option<u32>),
    Item,
    Strong,
    Emphasis,
    Strike,
    Code,
    /// A link to an `http://` or `https://` address.
    Link(String),
}

/// One step of a parsed body: every `Start` is closed by an `End`, nested properly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Start(Tag),
    End,
    Text(String),
}

/// Parses a message body.
pub fn parse(body: &str) -> Vec<Event> {
    let lines: Vec<&str> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = Vec::new();
    blocks(&lines, 0, false, &mut out);
    out
}

/// Whether a body is long enough to be folded behind "Show more": more than 15 lines as a
/// narrow screen shows them (a line of more than 80 characters takes several).
pub fn is_long(body: &str) -> bool {
    body.split('\n')
        .map(|line| 1 + line.chars().count() / 80)
        .sum::<usize>()
        > 15
}

// ---------------------------------------------------------------------------------------------
// Blocks

fn blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Leading spaces, if at most three (four make no block of this subset).
fn indent(line: &str) -> Option<usize> {
    let n = line.len() - line.trim_start_matches(' ').len();
    (n <= 3).then_some(n)
}

/// An opening code fence: its character, length and indentation.
fn fence(line: &str) -> Option<(u8, usize, usize)> {
    let ind = indent(line)?;
    let rest = &line[ind..];
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = rest.len() - rest.trim_start_matches(ch as char).len();
    // A backtick fence's info string may not hold a backtick (it would be inline code).
    (len >= 3 && !(ch == b'`' && rest[len..].contains('`'))).then_some((ch, len, ind))
}

/// The text of a quote line after its `>` and one space, if it is one.
fn quote_line(line: &str) -> Option<&str> {
    let rest = line[indent(line)?..].strip_prefix('>')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// A list item's marker: whether it is numbered (and from what) or bulleted (and with which
/// character), and the width of the marker with its indentation and spaces: where the item's text
/// starts, and how far its continuation lines are indented.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Marker {
    kind: u8,
    start: Option<u32>,
    width: usize,
}

fn marker(line: &str) -> Option<Marker> {
    let ind = indent(line)?;
    let rest = &line[ind..];
    let bytes = rest.as_bytes();
    let (kind, start, len) = match bytes.first()? {
        b @ (b'-' | b'*' | b'+') => (*b, None, 1),
        b'0'..=b'9' => {
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let delim = *bytes.get(digits)?;
            if digits > 9 || (delim != b'.' && delim != b')') {
                return None;
            }
            (delim, Some(rest[..digits].parse().ok()?), digits + 1)
        }
        _ => return None,
    };
    let after = &rest[len..];
    let spaces = after.len() - after.trim_start_matches(' ').len();
    // An item needs a space after its marker and some text (an empty item is not drawn).
    if spaces == 0 || after.trim().is_empty() {
        return None;
    }
    // Five or more spaces would start indented code in CommonMark: the text starts after one.
    let spaces = if spaces > 4 { 1 } else { spaces };
    Some(Marker {
        kind,
        start,
        width: ind + len + spaces,
    })
}

/// The part of `line` after `width` columns of indentation, if it is indented that far.
fn dedent(line: &str, width: usize) -> Option<&str> {
    (line.len() - line.trim_start_matches(' ').len() >= width).then(|| &line[width..])
}

/// Whether a line ends a paragraph by starting a block of its own.
fn interrupts(line: &str, depth: usize) -> bool {
    fence(line).is_some()
        || (depth < MAX_DEPTH
            && (quote_line(line).is_some()
                // As in CommonMark, only a list starting at 1 interrupts a paragraph.
                || marker(line).is_some_and(|m| m.start.is_none_or(|s| s == 1))))
}

fn blocks(lines: &[&str], depth: usize, tight: bool, out: &mut Vec<Event>) {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if blank(line) {
            i += 1;
        } else if let Some((ch, len, ind)) = fence(line) {
            i += 1;
            let mut code = String::new();
            while i < lines.len() {
                let l = lines[i];
                i += 1;
                if let Some((c, n, _)) = fence(l)
                    && c == ch
                    && n >= len
                    && l.trim_start()
                        .trim_start_matches(ch as char)
                        .trim()
                        .is_empty()
                {
                    break;
                }
                // The fence's own indentation is taken off its lines, as far as they have it.
                let cut = (l.len() - l.trim_start_matches(' ').len()).min(ind);
                code.push_str(&l[cut..]);
                code.push('\n');
            }
            out.push(Event::Start(Tag::CodeBlock));
            if !code.is_empty() {
                out.push(Event::Text(code));
            }
            out.push(Event::End);
        } else if depth < MAX_DEPTH && quote_line(line).is_some() {
            let mut inner = Vec::new();
            while let Some(text) = lines.get(i).and_then(|l| quote_line(l)) {
                inner.push(text);
                i += 1;
            }
            out.push(Event::Start(Tag::Quote));
            blocks(&inner, depth + 1, false, out);
            out.push(Event::End);
        } else if depth < MAX_DEPTH
            && let Some(first) = marker(line)
        {
            // Items first: a blank line between items, or between blocks of one, makes the list
            // "loose" (its items' paragraphs are drawn as such), as in CommonMark.
            let mut items = Vec::new();
            let mut loose = false;
            let mut item = Some(first);
            while let Some(m) = item {
                let mut inner = vec![&lines[i][m.width..]];
                i += 1;
                // Continuation lines are indented to the item's text; blank lines stay inside it
                // when an indented line follows them.
                while i < lines.len() {
                    if let Some(text) = dedent(lines[i], m.width).filter(|t| !blank(t)) {
                        inner.push(text);
                        i += 1;
                    } else if blank(lines[i])
                        && lines[i..]
                            .iter()
                            .find(|l| !blank(l))
                            .is_some_and(|l| dedent(l, m.width).is_some())
                    {
                        inner.push("");
                        loose = true;
                        i += 1;
                    } else {
                        break;
                    }
                }
                items.push(inner);
                // The list goes on with the next item of the same kind, blank lines between.
                let next = lines[i..].iter().position(|l| !blank(l)).map(|n| i + n);
                item = next
                    .and_then(|n| marker(lines[n]).map(|m| (n, m)))
                    .filter(|(_, m)| m.kind == first.kind)
                    .map(|(n, m)| {
                        loose |= n > i;
                        i = n;
                        m
                    });
            }
            out.push(Event::Start(Tag::List(first.start)));
            for inner in items {
                out.push(Event::Start(Tag::Item));
                blocks(&inner, depth + 1, !loose, out);
                out.push(Event::End);
            }
            out.push(Event::End);
        } else {
            let mut text = String::new();
            while i < lines.len()
                && !blank(lines[i])
                && (text.is_empty() || !interrupts(lines[i], depth))
            {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(lines[i].trim());
                i += 1;
            }
            if !tight {
                out.push(Event::Start(Tag::Paragraph));
            }
            inlines(&text, out);
            if !tight {
                out.push(Event::End);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inlines

/// A run of `*`, `_` or `~~` that may open or close emphasis (CommonMark's delimiter runs).
struct Delim {
    ch: char,
    /// Characters of the run not yet used by a match: they show as text.
    left: usize,
    len: usize,
    can_open: bool,
    can_close: bool,
    /// Tags closed here (innermost first) and opened here (outermost first).
    closes: usize,
    opens: Vec<Tag>,
}

enum Piece {
    Text(String),
    Code(String),
    Link(String, String),
    Delim(usize),
}

/// CommonMark's punctuation (Unicode's punctuation and symbols), near enough: anything neither
/// a letter, a digit nor a space.
fn punct(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// Characters that end a sentence, a quote or emphasis rather than an address.
const TRAILING: &[char] = &[
    '.', ',', ';', ':', '!', '?', '\'', '"', '»', '”', '’', '*', '_', '~', '`',
];

/// The web address at the start of `rest`, if any (`before` is the character before it): at a
/// word's start, `http://` or `https://` and more, up to a space, without the punctuation that
/// follows it in a sentence; a closing bracket stays when the address opened one.
pub fn address(rest: &str, before: Option<char>) -> Option<&str> {
    if before.is_some_and(char::is_alphanumeric) {
        return None;
    }
    let scheme = if rest.starts_with("https://") {
        8
    } else if rest.starts_with("http://") {
        7
    } else {
        return None;
    };
    let end = rest
        .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        .unwrap_or(rest.len());
    let mut url = &rest[..end];
    while let Some(last) = url.chars().next_back() {
        let unbalanced = |open: char| url.matches(open).count() < url.matches(last).count();
        let drop = TRAILING.contains(&last)
            || (last == ')' && unbalanced('('))
            || (last == ']' && unbalanced('['));
        if !drop {
            break;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
    (url.len() > scheme).then_some(url)
}

/// A `[text](address)` link at the start of `rest`: its text, address and length.
fn link(rest: &str) -> Option<(&str, &str, usize)> {
    let close = rest.find(']')?;
    let text = &rest[1..close];
    if text.trim().is_empty() || text.contains('[') {
        return None;
    }
    let after = rest[close + 1..].strip_prefix('(')?;
    let end = after.find(')')?;
    let url = &after[..end];
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(|c: char| c.is_whitespace() || c.is_control() || "<>\"(`".contains(c));
    ok.then_some((text, url, close + 2 + end + 1))
}

fn inlines(text: &str, out: &mut Vec<Event>) {
    let mut pieces = Vec::new();
    let mut delims: Vec<Delim> = Vec::new();
    let mut plain = String::new();
    let flush = |plain: &mut String, pieces: &mut Vec<Piece>| {
        if !plain.is_empty() {
            pieces.push(Piece::Text(std::mem::take(plain)));
        }
    };
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let rest = &text[i..];
        let before = text[..i].chars().next_back();
        if c == '\\'
            && let Some(next) = rest[1..].chars().next().filter(char::is_ascii_punctuation)
        {
            plain.push(next);
            i += 2;
        } else if c == '`' {
            let n = rest.len() - rest.trim_start_matches('`').len();
            // The closing run is the next run of exactly as many backticks.
            let mut from = n;
            let mut found = None;
            while let Some(at) = rest[from..].find('`') {
                let start = from + at;
                let run = rest[start..].len() - rest[start..].trim_start_matches('`').len();
                if run == n {
                    found = Some(start);
                    break;
                }
                from = start + run;
            }
            if let Some(end) = found {
                let mut code = rest[n..end].replace('\n', " ");
                if code.len() > 2
                    && code.starts_with(' ')
                    && code.ends_with(' ')
                    && !code.trim().is_empty()
                {
                    code = code[1..code.len() - 1].to_owned();
                }
                flush(&mut plain, &mut pieces);
                pieces.push(Piece::Code(code));
                i += end + n;
            } else {
                plain.push_str(&rest[..n]);
                i += n;
            }
        } else if let Some((label, url, len)) = (c == '[').then(|| link(rest)).flatten() {
            flush(&mut plain, &mut pieces);
            pieces.push(Piece::Link(label.to_owned(), url.to_owned()));
            i += len;
        } else if let Some(url) = (c == 'h').then(|| address(rest, before)).flatten() {
            flush(&mut plain, &mut pieces);
            pieces.push(Piece::Link(url.to_owned(), url.to_owned()));
            i += url.len();
        } else if c == '*' || c == '_' || c == '~' {
            let len = rest.len() - rest.trim_start_matches(c).len();
            i += len;
            if c == '~' && len != 2 {
                plain.push_str(&rest[..len]);
                continue;
            }
            let after = text[i..].chars().next();
            let (b_space, a_space) = (
                before.is_none_or(char::is_whitespace),
                after.is_none_or(char::is_whitespace),
            );
            let (b_punct, a_punct) = (before.is_some_and(punct), after.is_some_and(punct));
            let left = !a_space && (!a_punct || b_space || b_punct);
            let right = !b_space && (!b_punct || a_space || a_punct);
            let (can_open, can_close) = match c {
                '_' => (left && (!right || b_punct), right && (!left || a_punct)),
                // `~~` opens before anything but a space (as GitHub's and pulldown-cmark's do).
                '~' => (!a_space, right),
                _ => (left, right),
            };
            flush(&mut plain, &mut pieces);
            pieces.push(Piece::Delim(delims.len()));
            delims.push(Delim {
                ch: c,
                left: len,
                len,
                can_open,
                can_close,
                closes: 0,
                opens: Vec::new(),
            });
        } else {
            plain.push(c);
            i += c.len_utf8();
        }
    }
    flush(&mut plain, &mut pieces);
    emphasis(&mut delims);
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push(Event::Text(text)),
            Piece::Code(code) => {
                out.extend([Event::Start(Tag::Code), Event::Text(code), Event::End]);
            }
            Piece::Link(label, url) => {
                out.extend([Event::Start(Tag::Link(url)), Event::Text(label), Event::End]);
            }
            Piece::Delim(d) => {
                let d = &mut delims[d];
                out.extend((0..d.closes).map(|_| Event::End));
                if d.left > 0 {
                    out.push(Event::Text(d.ch.to_string().repeat(d.left)));
                }
                out.extend(d.opens.drain(..).map(Event::Start));
            }
        }
    }
}

/// Matches openers with closers: CommonMark's "process emphasis", with a stack of the openers
/// still available (those between a match's ends leave it) and, per kind of closer, how far down
/// the stack a search already failed — so each run is looked at a bounded number of times.
fn emphasis(delims: &mut [Delim]) {
    let mut stack: Vec<usize> = Vec::new();
    // Per closer kind (character, whether it can open, length mod 3): the stack height below
    // which no opener for it is left.
    let mut bottom = [0usize; 18];
    for closer in 0..delims.len() {
        if delims[closer].can_close {
            let kind = |d: &Delim| {
                let c = match d.ch {
                    '*' => 0,
                    '_' => 1,
                    _ => 2,
                };
                c * 6 + usize::from(d.can_open) * 3 + d.len % 3
            };
            while delims[closer].left > 0 {
                let k = kind(&delims[closer]);
                let c = &delims[closer];
                let found = (bottom[k]..stack.len()).rev().find(|&s| {
                    let o = &delims[stack[s]];
                    o.ch == c.ch
                        && o.left > 0
                        && (c.ch != '~' || o.left == c.left)
                        // CommonMark's "rule of 3": `*a**b*` is not `<em>a</em><em>b</em>`.
                        && !((o.can_close || c.can_open)
                            && (o.len + c.len).is_multiple_of(3)
                            && !(o.len.is_multiple_of(3) && c.len.is_multiple_of(3)))
                });
                let Some(s) = found else {
                    bottom[k] = stack.len();
                    break;
                };
                let opener = stack[s];
                let used = if c.ch == '~' || (c.left >= 2 && delims[opener].left >= 2) {
                    2
                } else {
                    1
                };
                let tag = match (c.ch, used) {
                    ('~', _) => Tag::Strike,
                    (_, 2) => Tag::Strong,
                    _ => Tag::Emphasis,
                };
                let o = &mut delims[opener];
                o.left -= used;
                o.opens.insert(0, tag);
                // The openers between the two are text now.
                stack.truncate(if o.left > 0 { s + 1 } else { s });
                for b in &mut bottom {
                    *b = (*b).min(stack.len());
                }
                let c = &mut delims[closer];
                c.left -= used;
                c.closes += 1;
            }
        }
        let d = &delims[closer];
        if d.can_open && d.left > 0 {
            stack.push(closer);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// The element a tag is drawn as, and the attributes it carries.
pub fn element(tag: &Tag) -> (&'static str, Option<(&'static str, String)>) {
    match tag {
        Tag::Paragraph => ("p", None),
        Tag::CodeBlock => ("pre", None),
        Tag::Quote => ("blockquote", None),
        Tag::List(None) => ("ul", None),
        Tag::List(Some(start)) => ("ol", (*start != 1).then(|| ("start", start.to_string()))),
        Tag::Item => ("li", None),
        Tag::Strong => ("strong", None),
        Tag::Emphasis => ("em", None),
        Tag::Strike => ("del", None),
        Tag::Code => ("code", None),
        Tag::Link(url) => ("a", Some(("href", url.clone()))),
    }
}

/// What every link also carries: it opens in a new tab and tells the site nothing of the page.
pub const LINK_ATTRIBUTES: [(&str, &str); 2] = [
    ("target", "_blank"),
    ("rel", "noopener noreferrer nofollow"),
];

/// Writes `events` as HTML, every text escaped: what the browser builds from them.
pub fn to_html(events: &[Event], out: &mut String) {
    let mut open = Vec::new();
    for event in events {
        match event {
            Event::Start(tag) => {
                let (name, attr) = element(tag);
                out.push('<');
                out.push_str(name);
                if let Some((key, value)) = attr {
                    push_attr(out, key, &value);
                }
                if name == "a" {
                    for (key, value) in LINK_ATTRIBUTES {
                        push_attr(out, key, value);
                    }
                }
                out.push('>');
                open.push(name);
            }
            Event::End => {
                if let Some(name) = open.pop() {
                    out.push_str("</");
                    out.push_str(name);
                    out.push('>');
                }
            }
            Event::Text(text) => escape(text, out),
        }
    }
}

fn push_attr(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("=\"");
    escape(value, out);
    out.push('"');
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(body: &str) -> String {
        let mut out = String::new();
        to_html(&parse(body), &mut out);
        out
    }

    #[test]
    fn inline_formatting() {
        assert_eq!(html("plain"), "<p>plain</p>");
        assert_eq!(
            html("**bold** and *it* and _it_"),
            "<p><strong>bold</strong> and <em>it</em> and <em>it</em></p>"
        );
        assert_eq!(
            html("~~gone~~ `a *b*`"),
            "<p><del>gone</del> <code>a *b*</code></p>"
        );
        assert_eq!(html("***both***"), "<p><em><strong>both</strong></em></p>");
        assert_eq!(
            html("snake_case_name 2*3*4"),
            "<p>snake_case_name 2<em>3</em>4</p>"
        );
        assert_eq!(html("**unclosed *a"), "<p>**unclosed *a</p>");
        assert_eq!(html("\\*not\\* it"), "<p>*not* it</p>");
        assert_eq!(html("a ~b~ c"), "<p>a ~b~ c</p>");
    }

    #[test]
    fn text_is_never_markup() {
        assert_eq!(
            html("<script>alert(1)</script> & \"q\""),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</p>"
        );
        assert_eq!(
            html("[x](javascript:alert(1))"),
            "<p>[x](javascript:alert(1))</p>"
        );
        assert_eq!(
            html("[docs](https://x.org/\"a) javascript:alert(1)"),
            "<p>[docs](<a href=\"https://x.org/\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">https://x.org/</a>&quot;a) javascript:alert(1)</p>"
        );
    }

    #[test]
    fn links() {
        let a = |url: &str, text: &str| {
            format!(
                "<a href=\"{url}\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">{text}</a>"
            )
        };
        assert_eq!(
            html("see https://example.com/a_b_c, or [the docs](https://d.org/x)."),
            format!(
                "<p>see {}, or {}.</p>",
                a("https://example.com/a_b_c", "https://example.com/a_b_c"),
                a("https://d.org/x", "the docs")
            )
        );
        assert_eq!(
            html("**https://x.org** (https://en.wikipedia.org/wiki/Rust_(lang)) xhttps://no"),
            format!(
                "<p><strong>{}</strong> ({}) xhttps://no</p>",
                a("https://x.org", "https://x.org"),
                a(
                    "https://en.wikipedia.org/wiki/Rust_(lang)",
                    "https://en.wikipedia.org/wiki/Rust_(lang)"
                )
            )
        );
    }

    #[test]
    fn blocks() {
        assert_eq!(html("a\nb\n\nc"), "<p>a\nb</p><p>c</p>");
        assert_eq!(
            html("```rust\nfn main() {\n    *x*\n}\n```\nafter"),
            "<pre>fn main() {\n    *x*\n}\n</pre><p>after</p>"
        );
        assert_eq!(html("```\nunclosed"), "<pre>unclosed\n</pre>");
        assert_eq!(
            html("> quoted\n> **more**\nnot"),
            "<blockquote><p>quoted\n<strong>more</strong></p></blockquote><p>not</p>"
        );
        assert_eq!(
            html("- one\n- two\n  - nested\n\n3. three\n4. four"),
            "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul><ol start=\"3\"><li>three</li><li>four</li></ol>"
        );
        assert_eq!(html("text\n- item"), "<p>text</p><ul><li>item</li></ul>");
        assert_eq!(
            html("# not a heading\n<b>x</b>"),
            "<p># not a heading\n&lt;b&gt;x&lt;/b&gt;</p>"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = ">".repeat(10_000) + " x";
        let events = parse(&deep);
        let quotes = events
            .iter()
            .filter(|e| **e == Event::Start(Tag::Quote))
            .count();
        assert_eq!(quotes, MAX_DEPTH);
        let list = "- ".repeat(5_000) + "x";
        let items = parse(&list)
            .iter()
            .filter(|e| **e == Event::Start(Tag::Item))
            .count();
        assert_eq!(items, MAX_DEPTH);
    }

    #[test]
    fn long_bodies_fold() {
        assert!(!is_long("short"));
        assert!(!is_long(&"line\n".repeat(14)));
        assert!(is_long(&"line\n".repeat(40)));
        assert!(is_long(&"x".repeat(1_300)));
    }
}
