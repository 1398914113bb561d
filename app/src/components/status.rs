//! The connection pill in the header: loading, connecting, connected, reconnecting in N s.

use leptos::prelude::*;

use crate::state::Tab;

#[component]
pub fn ConnectionStatus() -> impl IntoView {
    let connection = expect_context::<Tab>().connection;
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
