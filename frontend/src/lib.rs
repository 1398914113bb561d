//! The browser entry point: the JS glue calls `hydrate()` once the wasm is loaded, and the
//! server-rendered page becomes the live app.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
