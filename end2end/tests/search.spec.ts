// Search (docs/SEARCH.md): from the link under the room list, a person finds a message by its words
// — an old one, far above what the room first shows, a Japanese one by a two-character word — on a
// page of results with the words marked; narrows it to a room and a person; and a result opens the
// room at that message. A server of its own, with accounts, as an operator would run it.
import { expect, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { flood, makeRoom, send, watchForErrors } from '../lib/chat';
import { binaryUnderTest, copyAlone, Herald, startHerald, TEST_FLAGS } from '../lib/herald';
import { member, signUp } from '../lib/people';

let herald: Herald;

test.beforeAll(async () => {
  herald = await startHerald(
    copyAlone(binaryUnderTest()),
    [...TEST_FLAGS, '--sign-up', 'open', '--rate-per-sec', '1000', '--rate-burst', '1000'],
    { HERALD_GUESTS: 'false', HERALD_ROOM_MAKERS: 'members' },
  );
});

test.afterAll(async () => {
  expect(await herald.stop()).toBe(0);
  fs.rmSync(herald.dir, { recursive: true, force: true });
});

async function goToRoom(page: Page, room: string) {
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('room-input').press('Enter');
  await expect(page.getByTestId('room-name')).toHaveText(`# ${room}`);
}

/**
 * Searches from the sidebar's link, and tries again until the index has it (it follows a moment
 * behind). Each try is bounded step by step, and a search that never finds it fails with what its
 * last try saw (`toPass` said only that it ran out of time, once in CI: which step, nobody knows).
 */
async function search(page: Page, words: string, results: number) {
  const step = { timeout: 5000 };
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      await page.goto(`${herald.url}/r/general`, step);
      await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true', step);
      await page.getByTestId('search').click(step);
      await page.getByTestId('search-words').fill(words, step);
      await page.getByTestId('search-words').press('Enter', step);
      await expect(page).toHaveURL(/\/search\?q=/, step);
      await expect(page).toHaveTitle('Search · Herald', step);
      await expect(page.getByTestId('search-result')).toHaveCount(results, { timeout: 1000 });
      return;
    } catch (e) {
      if (Date.now() > until) throw e;
    }
  }
}

test('a person finds an old message by its words and jumps to it; Japanese words too; filters narrow it', async ({ browser }) => {
  const ada = await member(browser, herald, 'ada', 'Ada Byron');
  const bea = await member(browser, herald, 'bea', 'Bea Quinn');
  const errors = [ada, bea].map(watchForErrors);
  await makeRoom(ada, 'finance');
  await goToRoom(ada, 'finance');
  await send(ada, 'the quarterly numbers are in');
  await flood(ada, 'finance', 0, 80);
  await send(ada, '明日東京で会議があります');
  await goToRoom(bea, 'general');
  await send(bea, 'quarterly party on Friday');

  // Bea finds both, newest first, the word marked.
  await search(bea, 'quarterly', 2);
  const results = bea.getByTestId('search-result');
  await expect(results.nth(0)).toContainText('quarterly party on Friday');
  await expect(results.nth(0)).toContainText('# general');
  await expect(results.nth(1)).toContainText('# finance');
  await expect(results.nth(1)).toContainText('Ada Byron');
  await expect(results.nth(1).locator('mark')).toHaveText('quarterly');

  // Narrowed to a room, then to a person.
  await bea.getByText('Narrow it down').click();
  await bea.getByTestId('search-room').fill('finance');
  await bea.getByTestId('search-go').click();
  await expect(results).toHaveCount(1);
  await bea.getByTestId('search-room').fill('');
  await bea.getByTestId('search-from').fill('@bea');
  await bea.getByTestId('search-go').click();
  await expect(results).toHaveCount(1);
  await expect(results.nth(0)).toContainText('quarterly party on Friday');

  // A two-character Japanese word, in a sentence written without spaces.
  await search(bea, '会議', 1);
  await expect(results.nth(0).locator('mark')).toHaveText('会議');

  // The old message opens in its room, loaded around it, far above the room's latest 50.
  await search(bea, 'quarterly', 2);
  await results.nth(1).getByRole('link').click();
  await expect(bea.getByTestId('room-name')).toHaveText('# finance');
  await expect(bea.locator('.message .body', { hasText: 'the quarterly numbers are in' })).toBeInViewport();
  expect(errors.flat()).toEqual([]);
});

test("the search and mentions pages tell a message's time in the reader's zone, as the chat does", async ({ browser }) => {
  const cy = await (await browser.newContext({ timezoneId: 'Asia/Tokyo' })).newPage();
  await signUp(cy, herald, 'cy', 'Cy Tan');
  const dee = await member(browser, herald, 'dee', 'Dee Moss');
  const errors = [cy, dee].map(watchForErrors);
  await send(dee, '@cy meet at the zebra crossing');
  await search(cy, 'zebra', 1);
  const time = cy.getByTestId('search-result').locator('time');
  const sent = Date.parse((await time.getAttribute('datetime')) ?? '');
  const hhmm = new Date(sent).toLocaleString('en-GB', { timeZone: 'Asia/Tokyo', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  await expect(time).toHaveText(hhmm);
  // The full date on hovering it.
  await expect(time).toHaveAttribute('title', /\d{4}/);
  await cy.goto(`${herald.url}/mentions`);
  await expect(cy.getByTestId('mention').locator('time')).toHaveText(hhmm);
  // The chat says the same of it.
  await cy.getByTestId('mention').getByRole('link').click();
  await expect(cy.locator('.message', { hasText: 'meet at the zebra crossing' }).locator('time')).toHaveText(hhmm);
  expect(errors.flat()).toEqual([]);
});

test("a search's dates are the reader's own days", async ({ browser }) => {
  const eve = await member(browser, herald, 'eve', 'Eve Ray');
  await send(eve, 'the yellow submarine surfaced');
  const sent = Date.parse(
    (await eve.locator('.message[data-seq]', { hasText: 'yellow submarine' }).locator('time').getAttribute('datetime')) ?? '',
  );
  // A reader whose day is not UTC's when it was sent: UTC+14 from 10:00 UTC, UTC−12 before.
  const east = new Date(sent).getUTCHours() >= 10;
  const theirDay = (shift: number) =>
    new Date(sent + ((east ? 14 : -12) + 24 * shift) * 3_600_000).toISOString().slice(0, 10);
  const fox = await (await browser.newContext({ timezoneId: east ? 'Pacific/Kiritimati' : 'Etc/GMT+12' })).newPage();
  await signUp(fox, herald, 'fox', 'Fox Hale');
  const errors = [eve, fox].map(watchForErrors);
  await search(fox, 'submarine', 1);
  // On or after (east) / on or before (west) their day of it: found — on UTC's days it would not be.
  const bound = fox.getByTestId(east ? 'search-after' : 'search-before');
  const results = fox.getByTestId('search-result');
  await fox.getByText('Narrow it down').click();
  await bound.fill(theirDay(0));
  await fox.getByTestId('search-go').click();
  await expect(results).toHaveCount(1);
  // A day further on (east) / back (west): not.
  await bound.fill(theirDay(east ? 1 : -1));
  await fox.getByTestId('search-go').click();
  await expect(fox.getByTestId('search-words')).toHaveValue('submarine');
  await expect(fox).toHaveURL(new RegExp(`${east ? 'after' : 'before'}=${theirDay(east ? 1 : -1)}`));
  await expect(results).toHaveCount(0);
  expect(errors.flat()).toEqual([]);
});
