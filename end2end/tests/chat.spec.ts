// Two people chatting in real Chromium, each in their own browser context, against the release binary.
import { expect, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { binaryUnderTest, copyAlone, startHerald, TEST_FLAGS } from '../lib/herald';
import { makeRoom, bodies, chooseName, heraldUrl, openChat, send, stored, twoPeople, uniqueRoom, watchForErrors } from '../lib/chat';

test('two browsers chat live: each sees the other at once', async ({ browser }) => {
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const errors = [...[a, b].map(watchForErrors)];
  const nameOfA = await openChat(a, heraldUrl(), 'Ann');
  await openChat(b, heraldUrl(), 'Bob');

  await send(a, 'hello from A');
  await expect(bodies(b).filter({ hasText: 'hello from A' })).toHaveCount(1);
  await expect(bodies(a).filter({ hasText: 'hello from A' })).toHaveCount(1);

  await send(b, 'hello from B');
  await expect(bodies(a).filter({ hasText: 'hello from B' })).toHaveCount(1);
  await expect(bodies(b).filter({ hasText: 'hello from B' })).toHaveCount(1);

  // Both show the conversation in the same order, A's message first.
  for (const page of [a, b]) {
    const texts = await bodies(page).allTextContents();
    expect(texts.indexOf('hello from A')).toBeLessThan(texts.indexOf('hello from B'));
  }
  // Each sees the name the other chose, and their own message marked as theirs and the other's not.
  expect(nameOfA).toBe('Ann');
  await expect(b.locator('.message', { hasText: 'hello from A' }).locator('.author')).toHaveText('Ann');
  await expect(a.locator('.message', { hasText: 'hello from B' }).locator('.author')).toHaveText('Bob');

  await expect(a.locator('.message.mine .body', { hasText: 'hello from A' })).toHaveCount(1);
  await expect(b.locator('.message.mine .body', { hasText: 'hello from A' })).toHaveCount(0);
  expect(errors.flat()).toEqual([]);
});

test('markup in a message is shown as text and runs nothing', async ({ browser }) => {
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const dialogs: string[] = [];
  for (const page of [a, b]) {
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  }
  await openChat(a);
  await openChat(b);

  const evil = '<img src=x onerror=alert(1)>';
  await send(a, evil);
  for (const page of [a, b]) {
    await expect(bodies(page).filter({ hasText: evil })).toHaveCount(1);
    await expect(page.locator('.messages img')).toHaveCount(0);
  }
  // A later message arriving proves the page kept running after rendering the markup.
  await send(b, 'after the markup');
  await expect(bodies(a).filter({ hasText: 'after the markup' })).toHaveCount(1);
  expect(dialogs).toEqual([]);
});

test('web addresses in a message are links that open in a new tab; nothing else is', async ({ browser }) => {
  const url = `${heraldUrl()}/r/links-${Date.now()}`;
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const errors = [watchForErrors(a), watchForErrors(b)];
  await openChat(a, url, 'Ann');
  await openChat(b, url, 'Bob');
  const text = 'guide: https://example.com/guide?x=1. not javascript:alert(1) nor xhttps://example.com';
  await send(a, text);
  const seesOneLink = async (page: Page) => {
    await expect(bodies(page)).toHaveText([text]);
    const link = page.locator('.messages .body a');
    await expect(link).toHaveCount(1);
    await expect(link).toHaveText('https://example.com/guide?x=1');
    await expect(link).toHaveAttribute('href', 'https://example.com/guide?x=1');
    await expect(link).toHaveAttribute('target', '_blank');
    await expect(link).toHaveAttribute('rel', 'noopener noreferrer nofollow');
  };
  await seesOneLink(a);
  await seesOneLink(b);
  // Rendered the same by the server, and taken over by the page without a mismatch.
  const html = await (await b.request.get(url)).text();
  expect(html).toContain('<a href="https://example.com/guide?x=1" target="_blank"');
  await b.reload();
  await openChat(b, url);
  await seesOneLink(b);
  expect(errors.flat()).toEqual([]);
});

test('on a phone the page fits the screen: nothing scrolls sideways', async ({ browser }) => {
  const page = await (await browser.newContext({ viewport: { width: 360, height: 740 } })).newPage();
  const room = `a-rather-long-room-name-for-a-phone-${Date.now()}`;
  await openChat(page, `${heraldUrl()}/r/${room}`, 'Somebody With A Long Name');
  await send(page, `see https://example.com/${'very-long-path/'.repeat(8)} and ${'w'.repeat(80)}`);
  await expect(bodies(page)).toHaveCount(1);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await expect(page.getByTestId('composer-input')).toBeInViewport();
  // Search and Mentions are in sight, not past the rooms at the end of the row; named for
  // screen readers as on a wide screen.
  for (const [id, name] of [['search', 'Search messages'], ['mentions', 'Mentions']]) {
    await expect(page.getByTestId(id)).toBeInViewport({ ratio: 1 });
    await expect(page.getByTestId(id)).toHaveAccessibleName(name);
  }
  // The box for changing one's name fits too.
  await page.getByTestId('me').click();
  await expect(page.getByRole('button', { name: 'Change name' })).toBeInViewport({ ratio: 1 });
  await expect(page.getByTestId('rename-input')).toBeInViewport({ ratio: 1 });
});

test('a message shows when it was sent in the time zone of its reader, with its day once not today', async ({
  browser,
}) => {
  const url = `${heraldUrl()}/r/days-${Date.now()}`;
  const page = await (await browser.newContext({ timezoneId: 'Asia/Tokyo' })).newPage();
  const errors = watchForErrors(page);
  await openChat(page, url, 'Ann');
  await send(page, 'said today');
  const time = page.locator('.message', { hasText: 'said today' }).locator('time');
  const iso = (await time.getAttribute('datetime')) ?? '';
  expect(iso).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\dZ$/);
  const sent = Date.parse(iso);
  const inTokyo = (options: Intl.DateTimeFormatOptions, at = sent) =>
    new Date(at).toLocaleString('en-GB', { timeZone: 'Asia/Tokyo', ...options });
  const hhmm = inTokyo({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  await expect(time).toHaveText(hhmm);

  // The same conversation read later: the reader's clock decides what "today" is.
  const readAt = async (later: number) => {
    await page.clock.setFixedTime(sent + 30_000 + later);
    await page.reload();
    await openChat(page, url);
  };
  const day = 24 * 3600 * 1000;
  await readAt(day);
  await expect(time).toHaveText(`Yesterday ${hhmm}`);
  await readAt(3 * day);
  const crossesAYear = inTokyo({ year: 'numeric' }) !== inTokyo({ year: 'numeric' }, sent + 3 * day);
  const date = inTokyo({ day: 'numeric', month: 'short', ...(crossesAYear ? { year: 'numeric' } : {}) });
  await expect(time).toHaveText(`${date} ${hhmm}`);
  expect(errors).toEqual([]);
});

test('changing your name keeps what you said yours, and others see the new name', async ({ browser }) => {
  const url = `${heraldUrl()}/r/rename-${Date.now()}`;
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const errors = [watchForErrors(a), watchForErrors(b)];
  await openChat(a, url, 'Anne Typo');
  await openChat(b, url, 'Bob');
  await send(a, 'said before');

  // A name that is only spaces is refused, with the reason, and nothing changes.
  await a.getByTestId('me').click();
  await a.getByTestId('rename-input').fill('   ');
  await a.getByRole('button', { name: 'Change name' }).click();
  await expect(a.getByTestId('rename-error')).toContainText('Please choose a name of 1 to 32 characters');
  await expect(a.getByTestId('me')).toHaveText('Anne Typo');
  // The form is still open, for another try.

  await a.getByTestId('rename-input').fill('Anne');
  await a.getByRole('button', { name: 'Change name' }).click();
  await expect(a).toHaveURL(url);
  await openChat(a, url);
  await expect(a.getByTestId('me')).toHaveText('Anne');
  // Still hers: on her side of the conversation, under the name it was sent with.
  const before = a.locator('.message', { hasText: 'said before' });
  await expect(before).toHaveClass(/mine/);
  await expect(before.locator('.author')).toHaveText('Anne Typo');
  await send(a, 'said after');
  await expect(a.locator('.message', { hasText: 'said after' })).toHaveClass(/mine/);
  await expect(b.locator('.message', { hasText: 'said after' }).locator('.author')).toHaveText('Anne');
  await expect(b.getByTestId('people').locator('li')).toHaveText(['Anne', 'Bob']);
  expect(errors.flat()).toEqual([]);
});

test('the page is rendered on the server; without JavaScript the composer says it cannot send', async ({ browser }) => {
  // Without JavaScript: choosing a name works (a plain form), and the server's HTML alone already
  // holds the chat's layout.
  const noJs = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await noJs.goto(heraldUrl() + '/');
  await chooseName(noJs, 'No Script');
  await expect(noJs.locator('h1.brand')).toHaveText('Herald');
  await expect(noJs.getByTestId('messages')).toBeAttached();
  await expect(noJs.getByTestId('status')).toHaveText('Loading…');
  await expect(noJs.getByTestId('composer-input')).toBeDisabled();
  await expect(noJs.getByTestId('noscript')).toBeVisible();
});

test('before the wasm arrives the box takes typing; what was sent with Enter goes once the page is alive', async ({
  browser,
}) => {
  const room = uniqueRoom('early-keys');
  const { a, b } = await twoPeople(browser, room);
  // Ann again, on a slow network: the wasm is held back.
  const page = await a.context().newPage();
  const errors = watchForErrors(page);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/pkg/*.wasm', async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(`${heraldUrl()}/r/${room}`, { waitUntil: 'domcontentloaded' });
  const input = page.getByTestId('composer-input');
  await expect(input).toBeEnabled();
  await expect(input).toBeFocused();
  await expect(input).toHaveAttribute('placeholder', `Message #${room}`);
  await expect(page.getByTestId('status')).toHaveText('Loading…');
  // Typed key by key, as a person does: nothing is lost.
  await input.pressSequentially('said before the wasm');
  await expect(page.getByRole('button', { name: 'Send' })).toBeEnabled();
  await input.press('Enter');
  await expect(input).toHaveValue('');
  // It does not seem to vanish: it shows at once, greyed, as "sending…" (as an offline send does).
  const early = page.getByTestId('pending');
  await expect(early).toHaveCount(1);
  await expect(early.locator('.body')).toHaveText('said before the wasm');
  await expect(early.locator('.sending')).toHaveText('sending…');
  await expect(early).toBeInViewport();
  await input.pressSequentially('and a second');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(early.locator('.body')).toHaveText(['said before the wasm', 'and a second']);
  await input.pressSequentially('still writing');
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'false');
  // Not sent yet: Bob has heard nothing.
  await expect(b.locator('.message .body', { hasText: 'said before the wasm' })).toHaveCount(0);

  release();
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('status')).toHaveText('Connected');
  // Each held message arrives once, in order; the unfinished one is still in the box.
  const heard = b.locator('.message .body').filter({ hasText: /said before the wasm|and a second/ });
  await expect(heard).toHaveText(['said before the wasm', 'and a second']);
  await expect(page.locator('.message:not(.pending) .body').filter({ hasText: /said before|and a second/ })).toHaveText([
    'said before the wasm',
    'and a second',
  ]);
  // Shown once each: the early rows gave way to the messages themselves.
  await stored(page);
  await expect(input).toHaveValue('still writing');
  await input.press('Enter');
  await expect(b.locator('.message .body', { hasText: 'still writing' })).toHaveCount(1);
  expect(errors).toEqual([]);
});

test('Enter sends, Shift+Enter starts a new line', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page);
  const input = page.getByTestId('composer-input');
  await input.click();
  await input.pressSequentially('first line');
  await input.press('Shift+Enter');
  await input.pressSequentially('second line');
  // Other tests share the room, so look only for this test's text.
  await expect(bodies(page).filter({ hasText: 'first line' })).toHaveCount(0);
  await input.press('Enter');
  await expect(bodies(page).filter({ hasText: 'first line' })).toHaveText('first line\nsecond line');
  await expect(input).toHaveValue('');
});

test('an over-long message is refused before sending, with the reason', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page);
  const input = page.getByTestId('composer-input');
  await input.fill('x'.repeat(4097));
  await input.press('Enter');
  await expect(page.getByTestId('composer-error')).toContainText('limit is 4096');
  // Kept for the user to shorten, and nothing was sent.
  await expect(input).toHaveValue('x'.repeat(4097));
  // Nothing was sent: a short message sent next is the first of this page's to appear.
  await send(page, 'short enough');
  await expect(bodies(page).filter({ hasText: 'short enough' })).toHaveCount(1);
  await expect(bodies(page).filter({ hasText: 'xxxx' })).toHaveCount(0);
});

test('a server started with a higher --max-body-bytes: the composer takes what that server stores', async ({
  browser,
}) => {
  const dir = copyAlone(binaryUnderTest());
  const herald = await startHerald(dir, [...TEST_FLAGS, '--max-body-bytes', '10000']);
  try {
    const page = await (await browser.newContext()).newPage();
    await openChat(page, `${herald.url}/r/${uniqueRoom('long')}`);
    const input = page.getByTestId('composer-input');
    const long = 'y'.repeat(5000);
    await input.fill(long);
    await expect(page.locator('.composer-limit')).toHaveText('');
    await input.press('Enter');
    await expect(page.locator('.message:not(.pending) .body')).toHaveText([long]);
    await expect(page.getByTestId('composer-error')).toHaveText('');
    // Near and past that server's limit, the counter and the refusal say its number.
    await input.fill('z'.repeat(10001));
    await expect(page.locator('.composer-limit')).toHaveText('10001 / 10000 bytes');
    await input.press('Enter');
    await expect(page.getByTestId('composer-error')).toContainText('limit is 10000');
    await expect(input).toHaveValue('z'.repeat(10001));
  } finally {
    await herald.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('history survives a reload: what was said is still there', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page);
  const text = `kept across reloads ${Date.now()}`;
  await send(page, text);
  await expect(bodies(page).filter({ hasText: text })).toHaveCount(1);

  await page.reload();
  await openChat(page);
  await expect(bodies(page).filter({ hasText: text })).toHaveCount(1);
  // A newcomer in another browser sees it too.
  const other = await (await browser.newContext()).newPage();
  await openChat(other);
  await expect(bodies(other).filter({ hasText: text })).toHaveCount(1);
});

test('a first-time visitor chooses a name; a bad one is explained; the name sticks', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(heraldUrl() + '/');
  await expect(page.getByTestId('composer-input')).toHaveCount(0);
  // Whitespace only passes the browser's `required` check but not the server's.
  await page.getByTestId('name-input').fill('   ');
  await page.getByRole('button', { name: 'Start chatting' }).click();
  await expect(page.getByTestId('name-error')).toContainText('1 to 32 characters');

  await chooseName(page, '  Zoë  ');
  await expect(page.getByTestId('me')).toHaveText('Zoë');
  await page.reload();
  await expect(page.getByTestId('me')).toHaveText('Zoë');
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected');

  // Signing out forgets the name in this browser.
  await page.getByTestId('me').click();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByTestId('name-form')).toBeVisible();
});

test('offline: messages sent meanwhile arrive once, in order, and missed ones appear', async ({ browser }) => {
  const aContext = await browser.newContext();
  const a = await aContext.newPage();
  const b = await (await browser.newContext()).newPage();
  await openChat(a);
  await openChat(b);
  const tag = Date.now();

  await aContext.setOffline(true);
  await expect(a.getByTestId('status')).toHaveAttribute('data-state', 'offline');
  // A types while offline: shown as sending, not lost.
  await send(a, `offline one ${tag}`);
  await send(a, `offline two ${tag}`);
  await expect(a.getByTestId('pending')).toHaveCount(2);
  // B talks meanwhile; A cannot hear it yet.
  await send(b, `missed by A ${tag}`);
  await expect(bodies(b).filter({ hasText: `missed by A ${tag}` })).toHaveCount(1);

  await aContext.setOffline(false);
  await expect(a.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await stored(a);
  for (const page of [a, b]) {
    const mine = bodies(page).filter({ hasText: String(tag) });
    await expect(mine).toHaveCount(3);
    // Each exactly once, A's two in the order typed.
    const texts = await mine.allTextContents();
    expect(texts.indexOf(`offline one ${tag}`)).toBeLessThan(texts.indexOf(`offline two ${tag}`));
  }
  await expect(bodies(a).filter({ hasText: `missed by A ${tag}` })).toHaveCount(1);
});

test('rooms are separate: each has its own URL, and only its members hear it', async ({ browser }) => {
  const room = `room-${Date.now()}`;
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const elsewhere = await (await browser.newContext()).newPage();
  await openChat(a);
  // Through the "go to room" form, as a person would.
  await makeRoom(a, room);
  await a.getByTestId('room-input').fill(room);
  await a.getByTestId('room-input').press('Enter');
  await expect(a).toHaveURL(new RegExp(`/r/${room}$`));
  await expect(a.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(a.getByTestId('room-name')).toHaveText(`# ${room}`);
  // A first visit straight to the room's URL: after choosing a name, B is in that room.
  await openChat(b, `${heraldUrl()}/r/${room}`);
  await expect(b).toHaveURL(new RegExp(`/r/${room}$`));
  await openChat(elsewhere);

  await send(a, `only in ${room}`);
  await expect(bodies(b).filter({ hasText: `only in ${room}` })).toHaveCount(1);
  // The general room goes on without it: its own next message arrives, the room's never does.
  await send(elsewhere, `general after ${room}`);
  await expect(bodies(elsewhere).filter({ hasText: `general after ${room}` })).toHaveCount(1);
  await expect(bodies(elsewhere).filter({ hasText: `only in ${room}` })).toHaveCount(0);
  await expect(bodies(a).filter({ hasText: `general after ${room}` })).toHaveCount(0);
});
