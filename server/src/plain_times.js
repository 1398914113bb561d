// The times on the server's plain pages (server/src/plain.rs: search, mentions, edit history) in
// the reader's own zone. The server writes them in UTC, as it cannot know the zone; here each is
// labelled as the chat labels its messages (app/src/components/sent_at.rs `label`): the time alone
// today, "Yesterday" and the time, else the day and month (and the year, once not this year's) —
// with the full date on hovering it, as app/src/early.js gives it (change these together). A form that asks for dates (search) is told the reader's zone,
// so that its dates are the reader's days.
(() => {
	const now = new Date();
	for (const zone of document.querySelectorAll('input[type="hidden"][name="tz"]')) {
		zone.value = String(-now.getTimezoneOffset());
	}
	const day = (d) => Math.floor((d.getTime() - d.getTimezoneOffset() * 60000) / 86400000);
	const two = (n) => String(n).padStart(2, '0');
	const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
	for (const time of document.querySelectorAll('time[datetime]')) {
		const when = new Date(time.getAttribute('datetime'));
		if (isNaN(when)) continue;
		const clock = `${two(when.getHours())}:${two(when.getMinutes())}`;
		const date = `${when.getDate()} ${MONTHS[when.getMonth()]}`;
		const days = day(now) - day(when);
		time.textContent =
			days === 0
				? clock
				: days === 1
					? `Yesterday ${clock}`
					: when.getFullYear() === now.getFullYear()
						? `${date} ${clock}`
						: `${date} ${when.getFullYear()} ${clock}`;
		time.title = when.toLocaleString(undefined, {
			weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit',
		});
	}
})();
