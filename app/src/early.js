// Runs once, as the page is parsed, before the wasm has arrived (seconds on a slow network): the page
// is already a chat. Rendered inline after the app by `shell` (app/src/lib.rs), with the page's nonce.
//
// - The conversation shows its newest messages, as it will once alive, with the reader's own
//   messages and the ones calling on them marked (the server renders every row alike for every
//   reader: server/src/page_cache/).
// - The message box takes typing. Enter (or Send) holds the message in `window.heraldEarly` and shows
//   it at once at the end of the conversation as a greyed "sending…" row, as an offline send is
//   shown; the composer takes the held messages and the box's text over when it hydrates, sets the
//   global to null, and from then on this script does nothing (app/src/components/composer.rs).
// - A time in the conversation shows its full date and time, in the reader's zone and language, on
//   hover or when its message has the focus (a `title`, set when first needed from `datetime`):
//   one listener for the page, before and after the wasm (in the wasm it cost more than it is worth).
// - A moderator's page shows "Delete" on every message, not only their own (asked of `/session`).
// - Beside names: accounts deactivated or deleted since (asked of `/session`; a guest's id says it is
//   one, and the stylesheet marks those); the messages of people the reader ignores are folded away,
//   one line each run, shown when chosen (a click, or Enter on the row).
// - "Report" on a message opens its page on the server.
// - A reaction says who gave it: its `title` on hover, and on a long press (a touch screen has no
//   hover) or a right click its names shown beside its count — one listener, as for the times.
// - Its rows are not the app's: `window.heraldBeforeHydrate`, called by the hydration script just
//   before `hydrate()` (app/src/lib.rs), takes them out, so hydration finds the page as the server
//   rendered it; the composer then shows the same messages as its own "sending…" rows.
(() => {
	// The server renders every row alike for every reader, so a room's page is rendered once per
	// change and cached (server/src/page_cache.rs). Here the reader's own messages and the ones that
	// call on them by name (or on the whole room) are marked, as the wasm marks the rows it renders (`mentions` in
	// app/src/components/body.rs: an "@", then the whole name, case aside, at word edges).
	const markReader = () => {
		let me;
		try {
			me = JSON.parse(document.querySelector('meta[name="herald-user"]').content);
		} catch {
			return;
		}
		if (!me || typeof me.id !== 'string' || typeof me.name !== 'string' || me.name === '') return;
		const name = me.name.toLowerCase().replace(/[\\^$.*+?()[\]{}|\/]/g, '\\$&');
		// The reader's name, or the whole room (`@room`, `ROOM_MENTION` in app/src/protocol.rs).
		const called = new RegExp(`(?<![\\p{Alphabetic}\\p{N}])@(${name}|room)(?![\\p{Alphabetic}\\p{N}])`, 'u');
		for (const row of document.querySelectorAll('ol.messages > li.message[data-author]')) {
			if (!row.classList.contains('bot') && row.dataset.author === me.id) {
				row.classList.add('mine');
			} else if (called.test(row.querySelector('.body')?.textContent.toLowerCase() ?? '')) {
				row.classList.add('mention');
			}
		}
	};
	const fullTime = (ev) => {
		const line = ev.target instanceof Element && ev.target.closest('li[data-key]');
		const time = line && line.querySelector('time[datetime]');
		if (!time || time.title) return;
		const when = new Date(time.getAttribute('datetime'));
		if (isNaN(when)) return;
		time.title = when.toLocaleString(undefined, {
			weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit',
		});
	};
	document.addEventListener('mouseover', fullTime);
	document.addEventListener('focusin', fullTime);
	document.addEventListener('contextmenu', (ev) => {
		const chip = ev.target instanceof Element && ev.target.closest('.reaction[title]');
		if (!chip) return;
		ev.preventDefault();
		chip.classList.toggle('names');
	});
	// "Report" on a message opens its own page on the server (server/src/moderation.rs): followed
	// here, for the page's whole life, so it costs the wasm nothing.
	document.addEventListener('click', (ev) => {
		const report = ev.target instanceof Element && ev.target.closest('[data-act="report"]');
		const row = report && report.closest('li[data-seq]');
		if (!row) return;
		const path = location.pathname;
		const room = path.startsWith('/r/') ? path.slice(3).split('/')[0] : 'general';
		location.assign(`/r/${room}/messages/${row.dataset.seq}`);
	});
	markReader();
	// Rules for the rows of some authors, by id (ids are word characters and dashes: nothing else is
	// put in a selector), in a stylesheet carrying this script's nonce (the page's CSP).
	const nonce = document.currentScript && document.currentScript.nonce;
	let ignored = new Set();
	const ids = (list) => (Array.isArray(list) ? list.filter((id) => typeof id === 'string' && /^[\w-]+$/.test(id)) : []);
	const marks = (session) => {
		const by = (id) => `li[data-author="${id}"]`;
		const rules = [];
		const gone = session.gone || {};
		for (const [list, word] of [[gone.deactivated, 'deactivated'], [gone.deleted, 'account deleted']]) {
			for (const id of ids(list)) {
				rules.push(`${by(id)} .author::after { content: " (${word})"; font-weight: 400; color: var(--muted); }`);
			}
		}
		ignored = new Set(ids(session.ignored));
		for (const id of ignored) {
			const row = `.messages ${by(id)}:not(.shown)`;
			rules.push(
				`${row} > * { display: none; }`,
				`${row}.continued { display: none; }`,
				`${row}::before { content: "A message from someone you ignore · show"; font-size: 12px; font-style: italic; color: var(--muted); cursor: pointer; }`,
			);
		}
		if (!rules.length) return;
		const style = document.createElement('style');
		if (nonce) style.nonce = nonce;
		style.textContent = rules.join('\n');
		document.head.appendChild(style);
	};
	// A message that calls on the reader by `@handle` (what the composer's completion writes, and
	// what the server counts as a mention: docs/READING.md) stands out as one calling on them by
	// name does — the rows the server rendered, and every row drawn since (watched for: the wasm
	// marks rows by name only, and the handle costs it nothing here).
	const markHandle = (session) => {
		const handle = typeof session.handle === 'string' && /^[a-z0-9._-]+$/.test(session.handle) ? session.handle : null;
		const me = session.you && session.you.id;
		if (!handle) return;
		// As the server reads a mention (`mentioned_handles`, app/src/protocol.rs): an "@" not after a
		// letter, digit or "@", then the handle, not followed by more of a handle's characters (full
		// stops that end a sentence aside).
		const called = new RegExp(`(?<![\\p{L}\\p{N}@])@${handle.replace(/\./g, '\\.')}(?!\\.*[a-z0-9_-])`, 'iu');
		const mark = (row) => {
			if (row.dataset.author === me || row.classList.contains('mention')) return;
			if (called.test(row.querySelector('.body')?.textContent ?? '')) row.classList.add('mention');
		};
		document.querySelectorAll('ol.messages > li.message[data-author]').forEach(mark);
		new MutationObserver((changes) => {
			for (const change of changes) {
				for (const node of change.addedNodes) {
					if (node instanceof HTMLElement && node.matches('ol.messages > li.message[data-author]')) mark(node);
				}
			}
		}).observe(document.body, { childList: true, subtree: true });
	};
	// A folded row chosen: that person's messages on this page show (new ones come folded).
	const unfold = (ev) => {
		if (ev.type === 'keydown' && ev.key !== 'Enter') return;
		const row = ev.target instanceof Element && ev.target.closest('.messages li[data-author]');
		if (!row || !ignored.has(row.dataset.author) || row.classList.contains('shown')) return;
		for (const mine of document.querySelectorAll(`.messages li[data-author="${row.dataset.author}"]`)) {
			mine.classList.add('shown');
		}
	};
	document.addEventListener('click', unfold);
	document.addEventListener('keydown', unfold);
	// A moderator is shown "Delete" on everyone's messages (the server lets a moderator's delete
	// remove any message): the cached page is the same for every reader, so ask who this one is.
	// Asked once for the page (the notifications' part below reads it too).
	window.heraldSessionAsked = document.querySelector('ol.messages')
		? fetch('/session', { credentials: 'same-origin' })
				.then((answer) => (answer.ok ? answer.json() : null))
				.catch(() => null)
		: Promise.resolve(null);
	window.heraldSessionAsked
		.then((session) => {
			if (!session) return;
			if (session.role === 'admin' || session.role === 'moderator') document.documentElement.classList.add('moderator');
			marks(session);
			markHandle(session);
		})
		.catch(() => {});
	for (const list of document.querySelectorAll('.messages-scroller')) {
		list.scrollTop = list.scrollHeight;
	}
	const box = document.getElementById('message-box');
	if (!box || !box.form) return;
	const send = box.form.querySelector('button[type="submit"]');
	const held = (window.heraldEarly = []);
	const early = () => window.heraldEarly === held;
	const list = document.querySelector('ol.messages');
	const scroller = document.querySelector('.messages-scroller');
	const empty = document.querySelector('.messages-scroller .empty');
	const rows = [];
	const show = (body) => {
		if (!list) return;
		const row = document.createElement('li');
		row.className = 'message mine pending';
		row.dataset.testid = 'pending';
		row.dataset.early = '';
		const meta = row.appendChild(document.createElement('div'));
		meta.className = 'meta';
		const sending = meta.appendChild(document.createElement('span'));
		sending.className = 'sending';
		sending.textContent = 'sending…';
		const text = row.appendChild(document.createElement('p'));
		text.className = 'body';
		text.textContent = body; // Text, never markup.
		list.appendChild(row);
		rows.push(row);
		if (empty) empty.hidden = true;
		if (scroller) scroller.scrollTop = scroller.scrollHeight;
	};
	window.heraldBeforeHydrate = () => {
		for (const row of rows) row.remove();
		if (empty) empty.hidden = false;
	};
	const hold = () => {
		if (box.value.trim() === '') return;
		held.push(box.value);
		show(box.value);
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

// "@" in the message box completes the people who may be mentioned in the room (docs/READING.md,
// "Mentions"): a list above the box of those whose handle or name begins with what follows the
// "@" (asked of the server, `GET /r/{room}/people`, which answers only through the room's door);
// arrows move, Enter or Tab puts `@handle ` in, Escape closes, and a click chooses. For the page's
// whole life, before and after the wasm (it costs the wasm nothing); listened for on the document,
// as the box is drawn again when another room is opened.
(() => {
	let open = null; // { box, list, start, options, at }
	let asking = 0;
	const room = () => {
		const path = location.pathname;
		return path.startsWith('/r/') ? decodeURIComponent(path.slice(3).split('/')[0]) : 'general';
	};
	// The "@word" the caret is at the end of, if any: where its "@" is, and the word.
	const typed = (box) => {
		const before = box.value.slice(0, box.selectionStart);
		const found = /(?:^|[^\p{L}\p{N}_@.])@([\p{L}\p{N}._-]{0,32})$/u.exec(before);
		return found ? { start: before.length - found[1].length - 1, word: found[1] } : null;
	};
	const close = () => {
		if (!open) return;
		open.list.remove();
		open.box.removeAttribute('aria-activedescendant');
		open.box.setAttribute('aria-expanded', 'false');
		open = null;
	};
	const mark = () => {
		open.list.querySelectorAll('li').forEach((item, i) => item.setAttribute('aria-selected', String(i === open.at)));
		open.box.setAttribute('aria-activedescendant', `mention-option-${open.at}`);
	};
	const choose = (at) => {
		const { box, start } = open;
		const text = `@${open.options[at].handle} `;
		const end = box.selectionStart;
		box.value = box.value.slice(0, start) + text + box.value.slice(end);
		box.setSelectionRange(start + text.length, start + text.length);
		close();
		// The composer keeps what is typed from this event, as from a keystroke.
		box.dispatchEvent(new Event('input', { bubbles: true }));
	};
	const show = (box, start, options) => {
		close();
		const list = document.createElement('ul');
		list.id = 'mention-options';
		list.className = 'mention-options';
		list.setAttribute('role', 'listbox');
		list.setAttribute('aria-label', 'People to mention');
		list.dataset.testid = 'mention-options';
		options.forEach((person, i) => {
			const item = list.appendChild(document.createElement('li'));
			item.id = `mention-option-${i}`;
			item.setAttribute('role', 'option');
			item.dataset.testid = 'mention-option';
			const handle = item.appendChild(document.createElement('b'));
			handle.textContent = `@${person.handle}`; // Text, never markup.
			const name = item.appendChild(document.createElement('span'));
			name.textContent = person.name;
			// Chosen on mousedown, before the box would lose the focus.
			item.addEventListener('mousedown', (ev) => {
				ev.preventDefault();
				choose(i);
			});
		});
		box.form.appendChild(list);
		box.setAttribute('aria-controls', list.id);
		box.setAttribute('aria-expanded', 'true');
		open = { box, list, start, options, at: 0 };
		mark();
	};
	document.addEventListener('input', (ev) => {
		const box = ev.target;
		if (!(box instanceof HTMLTextAreaElement) || box.id !== 'message-box' || !box.form) return;
		const at = typed(box);
		const ask = ++asking;
		if (!at) {
			close();
			return;
		}
		fetch(`/r/${encodeURIComponent(room())}/people?q=${encodeURIComponent(at.word)}`, { credentials: 'same-origin' })
			.then((answer) => (answer.ok ? answer.json() : []))
			.then((options) => {
				// Only the answer to the newest keystroke is shown.
				if (ask !== asking) return;
				const people = Array.isArray(options)
					? options.filter((p) => p && typeof p.handle === 'string' && typeof p.name === 'string')
					: [];
				if (people.length && document.activeElement === box) show(box, at.start, people);
				else close();
			})
			.catch(() => {});
	});
	// Before the composer's own keys (capture, on the window): while the list is open, these are the
	// list's.
	window.addEventListener(
		'keydown',
		(ev) => {
			if (!open || ev.target !== open.box || ev.isComposing) return;
			const count = open.options.length;
			if (ev.key === 'ArrowDown') open.at = (open.at + 1) % count;
			else if (ev.key === 'ArrowUp') open.at = (open.at + count - 1) % count;
			else if (ev.key === 'Enter' || ev.key === 'Tab') {
				choose(open.at);
			} else if (ev.key === 'Escape') close();
			else return;
			if (open) mark();
			ev.preventDefault();
			ev.stopImmediatePropagation();
		},
		true,
	);
	document.addEventListener('focusout', (ev) => {
		if (open && ev.target === open.box) close();
	});
})();

// Notifications (docs/NOTIFICATIONS.md). The server decides who is told of a new message (a
// mention, a direct message, or any message of a room someone chose so) and sends each of their
// connections a `notify` frame. Here, before the wasm opens its socket, the page's WebSocket is
// wrapped so that this script reads those frames first (the wasm never sees them) and shows one as
// a notification while the tab is hidden; a `read` frame (this person read on some device) closes
// the notifications of what was read, the service worker's too. Once the person allows
// notifications, this browser subscribes to Web Push (`/sw.js`) so it is told while no tab is open.
(() => {
	const Native = window.WebSocket;
	if (typeof Native !== 'function' || !document.querySelector('meta[name="herald-user"]')) return;
	const supported = 'Notification' in window;
	const open = new Map(); // room → the notifications shown for it here, with their seq
	const sameTag = (room, seq) =>
		navigator.serviceWorker?.getRegistration().then((registration) =>
			registration?.getNotifications({ tag: room }).then((shown) => {
				for (const n of shown) if (!(n.data?.seq > seq)) n.close();
			}),
		);
	const readTo = (room, seq) => {
		const shown = open.get(room) || [];
		open.set(room, shown.filter((one) => one.seq > seq || (one.n.close(), false)));
		sameTag(room, seq)?.catch(() => {});
	};
	const show = (notice) => {
		if (document.visibilityState !== 'hidden' || !supported || Notification.permission !== 'granted') return;
		if (!notice || typeof notice.title !== 'string' || typeof notice.room !== 'string') return;
		const n = new Notification(notice.title, {
			body: typeof notice.body === 'string' ? notice.body : '',
			tag: notice.room,
			renotify: true,
			icon: '/favicon.svg',
			data: { room: notice.room, seq: notice.seq, url: notice.url },
		});
		n.onclick = () => {
			window.focus();
			n.close();
			// Only a path of this site (see `local_path` in server/src/session.rs).
			if (typeof notice.url === 'string' && /^\/r\/[^/]/.test(notice.url)) location.assign(notice.url);
		};
		const shown = open.get(notice.room) || [];
		shown.push({ n, seq: notice.seq });
		open.set(notice.room, shown);
	};
	// True when the frame was this script's alone.
	const took = (ev) => {
		const text = ev.data;
		if (typeof text !== 'string') return false;
		if (text.startsWith('{"type":"notify"')) {
			try {
				show(JSON.parse(text).notice);
			} catch {}
			return true;
		}
		if (text.startsWith('{"type":"read"')) {
			try {
				const read = JSON.parse(text);
				if (typeof read.room === 'string' && typeof read.seq === 'number') readTo(read.room, read.seq);
			} catch {}
		}
		return false;
	};
	class Socket extends Native {
		set onmessage(handler) {
			super.onmessage = typeof handler === 'function' ? (ev) => took(ev) || handler.call(this, ev) : handler;
		}
		get onmessage() {
			return super.onmessage;
		}
		addEventListener(type, listener, options) {
			if (type !== 'message' || typeof listener !== 'function') return super.addEventListener(type, listener, options);
			return super.addEventListener(type, (ev) => took(ev) || listener.call(this, ev), options);
		}
	}
	window.WebSocket = Socket;

	// Web Push: this browser's subscription, given to the server (again on every page, so that it
	// belongs to the session signed in here now).
	const bytes = (b64) => Uint8Array.from(atob(b64.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
	// A browser that cannot subscribe (no push service reachable, a private window) is not asked
	// again on every page: once a day.
	const FAILED = 'herald-push-failed';
	const subscribe = async (key) => {
		if (!key || !('serviceWorker' in navigator) || !('PushManager' in window)) return;
		let failed = 0;
		try {
			failed = Number(localStorage.getItem(FAILED)) || 0;
		} catch {}
		if (Date.now() - failed < 24 * 3600 * 1000) return;
		// Marked before trying, and cleared once it worked: in a private window Chromium's subscribe
		// never settles.
		const mark = (value) => {
			try {
				if (value) localStorage.setItem(FAILED, value);
				else localStorage.removeItem(FAILED);
			} catch {}
		};
		mark(String(Date.now()));
		try {
			const registration = await navigator.serviceWorker.register('/sw.js');
			await navigator.serviceWorker.ready;
			const wanted = bytes(key);
			let subscription = await registration.pushManager.getSubscription();
			const had = subscription?.options.applicationServerKey;
			if (subscription && !(had && new Uint8Array(had).every((b, i) => b === wanted[i]))) {
				await subscription.unsubscribe();
				subscription = null;
			}
			subscription ||= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: wanted });
			const kept = await fetch('/push/subscriptions', {
				method: 'POST',
				credentials: 'same-origin',
				headers: { 'content-type': 'application/json' },
				body: JSON.stringify(subscription),
			});
			if (kept.ok) mark(null);
		} catch {}
	};
	// Asked quietly: a line under the room list (the browser's own prompt comes only after its
	// click), added once the app is hydrated — before, it would not be the tree the app expects.
	let hydrated = false;
	let afterHydrate = null;
	window.heraldAfterHydrate = () => {
		hydrated = true;
		afterHydrate?.();
	};
	const ask = (key) => {
		const place = () => {
			const list = document.querySelector('[data-testid="room-list"]');
			if (!list || list.querySelector('.notify-on')) return;
			const item = document.createElement('li');
			item.className = 'room-action notify-on';
			const button = item.appendChild(document.createElement('button'));
			button.type = 'button';
			button.dataset.testid = 'notify-on';
			button.textContent = 'Turn on notifications';
			button.title = 'Be told of mentions and direct messages while Herald is in the background';
			button.onclick = () =>
				Notification.requestPermission().then((answer) => {
					if (answer !== 'default') item.remove();
					if (answer === 'granted') subscribe(key);
				});
			list.appendChild(item);
		};
		if (hydrated) place();
		else afterHydrate = place;
	};
	window.heraldSessionAsked?.then((session) => {
		if (!session || !supported) return;
		if (Notification.permission === 'granted') subscribe(session.push_key);
		else if (Notification.permission === 'default') ask(session.push_key);
	});
})();
