// What the page does when the server closes its socket, by the close code (app::protocol::Disconnect):
// going away → back at once; too slow → a pause first; a refusal → said, not retried; and a session
// that ended elsewhere → the name form. Real Chromium against the release binary.
import { expect, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { chooseName, heraldUrl, openChat, reconnect, send, uniqueRoom, watchForErrors } from '../lib/chat';
import { binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

/** From now on each new socket of `page` is answered by closing it with `code`. */
async function closingServer(page: Page, code: number, reason: string) {
  let opened = 0;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    opened += 1;
    ws.close({ code, reason });
  });
  return { opened: () => opened };
}

test('a server that shuts down and comes back: the page reconnects by itself, nothing lost', async ({ browser }) => {
  const dir = copyAlone(binaryUnderTest());
  let herald = await startHerald(dir);
  const addr = herald.url.replace('http://', '');
  try {
    const page = await (await browser.newContext()).newPage();
    const errors = watchForErrors(page);
    const room = uniqueRoom('restart');
    await openChat(page, `${herald.url}/r/${room}`);
    await send(page, 'before the restart');
    await expect(page.locator('.message:not(.pending) .body')).toHaveText(['before the restart']);

    expect(await herald.stop()).toBe(0); // SIGTERM: every socket is told "going away" (1001).
    await expect(page.getByTestId('status')).not.toHaveAttribute('data-state', 'connected');
    await send(page, 'while it was down');
    herald = await startHerald(dir, ['--addr', addr, '--data-dir', 'data']);

    await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected');
    await expect(page.locator('.message:not(.pending) .body')).toHaveText(['before the restart', 'while it was down']);
    // The browser logs each attempt made while the server was down; nothing else went wrong.
    const down = (e: string) => e.includes('WebSocket') || e.includes('ERR_CONNECTION_REFUSED');
    expect(errors.filter((e) => !down(e))).toEqual([]);
  } finally {
    await herald.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('closed as too slow, the page waits a few seconds before it tries again', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('slow')}`);
  const server = await closingServer(page, 4008, 'too slow; reconnect later');
  await reconnect(page);
  await expect.poll(server.opened).toBe(1);
  // Not the half second of an ordinary drop: seconds, counted down.
  await expect(page.getByTestId('status')).toHaveText(/^Reconnecting in [3-8]s$/);
  expect(server.opened()).toBe(1);
});

test('a refusal is said and not retried in a loop; "Reconnect" tries again', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('refused')}`);
  const server = await closingServer(page, 1002, 'protocol error');
  await reconnect(page);
  await expect.poll(server.opened).toBe(1);
  const status = page.getByTestId('status');
  await expect(status).toHaveAttribute('data-state', 'stopped');
  await expect(status).toContainText('refused what this page sent');
  // An ordinary drop would have been retried within a second; this one is left alone.
  await page.waitForTimeout(2_000);
  expect(server.opened()).toBe(1);
  await page.getByTestId('retry').click();
  await expect.poll(server.opened).toBe(2);
});

test('signed out in another tab: this one is taken to sign in at once, and back to its room after', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const room = uniqueRoom('signed-out');
  await openChat(page, `${heraldUrl()}/r/${room}`);
  const other = await context.newPage();
  await other.goto(`${heraldUrl()}/r/${room}`);
  await other.getByTestId('me').click();
  await other.getByRole('button', { name: 'Sign out' }).click();
  await expect(other.getByTestId('name-form')).toBeVisible();

  // This tab's socket was let in by the same session: the server closes it at once (4001), the
  // next handshake is refused, and the page goes to the sign-in page, to come back here after.
  await expect(page.getByTestId('name-form')).toBeVisible();
  await expect(page).toHaveURL(new RegExp(`/sign-in\\?next=/r/${room}$`));
  // Back in (here as a guest), back in the room.
  await chooseName(page, 'Back again');
  await expect(page).toHaveURL(new RegExp(`/r/${room}$`));
});
