//! Herald's parsers of outside input, each the server's own source file, for the fuzz targets in
//! `fuzz_targets/`: the WebSocket frame decoder, the session cookie, the HTTP API's publish body and
//! the client-address rule (`X-Forwarded-For`), a message's Markdown, search's words; `ClientMsg` decoding and a
//! message's `@mentions` are `app::protocol`.

#[path = "../../server/src/transport/websocket/decode.rs"]
pub mod decode;

#[path = "../../server/src/session/cookie.rs"]
pub mod cookie;

#[path = "../../server/src/transport/api/publish.rs"]
pub mod publish;

#[path = "../../server/src/peer/forwarded.rs"]
pub mod forwarded;

#[path = "../../app/src/markdown.rs"]
pub mod markdown;

#[path = "../../server/src/search/words.rs"]
pub mod words;

pub use app::protocol;
