// Where a person has read, on every device (docs/READING.md): one person signed in on a laptop and
// a phone; what the phone reads, the laptop no longer counts as unread — in the sidebar and in the
// tab's title — within a moment, without a reload. A server of its own, with accounts, as an
// operator would run it.
import { expect, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { makeRoom, send, watchForErrors } from '../lib/chat';
import { binaryUnderTest, copyAlone, Herald, startHerald, TEST_FLAGS } from '../lib/herald';
import { member, PASSWORD, signIn } from '../lib/people';

let herald: Herald;

test.beforeAll(async () => {
  herald = await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--sign-up', 'open'], {
    HERALD_GUESTS: 'false',
    HERALD_ROOM_MAKERS: 'members',
  });
});

test.afterAll(async () => {
  expect(await herald.stop()).toBe(0);
  fs.rmSync(herald.dir, { recursive: true, force: true });
});

/** The sidebar entry of a room. */
function roomLink(page: Page, room: string) {
  return page.locator(`.room[data-room="${room}"]`);
}

/** Opens `room` from the "go to room" box, as a person would. */
async function goToRoom(page: Page, room: string) {
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('room-input').press('Enter');
  await expect(page.getByTestId('room-name')).toHaveText(`# ${room}`);
}

test('what one device of a person reads, their other device no longer counts as unread', async ({ browser }) => {
  const laptop = await member(browser, herald, 'kim', 'Kim Lee');
  const ned = await member(browser, herald, 'ned', 'Ned Ray');
  const errors = [laptop, ned].map(watchForErrors);
  await makeRoom(laptop, 'news');
  // The laptop has #news open, and looks at #general while Ned writes there.
  await goToRoom(laptop, 'news');
  await goToRoom(laptop, 'general');
  await goToRoom(ned, 'news');
  await send(ned, 'the first news');
  await send(ned, 'the second news');
  await expect(roomLink(laptop, 'news').getByTestId('unread')).toHaveText('2');
  await expect(laptop).toHaveTitle('(2) # general · Herald');

  // Kim reads them on her phone.
  const phone = await (await browser.newContext()).newPage();
  errors.push(watchForErrors(phone));
  await phone.goto(`${herald.url}/sign-in?next=/r/news`);
  await signIn(phone, 'kim', PASSWORD);
  await expect(phone.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await phone.bringToFront();
  await expect(phone.locator('.message .body', { hasText: 'the second news' })).toBeVisible();

  // The laptop follows, without a reload.
  await expect(roomLink(laptop, 'news').getByTestId('unread')).toBeHidden();
  await expect(laptop).toHaveTitle('# general · Herald');

  // What comes after counts again on the laptop, and reading it there clears the phone's.
  await goToRoom(phone, 'general');
  await send(ned, 'the third news');
  await expect(roomLink(laptop, 'news').getByTestId('unread')).toHaveText('1');
  await expect(roomLink(phone, 'news').getByTestId('unread')).toHaveText('1');
  await laptop.bringToFront();
  await roomLink(laptop, 'news').getByRole('link').click();
  await expect(roomLink(phone, 'news').getByTestId('unread')).toBeHidden();
  expect(errors.flat()).toEqual([]);
});

test('a room a device has not opened counts what is new there, and opens where its person stopped reading', async ({ browser }) => {
  const laptop = await member(browser, herald, 'sam', 'Sam Fox');
  const ned = await member(browser, herald, 'nat', 'Nat Ames');
  const errors = [laptop, ned].map(watchForErrors);
  await makeRoom(laptop, 'desk');
  await goToRoom(laptop, 'desk');
  await goToRoom(ned, 'desk');
  await send(ned, 'read on the laptop');
  await expect(laptop.locator('.message .body', { hasText: 'read on the laptop' })).toBeVisible();
  await goToRoom(laptop, 'general');

  // Sam's tablet opens only #general: #desk is in its sidebar, counted by the server.
  const tablet = await (await browser.newContext()).newPage();
  errors.push(watchForErrors(tablet));
  await tablet.goto(`${herald.url}/sign-in?next=/r/general`);
  await signIn(tablet, 'sam', PASSWORD);
  await expect(tablet.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(roomLink(tablet, 'desk')).toBeVisible();
  await expect(roomLink(tablet, 'desk').getByTestId('unread')).toBeHidden();

  // Nat writes on: the tablet's count follows, live, with the tab's title.
  await send(ned, 'new one');
  await send(ned, 'new two');
  await expect(roomLink(tablet, 'desk').getByTestId('unread')).toHaveText('2');
  await expect(tablet).toHaveTitle('(2) # general · Herald');

  // Opened, it shows "New messages" where Sam stopped reading, on this device too.
  await roomLink(tablet, 'desk').getByRole('link').click();
  const lines = tablet.locator('.messages > li:not(.notice):not(.day)');
  await expect(lines).toHaveText([/read on the laptop/, /^New messages/, /new one/, /new two/]);
  await expect(tablet).toHaveTitle('# desk · Herald');
  expect(errors.flat()).toEqual([]);
});

test('mark unread from a message, mark a room read, mark all as read: on every device', async ({ browser }) => {
  const laptop = await member(browser, herald, 'liv', 'Liv Orr');
  const ned = await member(browser, herald, 'ike', 'Ike Tan');
  const errors = [laptop, ned].map(watchForErrors);
  await makeRoom(laptop, 'shop');
  await makeRoom(laptop, 'yard');
  for (const room of ['shop', 'yard']) {
    await goToRoom(ned, room);
    await goToRoom(laptop, room);
  }
  await goToRoom(ned, 'shop');
  for (const words of ['shop one', 'shop two', 'shop three']) await send(ned, words);
  await goToRoom(laptop, 'shop');
  await expect(laptop.locator('.message .body', { hasText: 'shop three' })).toBeVisible();

  // Liv's phone has #general open.
  const phone = await (await browser.newContext()).newPage();
  errors.push(watchForErrors(phone));
  await phone.goto(`${herald.url}/sign-in?next=/r/general`);
  await signIn(phone, 'liv', PASSWORD);
  await expect(phone.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(roomLink(phone, 'shop')).toBeVisible();
  await expect(roomLink(phone, 'shop').getByTestId('unread')).toBeHidden();

  // On the laptop, "Mark unread" from the second message: the rule goes above it, the room counts
  // two again here and on the phone, and it stays unread while she looks at it.
  const second = laptop.locator('.message', { hasText: 'shop two' });
  await second.hover();
  await second.getByTestId('more').click();
  await second.getByTestId('unread-action').click();
  const lines = laptop.locator('.messages > li:not(.notice):not(.day)');
  await expect(lines).toHaveText([/shop one/, /^New messages/, /shop two/, /shop three/]);
  await expect(roomLink(laptop, 'shop').getByTestId('unread')).toHaveText('2');
  await expect(roomLink(phone, 'shop').getByTestId('unread')).toHaveText('2');
  await laptop.waitForTimeout(2500); // longer than a tab waits between telling what it read
  await expect(roomLink(phone, 'shop').getByTestId('unread')).toHaveText('2');

  // "Mark as read" on the rule: gone here, and on the phone.
  await laptop.getByTestId('mark-read').click();
  await expect(laptop.getByTestId('news')).toHaveCount(0);
  await expect(roomLink(phone, 'shop').getByTestId('unread')).toBeHidden();

  // Ike writes in both rooms while Liv looks at #general on the laptop; the phone marks all read.
  await goToRoom(laptop, 'general');
  await send(ned, 'shop four');
  await goToRoom(ned, 'yard');
  await send(ned, 'yard one');
  await expect(roomLink(laptop, 'shop').getByTestId('unread')).toHaveText('1');
  await expect(roomLink(laptop, 'yard').getByTestId('unread')).toHaveText('1');
  await expect(roomLink(phone, 'yard').getByTestId('unread')).toHaveText('1');
  await phone.getByTestId('read-all').click();
  await expect(phone.getByTestId('read-all')).toBeHidden();
  for (const room of ['shop', 'yard']) {
    await expect(roomLink(laptop, room).getByTestId('unread')).toBeHidden();
    await expect(roomLink(phone, room).getByTestId('unread')).toBeHidden();
  }
  await expect(laptop).toHaveTitle('# general · Herald');
  expect(errors.flat()).toEqual([]);
});

test('a mention in another room is counted apart, stronger, and listed in Mentions with a link to it', async ({ browser }) => {
  const kay = await member(browser, herald, 'kay', 'Kay Dunn');
  const lou = await member(browser, herald, 'lou', 'Lou Park');
  const errors = [kay, lou].map(watchForErrors);
  await makeRoom(kay, 'lab');
  await goToRoom(kay, 'lab');
  await goToRoom(kay, 'general');
  await goToRoom(lou, 'lab');
  await send(lou, 'hey @kay, the results are in');
  await send(lou, 'and the plots');

  // Two unread in #lab, one of them calling on Kay: the badge says so, in red.
  const badge = roomLink(kay, 'lab').getByTestId('unread');
  await expect(badge).toHaveText('2');
  await expect(badge).toHaveClass(/mentioned/);
  await expect(badge).toHaveAttribute('data-mentions', '1');
  await expect(roomLink(kay, 'lab').getByRole('link')).toHaveAccessibleName('# lab, 2 unread, 1 mentioning you, 2 people here');
  await kay.screenshot({ path: test.info().outputPath('mention-badge.png') });

  // Mentions lists it; its link opens the room at it.
  await kay.getByTestId('mentions').click();
  await expect(kay).toHaveTitle('Mentions · Herald');
  const listed = kay.getByTestId('mention');
  await expect(listed).toHaveCount(1);
  await expect(listed).toContainText('hey @kay, the results are in');
  await expect(listed).toContainText('# lab');
  await listed.getByRole('link').click();
  await expect(kay.getByTestId('room-name')).toHaveText('# lab');
  await expect(kay.locator('.message .body', { hasText: 'the results are in' })).toBeInViewport();
  // Called on by her handle (her name is Kay Dunn), the message stands out for her; so does one
  // that arrives now; the other does not.
  await expect(kay.locator('.message', { hasText: 'the results are in' })).toHaveClass(/mention/);
  await expect(kay.locator('.message', { hasText: 'and the plots' })).not.toHaveClass(/mention/);
  await send(lou, 'one more thing, @KAY.');
  await expect(kay.locator('.message', { hasText: 'one more thing' })).toHaveClass(/mention/);
  // Read now: on her other devices too, nothing is left.
  await expect(roomLink(kay, 'lab').getByTestId('unread')).toBeHidden();
  expect(errors.flat()).toEqual([]);
});

test('@ in the message box completes the room\'s people by the keyboard, and the mention reaches them', async ({ browser }) => {
  const max = await member(browser, herald, 'max', 'Max Hale');
  const mia = await member(browser, herald, 'mia', 'Mia Stone');
  const errors = [max, mia].map(watchForErrors);
  await makeRoom(max, 'dock');
  await goToRoom(mia, 'dock');
  await goToRoom(mia, 'general');
  await goToRoom(max, 'dock');
  const box = max.getByTestId('composer-input');
  await box.pressSequentially('thanks @mi');
  const options = max.getByTestId('mention-option');
  await expect(options).toHaveText(['@miaMia Stone']);
  await expect(options.first()).toHaveAttribute('aria-selected', 'true');
  // Enter puts the handle in (it does not send).
  await box.press('Enter');
  await expect(box).toHaveValue('thanks @mia ');
  await expect(max.getByTestId('mention-options')).toHaveCount(0);
  // By a word of the name too; Escape closes the list and leaves the text.
  await box.pressSequentially('and @ston');
  await expect(options).toHaveText(['@miaMia Stone']);
  await box.press('Escape');
  await expect(max.getByTestId('mention-options')).toHaveCount(0);
  await expect(box).toHaveValue('thanks @mia and @ston');
  await box.fill('');
  await box.pressSequentially('over to @mia');
  await expect(options).toHaveCount(1);
  await box.press('Tab');
  await box.press('Enter');
  await expect(max.locator('.message .body', { hasText: 'over to @mia' })).toBeVisible();
  // Mia, on #general, is told: her #dock badge counts the mention.
  await expect(roomLink(mia, 'dock').getByTestId('unread')).toHaveAttribute('data-mentions', '1');
  expect(errors.flat()).toEqual([]);
});
