// Where a person has read, on every device (docs/READING.md): one person signed in on a laptop and
// a phone; what the phone reads, the laptop no longer counts as unread — in the sidebar and in the
// tab's title — within a moment, without a reload. A server of its own, with accounts, as an
// operator would run it.
import { expect, Page, test } from '@playwright/test';
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
