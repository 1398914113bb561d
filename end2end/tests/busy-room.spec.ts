// A tab left open on a busy room: it keeps a bounded number of messages while its reader follows the
// newest, loses none of them (scrolling up loads what was let go), and never trims under a reader
// who is further up. Its own Herald: one socket sends hundreds of messages, past the shared
// server's burst limit.
import { expect, test } from '../lib/test';
import { bodies, flood, openChat, watchForErrors } from '../lib/chat';
import { Herald, TEST_FLAGS, binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

/** What the page keeps at most while following (app/src/state.rs, `KEPT_LINES`). */
const KEPT_LINES = 500;

let herald: Herald;

test.beforeAll(async () => {
  herald = await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--rate-burst', '2000']);
});

test.afterAll(async () => {
  expect(await herald.stop()).toBe(0);
});

test('a tab following a busy room keeps a bounded number of messages and loses none', async ({ browser }) => {
  const url = `${herald.url}/r/busy`;
  const reader = await (await browser.newContext()).newPage();
  const errors = watchForErrors(reader);
  await openChat(reader, url, 'Reader');
  await expect(reader.getByTestId('people')).toHaveText('Reader');
  const writer = await (await browser.newContext()).newPage();
  await openChat(writer, url, 'Writer');

  await flood(writer, 'busy', 1, 600);
  const newest = reader.locator('.message', { has: reader.locator('.body', { hasText: /^m 600$/ }) });
  await expect(newest.locator('.author')).toHaveText('Writer');
  await expect(newest).toBeInViewport();
  const shown = await bodies(reader).count();
  expect(shown).toBeLessThanOrEqual(KEPT_LINES);
  expect(shown).toBeGreaterThanOrEqual(KEPT_LINES / 2);
  await expect(reader.getByTestId('jump')).toBeHidden();

  // Scrolling up brings back what was let go, in order, none missing.
  const seqs = () =>
    reader.locator('.messages .message').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
  const scroller = reader.getByTestId('scroller');
  await expect(async () => {
    await scroller.evaluate((el) => el.scrollTo(0, 0));
    expect((await seqs())[0]).toBe(1);
  }).toPass();
  expect(await seqs()).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));

  // Up there, nothing is trimmed under the reader's eyes: what comes is counted below instead.
  await flood(writer, 'busy', 601, 100);
  await expect(reader.getByTestId('jump')).toHaveText('100 new messages ↓');
  expect(await seqs()).toEqual(Array.from({ length: 700 }, (_, i) => i + 1));
  expect(errors).toEqual([]);
});
