// Runs once, as the page is parsed, before the wasm has arrived (seconds on a slow network): the page
// is already a chat. Rendered inline after the app by `shell` (app/src/lib.rs), with the page's nonce.
//
// - The conversation shows its newest messages, as it will once alive.
// - The message box takes typing. Enter (or Send) holds the message in `window.heraldEarly`; the
//   composer takes the held messages and the box's text over when it hydrates, sets the global to
//   null, and from then on this script does nothing (app/src/components/composer.rs).
(() => {
	for (const list of document.querySelectorAll('.messages-scroller')) {
		list.scrollTop = list.scrollHeight;
	}
	const box = document.getElementById('message-box');
	if (!box || !box.form) return;
	const send = box.form.querySelector('button[type="submit"]');
	const held = (window.heraldEarly = []);
	const early = () => window.heraldEarly === held;
	const hold = () => {
		if (box.value.trim() === '') return;
		held.push(box.value);
		box.value = '';
		box.placeholder = 'Sent as soon as the page is ready…';
		if (send) send.disabled = true;
	};
	box.disabled = false;
	box.placeholder = box.dataset.placeholder || '';
	if (document.activeElement === document.body) box.focus();
	box.addEventListener('input', () => {
		if (early() && send) send.disabled = box.value.trim() === '';
	});
	box.addEventListener('keydown', (ev) => {
		if (early() && ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
			ev.preventDefault();
			hold();
		}
	});
	box.form.addEventListener('submit', (ev) => {
		if (!early()) return;
		ev.preventDefault();
		hold();
	});
})();
