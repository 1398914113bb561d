// What breaks reading and writing, with two people in real Chromium: the list keeps the newest in
// view, a long line does not widen the page, a growing draft does not cover the conversation, an error
// goes when its cause does, and "go to room" takes what the server takes.
import { expect, Page, test } from '../lib/test';
import { makeRoom, heraldUrl, openChat, reconnect, send, stored, twoPeople, uniqueRoom, watchForErrors } from '../lib/chat';

/** How far the newest message's bottom is below the scroller's visible bottom (≤ 0: fully visible). */
async function newestBelowFold(page: Page): Promise<number> {
  return page.getByTestId('scroller').evaluate((scroller) => {
    const items = scroller.querySelectorAll('ol.messages > li');
    const newest = items[items.length - 1];
    if (!newest) return 0;
    return newest.getBoundingClientRect().bottom - scroller.getBoundingClientRect().bottom;
  });
}

test('after sending, messages from others still scroll into view', async ({ browser }) => {
  const room = uniqueRoom('follow');
  const { a, b } = await twoPeople(browser, room);
  const errors = watchForErrors(a);
  // Enough for the list to scroll.
  for (let i = 1; i <= 20; i++) await send(b, `filler ${i}`);
  await expect(a.locator('.message .body', { hasText: 'filler 20' })).toBeVisible();
  await send(a, 'one from Ann');
  await expect(a.locator('.message:not(.pending) .body', { hasText: 'one from Ann' })).toHaveCount(1);
  for (let i = 1; i <= 3; i++) {
    await send(b, `from Bob ${i}`);
    await expect(a.locator('.message .body', { hasText: `from Bob ${i}` })).toHaveCount(1);
    await expect.poll(() => newestBelowFold(a)).toBeLessThanOrEqual(0.5);
  }
  await expect(a.getByTestId('jump')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('a long unbroken line in the composer does not widen the page', async ({ browser }) => {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('wide')}`);
  const url = `https://example.com/${'a'.repeat(400)}`;
  await page.getByTestId('composer-input').fill(url);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width).toBeLessThanOrEqual(1280);
  await expect(page.getByRole('button', { name: 'Send' })).toBeInViewport();
  await expect(page.getByTestId('status')).toBeInViewport();
  await send(page, url);
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);
});

test('a growing draft does not cover the newest message', async ({ browser }) => {
  const room = uniqueRoom('draft');
  const { a, b } = await twoPeople(browser, room);
  for (let i = 1; i <= 20; i++) await send(b, `line ${i}`);
  await expect(a.locator('.message .body', { hasText: 'line 20' })).toBeVisible();
  const input = a.getByTestId('composer-input');
  await input.click();
  for (let i = 0; i < 5; i++) {
    await input.press('Shift+Enter');
    await input.type(`more ${i}`);
  }
  await expect.poll(() => newestBelowFold(a)).toBeLessThanOrEqual(0.5);
});

test('an error about the draft goes once the draft is fixed', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('error')}`);
  const input = page.getByTestId('composer-input');
  await input.fill('x'.repeat(4200));
  await input.press('Enter');
  await expect(page.getByTestId('composer-error')).toContainText('4200 bytes');
  await input.fill('short now');
  await expect(page.getByTestId('composer-error')).toHaveText('');
});

test('"go to room" takes capitals and says what a room name may hold', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page);
  const box = page.getByTestId('room-input');
  const room = uniqueRoom('Design');
  await makeRoom(page, room.toLowerCase());
  await box.fill(room);
  expect(await box.evaluate((el) => (el as HTMLInputElement).checkValidity())).toBe(true);
  await box.press('Enter');
  await expect(page).toHaveURL(new RegExp(`/r/${room.toLowerCase()}$`));
  await expect(page.getByTestId('room-name')).toHaveText(`# ${room.toLowerCase()}`);
  // What cannot be a room name is refused with the rule, said beside the field as it is typed, not
  // the browser's "match the requested format".
  await box.fill('no/slashes');
  await expect(page.getByTestId('room-hint')).toHaveText(/a-z.*0-9.*spaces become -/);
  await box.press('Enter');
  await expect(box).toHaveAttribute('aria-invalid', 'true');
  await expect(page).toHaveURL(new RegExp(`/r/${room.toLowerCase()}$`));
});

/** Routes the page's next sockets: `hang` opens them and says nothing, `close` closes them at once,
 *  `server` passes them through to Herald. Returns a setter and the number of sockets opened. */
async function flakyServer(page: Page) {
  let mode: 'hang' | 'close' | 'server' = 'server';
  let opened = 0;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    opened += 1;
    if (mode === 'server') ws.connectToServer();
    else if (mode === 'close') ws.close();
    // 'hang': open, and never a word.
  });
  return { set: (m: typeof mode) => (mode = m), opened: () => opened };
}

