//! The chat page's building blocks. Each reads the page's [`ChatState`](crate::state::ChatState) from
//! context; none talks to the network itself.

mod composer;
mod message_list;
mod status;

pub use composer::Composer;
pub use message_list::MessageList;
pub use status::ConnectionStatus;
