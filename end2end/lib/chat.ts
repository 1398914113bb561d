// What a person does on the chat page, as test steps.
import { Browser, expect, Page } from '@playwright/test';

export function heraldUrl(): string {
  const url = process.env.HERALD_URL;
  if (!url) throw new Error('HERALD_URL is not set: the global setup did not start herald');
  return url;
}

let visitors = 0;

/** A display name unique to this test process. */
export function newName(): string {
  visitors += 1;
  return `Tester ${process.pid % 1000}-${visitors}`;
}

/** A room no other test uses: tests share the server. */
export function uniqueRoom(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
}

/** Chooses a display name on the first-visit form (a plain form post). */
export async function chooseName(page: Page, name: string) {
  await page.getByTestId('name-input').fill(name);
  await page.getByRole('button', { name: 'Start chatting' }).click();
  await makeRoomIfOffered(page);
  await expect(page.getByTestId('me')).toHaveText(name);
}

/**
 * Makes the open room `room` (if it is new) as the person signed in on `page` would with the "new
 * room" form, without leaving the page: for a test that then goes there through "go to room".
 */
export async function makeRoom(page: Page, room: string) {
  const origin = new URL(page.url()).origin;
  const made = await page.request.post(`${origin}/rooms`, { form: { kind: 'open', name: room } });
  // Made (and followed to the room's page), or there already (followed back to the form, which
  // says so).
  expect(made.status()).toBe(200);
}

/**
 * On the page of a room nobody has made yet (the tests' rooms are new), makes it with the page's
 * offer, as the first person to open it would; on a chat page, does nothing.
 */
export async function makeRoomIfOffered(page: Page) {
  const offer = page.getByTestId('no-room');
  await expect(offer.or(page.getByTestId('me'))).toBeVisible();
  if (await offer.isVisible()) {
    await page.getByTestId('create-room').click();
    await expect(page.getByTestId('me')).toBeVisible();
  }
}

/**
 * Opens the chat (choosing a name first if this browser has none) and waits until the WASM has
 * hydrated the page and the socket is connected. Returns the name shown as the user's own.
 */
export async function openChat(page: Page, url = heraldUrl(), name = newName()): Promise<string> {
  await page.goto(url);
  if (await page.getByTestId('name-form').isVisible()) {
    await chooseName(page, name);
  }
  await makeRoomIfOffered(page);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(page.getByTestId('composer-input')).toBeEnabled();
  return (await page.getByTestId('me').textContent()) ?? '';
}

/** Ann and Bob, each in a browser of their own, in `room`. */
export async function twoPeople(browser: Browser, room: string): Promise<{ a: Page; b: Page }> {
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await openChat(a, `${heraldUrl()}/r/${room}`, 'Ann');
  await openChat(b, `${heraldUrl()}/r/${room}`, 'Bob');
  return { a, b };
}

/** Types a message and presses Enter. */
export async function send(page: Page, text: string) {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await input.press('Enter');
  await expect(input).toHaveValue('');
}

/**
 * Waits until what `page` sent is stored (nothing of it pending): a cleared composer says only that
 * it was handed to the socket. Before another person writes, when the order they are stored in
 * matters.
 */
export async function stored(page: Page) {
  await expect(page.getByTestId('pending')).toHaveCount(0);
}

/** The bodies of the messages shown, in order. */
/**
 * The seq of the stored message saying `text` on `page`. A message one sent is drawn at once, as
 * pending and without a seq, until the server's ack: this waits for the stored row.
 */
export async function seqOf(page: Page, text: string): Promise<number> {
  const row = page.locator('.messages li.message[data-seq]', { hasText: text });
  await expect(row).toHaveCount(1);
  return Number(await row.getAttribute('data-seq'));
}

export function bodies(page: Page) {
  return page.locator('.messages .message .body');
}

/** Fails the test on any uncaught error or console error in the page. */
export function watchForErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/** Drops the page's socket the way a network change does, so it connects again. */
export async function reconnect(page: Page) {
  await page.context().setOffline(true);
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'offline');
  await page.context().setOffline(false);
}

/**
 * Brings an offline page back and waits until it has rejoined `room`: its replay is over (the
 * `presence` after it), so what is written from now on reaches it live, not as missed.
 * `connected` alone says the server greeted the socket, before the page asked to rejoin.
 */
export async function backOnline(page: Page, room: string) {
  const socket = page.waitForEvent('websocket');
  await page.context().setOffline(false);
  await (
    await socket
  ).waitForEvent('framereceived', {
    predicate: (f) => {
      const frame = JSON.parse(String(f.payload));
      return frame.type === 'presence' && frame.room === room;
    },
  });
}

/**
 * Sends messages `m FROM` … `m FROM+COUNT-1` to `room` over a socket of its own of `page`'s session,
 * in that order (one socket's sends are stored in the order sent); resolves when all are acked. The
 * person's rate budget is shared with their other sockets: the join and the sends must fit in it.
 */
export async function flood(page: Page, room: string, from: number, count: number) {
  await page.evaluate(
    ({ room, from, count }) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        let acked = 0;
        ws.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.type === 'welcome') {
            ws.send(JSON.stringify({ type: 'join', room }));
          } else if (frame.type === 'joined') {
            for (let i = from; i < from + count; i++) {
              ws.send(JSON.stringify({ type: 'send', room, client_id: `flood-${i}`, body: `m ${i}` }));
            }
          } else if (frame.type === 'ack' && ++acked === count) {
            ws.close();
            resolve();
          } else if (frame.type === 'error') {
            reject(new Error(frame.message));
          }
        };
      }),
    { room, from, count },
  );
}
