//! The connection pill in the header: loading, connecting, connected, reconnecting in N s.

use leptos::prelude::*;

use crate::state::ChatState;

#[component]
pub fn ConnectionStatus() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let connection = chat.connection;
    view! {
        <span
            class="status"
            data-testid="status"
            data-state=move || connection.get().name()
            role="status"
            aria-live="polite"
        >
            {move || connection.get().label()}
        </span>
    }
}
