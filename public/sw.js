// Herald's service worker (docs/NOTIFICATIONS.md, "Web Push"). Registered by the page's script
// (app/src/early.js) once the person allows notifications, so that the server can tell this browser
// of a mention or a direct message while no Herald tab is open: a push is shown as a notification,
// and clicking it opens its message. Plain script, as the page's early script: it never needs the
// wasm.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// A push's payload is a notice (`Notice` in app/src/protocol.rs): room, seq, title, body, url. One
// notification per room (its tag), replaced by the room's next: the same tag as the page's own.
self.addEventListener('push', (event) => {
	let notice = null;
	try {
		notice = event.data ? event.data.json() : null;
	} catch {
		notice = null;
	}
	if (!notice || typeof notice.title !== 'string' || typeof notice.room !== 'string') return;
	event.waitUntil(
		self.registration.showNotification(notice.title, {
			body: typeof notice.body === 'string' ? notice.body : '',
			tag: notice.room,
			renotify: true,
			icon: '/favicon.svg',
			data: { room: notice.room, seq: notice.seq, url: notice.url },
		}),
	);
});

// Clicked: the message in its room, in a Herald tab already open if there is one.
self.addEventListener('notificationclick', (event) => {
	event.notification.close();
	const data = event.notification.data || {};
	const url = new URL(typeof data.url === 'string' ? data.url : '/', self.location.origin);
	// Only a page of this site.
	if (url.origin !== self.location.origin) return;
	event.waitUntil(
		(async () => {
			const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
			const open = windows.find((w) => new URL(w.url).origin === url.origin);
			if (!open) return self.clients.openWindow(url.href);
			await open.focus().catch(() => {});
			return open.navigate(url.href);
		})(),
	);
});
