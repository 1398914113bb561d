//! `app::protocol` for the fuzz targets: the very file the app and the server compile.
#[path = "../../app/src/protocol.rs"]
pub mod protocol;
