// The chat by keyboard and screen reader: the message box is where focus lands, a skip link leads
// there, Escape closes the change-of-name box, only new messages from others are announced — and
// without JavaScript the page says what it needs.
import { expect, test } from '../lib/test';
import { makeRoom, chooseName, heraldUrl, newName, openChat, send, twoPeople, uniqueRoom } from '../lib/chat';

test('after choosing a name and after moving to a room, focus is in the message box', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${heraldUrl()}/r/${uniqueRoom('focus')}`);
  await chooseName(page, newName());
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('composer-input')).toBeFocused();
  // By the sidebar: the link was clicked, and the box takes the focus.
  await page.locator('.room[data-room="general"] a').click();
  await expect(page.getByTestId('room-name')).toHaveText('# general');
  await expect(page.getByTestId('composer-input')).toBeFocused();
  // By "go to room".
  const other = uniqueRoom('there');
  await makeRoom(page, other);
  await page.getByTestId('room-input').fill(other);
  await page.getByTestId('room-input').press('Enter');
  await expect(page.getByTestId('room-name')).toHaveText(`# ${other}`);
  await expect(page.getByTestId('composer-input')).toBeFocused();
});

test('the first stop for Tab from the top of the page is a link to the message box', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('skip')}`);
  // First in document order of everything Tab stops at (the rooms' links all come after it).
  const first = await page.evaluate(() => {
    const focusable = document.querySelectorAll<HTMLElement>('a[href], button, input, textarea, select, summary');
    return [...focusable].find((el) => el.tabIndex >= 0 && !(el as HTMLButtonElement).disabled)?.dataset.testid;
  });
  expect(first).toBe('skip-link');
  // Hidden until it has the focus; then seen, and it leads to the box.
  await expect(page.getByTestId('skip-link')).not.toBeInViewport();
  await page.getByTestId('skip-link').focus();
  await expect(page.getByTestId('skip-link')).toBeInViewport();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('composer-input')).toBeFocused();
});

test('Escape closes the change-of-name box and returns to the name', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('escape')}`);
  await page.getByTestId('me').click();
  await expect(page.getByTestId('rename-input')).toBeVisible();
  await page.getByTestId('rename-input').focus();
  await page.keyboard.press('Escape');
  await expect(page.getByTestId('rename-input')).toBeHidden();
  await expect(page.getByTestId('me')).toBeFocused();
});

test('only a new message from someone else is announced, not the whole list', async ({ browser }) => {
  const { a: ann, b: bob } = await twoPeople(browser, uniqueRoom('live'));
  // The list is not a live region: a page of history or a join notice would all be read out.
  await expect(ann.getByTestId('messages')).not.toHaveAttribute('aria-live', /.+/);
  const announcer = ann.getByTestId('announcer');
  await expect(announcer).toHaveAttribute('aria-live', 'polite');
  await send(bob, 'hello Ann');
  await expect(announcer).toHaveText('Bob: hello Ann');
  // Her own message is not read back to her.
  await send(ann, 'hi Bob');
  await expect(ann.locator('.message:not(.pending) .body', { hasText: 'hi Bob' })).toHaveCount(1);
  await expect(announcer).toHaveText('Bob: hello Ann');
});

test('without JavaScript the page shows the messages and says what needs it', async ({ browser }) => {
  const room = uniqueRoom('nojs');
  const writer = await (await browser.newContext()).newPage();
  await openChat(writer, `${heraldUrl()}/r/${room}`, 'Writer');
  await send(writer, 'readable without scripts');
  await expect(writer.locator('.message:not(.pending) .body', { hasText: 'readable without scripts' })).toHaveCount(1);
  const cookies = await writer.context().cookies();
  const context = await browser.newContext({ javaScriptEnabled: false });
  await context.addCookies(cookies);
  const page = await context.newPage();
  await page.goto(`${heraldUrl()}/r/${room}`);
  await expect(page.locator('.message .body', { hasText: 'readable without scripts' })).toBeVisible();
  await expect(page.getByTestId('noscript')).toBeVisible();
  await expect(page.getByTestId('noscript')).toContainText('JavaScript');
});
