//! The connection pill in the header: loading, connecting, connected, reconnecting in N s — with
//! "Retry now" while it waits — or disconnected by the server, with "Reconnect".

use leptos::prelude::*;

use crate::state::{SocketState, Tab};

#[component]
pub fn ConnectionStatus() -> impl IntoView {
    let tab = expect_context::<Tab>();
    let connection = tab.connection;
    let waiting =
        move || matches!(connection.get(), SocketState::Reconnecting { in_secs } if in_secs > 0);
    let stopped = move || matches!(connection.get(), SocketState::Stopped(_));
    let retry = move |_| {
        if let Some(retry) = tab.retry_now.get_value() {
            retry();
        }
    };
    view! {
        <span class="status-box">
            <span
                class="status"
                data-testid="status"
                data-state=move || connection.get().name()
                role="status"
                aria-live="polite"
            >
                {move || connection.get().label()}
            </span>
            <Show when=move || waiting() || stopped()>
                <button type="button" class="retry" data-testid="retry" on:click=retry>
                    {move || if stopped() { "Reconnect" } else { "Retry now" }}
                </button>
            </Show>
        </span>
    }
}
