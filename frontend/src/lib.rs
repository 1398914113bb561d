//! The browser entry point: the JS glue calls `hydrate()` once the wasm is loaded, and the
//! server-rendered page becomes the live app.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // A panic's message goes to the console before the wasm stops (what `console_error_panic_hook`
    // did, without the JS stack it adds: 357 B of the page's wasm, brotli).
    std::panic::set_hook(Box::new(|info| {
        leptos::logging::error!("{info}");
    }));
    leptos::mount::hydrate_body(app::App);
}
