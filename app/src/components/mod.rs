//! The chat page's building blocks. Each reads the tab's [`Tab`](crate::state::Tab) and the open
//! [`Room`](crate::state::Room) from context; none talks to the network itself.

mod body;
mod composer;
mod message_list;
mod people;
mod rooms;
mod sent_at;
mod status;

pub use body::{MessageBody, mentions};
pub use composer::Composer;
pub use message_list::MessageList;
pub use people::{Members, TypingIndicator};
pub use rooms::RoomList;
pub use status::ConnectionStatus;