test('a socket that opens but never answers is given up and tried again', async ({ browser }) => {
  // Two silent sockets are waited out (8 s each, WELCOME_TIMEOUT_MS in app/src/client.rs).
  test.setTimeout(45_000);
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('hang')}`);
  const server = await flakyServer(page);
  server.set('hang');
  await reconnect(page);
  await expect.poll(server.opened).toBe(1);
  await send(page, 'said while the server hangs');
  await expect(page.getByTestId('pending')).toHaveCount(1);
  // Not "Connecting…" for ever: the silent socket is dropped and another one tried.
  await expect.poll(server.opened, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
  server.set('server');
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected', { timeout: 20_000 });
  await stored(page);
  await expect(page.locator('.message .body', { hasText: 'said while the server hangs' })).toHaveCount(1);
});

test('"Retry now" ends the wait before the next attempt', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('retry')}`);
  const server = await flakyServer(page);
  server.set('close');
  await reconnect(page);
  await send(page, 'kept until the retry');
  // Each failure doubles the wait; once it is several seconds, the reader is offered to cut it.
  const status = page.getByTestId('status');
  await expect(status).toHaveText(/Reconnecting in [3-9]s/, { timeout: 20_000 });
  await expect(page.getByTestId('retry')).toBeVisible();
  server.set('server');
  const opened = server.opened();
  await page.getByTestId('retry').click();
  // Connected well before the countdown (3 s at least) would have run out.
  await expect(status).toHaveAttribute('data-state', 'connected', { timeout: 2_500 });
  expect(server.opened()).toBe(opened + 1);
  await expect(page.getByTestId('retry')).toHaveCount(0);
  await expect(page.locator('.message .body', { hasText: 'kept until the retry' })).toHaveCount(1);
  await stored(page);
});

test('a draft and an unsent message survive a reload; the message is stored once', async ({ browser }) => {
  const room = uniqueRoom('keep');
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchForErrors(page);
  await openChat(page, `${heraldUrl()}/r/${room}`, 'Ann');
  const server = await flakyServer(page);
  // The server cannot be reached for a while: what is sent waits, unacknowledged.
  server.set('close');
  await reconnect(page);
  await send(page, 'sent while away');
  await expect(page.getByTestId('pending')).toHaveCount(1);
  await page.getByTestId('composer-input').fill('half a thought');
  // Leaving now would lose something: the browser is asked to confirm first.
  const warned = await page.evaluate(() => {
    const event = new Event('beforeunload', { cancelable: true });
    window.dispatchEvent(event);
    return event.defaultPrevented;
  });
  expect(warned).toBe(true);

  // Reloaded (the server still away); then it is back.
  await page.reload();
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('composer-input')).toHaveValue('half a thought');
  await expect(page.getByTestId('pending')).toHaveCount(1);
  server.set('server');
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected', { timeout: 20_000 });
  await stored(page);
  await expect(page.locator('.message .body', { hasText: 'sent while away' })).toHaveCount(1);

  // Another person sees it once, and it is stored once.
  const bob = await (await browser.newContext()).newPage();
  await openChat(bob, `${heraldUrl()}/r/${room}`, 'Bob');
  await expect(bob.locator('.message .body', { hasText: 'sent while away' })).toHaveCount(1);
  // Nothing is left unsent: leaving no longer asks.
  expect(
    await page.evaluate(() => {
      const event = new Event('beforeunload', { cancelable: true });
      window.dispatchEvent(event);
      return event.defaultPrevented;
    }),
  ).toBe(false);
  expect(errors.filter((e) => !e.includes('WebSocket'))).toEqual([]);
});

test('before the page comes alive, the conversation already shows its newest messages', async ({ browser }) => {
  const room = uniqueRoom('early');
  const { b } = await twoPeople(browser, room);
  for (let i = 1; i <= 25; i++) await send(b, `early ${i}`);
  await expect(b.locator('.message:not(.pending) .body', { hasText: 'early 25' })).toHaveCount(1);
  // The same person on a slow network: the wasm has not arrived (here: never does).
  const page = await b.context().newPage();
  await page.route('**/pkg/*.wasm', (route) => route.abort());
  await page.goto(`${heraldUrl()}/r/${room}`);
  await expect(page.locator('.message .body', { hasText: 'early 25' })).toHaveCount(1);
  expect(await page.locator('.app').getAttribute('data-hydrated')).toBe('false');
  await expect.poll(() => newestBelowFold(page)).toBeLessThanOrEqual(0.5);
});
