// What a person meets in their first minute, on a laptop and a phone, in light and dark: the app stays
// put whatever scrolls, rooms and names behave, and what arrived meanwhile is marked. Its own Herald,
// with an API token, so a room fills with a screenful in one go.
import { Browser, BrowserContextOptions, expect, Page, test } from '../lib/test';
import { backOnline, makeRoom, openChat, send, stored, uniqueRoom, watchForErrors } from '../lib/chat';
import { Herald, TEST_FLAGS, binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

const TOKEN = 'e2e-first-minute';
let herald: Herald;

test.beforeAll(async () => {
  herald = await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--rate-burst', '500', '--api-rate-burst', '2000'], {
    HERALD_API_TOKENS: TOKEN,
  });
});

test.afterAll(async () => {
  expect(await herald.stop()).toBe(0);
});

/** Publishes `bodies` into `room` as a program would, as `author`; waits for each to be stored. */
async function publish(room: string, bodies: string[], author = 'Deploy bot') {
  for (const body of bodies) {
    const response = await fetch(`${herald.url}/api/rooms/${room}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ body, author_name: author }),
    });
    expect(response.status).toBe(201);
  }
}

const LAPTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };
const PHONE: BrowserContextOptions = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 3,
  isMobile: true,
  hasTouch: true,
};

async function person(browser: Browser, options: BrowserContextOptions, path: string, name?: string): Promise<Page> {
  const page = await (await browser.newContext(options)).newPage();
  await openChat(page, `${herald.url}${path}`, name);
  return page;
}

/** How far the document itself is scrolled, and how much taller than the window it is. */
async function pageScroll(page: Page): Promise<{ top: number; excess: number }> {
  return page.evaluate(() => {
    const root = document.scrollingElement ?? document.documentElement;
    return { top: root.scrollTop + window.scrollY, excess: root.scrollHeight - window.innerHeight };
  });
}

async function expectAppInPlace(page: Page, what: string) {
  expect(await pageScroll(page), what).toEqual({ top: 0, excess: 0 });
  // The app's top bar and composer are still on screen.
  await expect(page.getByTestId('room-name'), what).toBeInViewport();
  await expect(page.getByTestId('composer-input'), what).toBeInViewport();
}

for (const [size, options] of [
  ['laptop', LAPTOP],
  ['phone', PHONE],
] as const) {
  for (const scheme of ['light', 'dark'] as const) {
    test(`${size}, ${scheme}: scrolling past the newest message moves nothing, whatever scrolls`, async ({
      browser,
    }) => {
      const room = uniqueRoom('still');
      await publish(
        room,
        Array.from({ length: 60 }, (_, i) => `line ${i + 1} of a conversation longer than a screen`),
      );
      const page = await person(browser, { ...options, colorScheme: scheme }, `/r/${room}`);
      const errors = watchForErrors(page);
      await expect(page.locator('.message .body', { hasText: 'line 60 of' })).toBeInViewport();
      await expectAppInPlace(page, 'at first');

      // The wheel over the list (already at the newest), the sidebar and the people panel.
      const wheelOver = async (selector: string) => {
        const box = await page.locator(selector).first().boundingBox();
        if (!box) throw new Error(`${selector} is not on screen`);
        await page.mouse.move(box.x + box.width / 2, box.y + Math.min(box.height / 2, 40));
        for (let i = 0; i < 4; i++) await page.mouse.wheel(0, 400);
      };
      await wheelOver('[data-testid=scroller]');
      await expectAppInPlace(page, 'the wheel over the list');
      await wheelOver('.sidebar');
      await expectAppInPlace(page, 'the wheel over the sidebar');
      if (size === 'laptop') {
        await wheelOver('.people');
      } else {
        await page.getByTestId('people-toggle').click();
        await wheelOver('.people');
        await page.getByTestId('people-toggle').click();
      }
      await expectAppInPlace(page, 'the wheel over the people panel');

      // A click on a message, then the keys that scroll.
      await page.locator('.message .body', { hasText: 'line 59 of' }).click();
      for (const key of ['PageDown', 'Space', 'End', 'ArrowDown']) {
        await page.keyboard.press(key);
        await page.keyboard.press(key);
        await expectAppInPlace(page, `${key} after a click on a message`);
      }

      // Alt+↓ in the composer.
      await page.getByTestId('composer-input').focus();
      await page.keyboard.press('Alt+ArrowDown');
      await page.keyboard.press('Alt+ArrowDown');
      await expectAppInPlace(page, 'Alt+↓ in the composer');
      expect(errors).toEqual([]);
    });
  }
}

/** The rooms in the sidebar, in order. */
function sidebarRooms(page: Page): Promise<string[]> {
  return page.locator('.room').evaluateAll((els) => els.map((el) => (el as HTMLElement).dataset.room ?? ''));
}

/** Goes to `room` with "go to room…", as a person does. */
async function goTo(page: Page, room: string) {
  await makeRoom(page, room);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('room-input').press('Enter');
  await expect(page.getByTestId('room-name')).toHaveText(`# ${room}`);
}

test('what arrived while the phone was offline is marked with a rule, in the room being read', async ({
  browser,
}) => {
  const room = uniqueRoom('away');
  const ann = await person(browser, PHONE, `/r/${room}`, 'Ann');
  const bob = await person(browser, LAPTOP, `/r/${room}`, 'Bob');
  const errors = watchForErrors(ann);
  await send(bob, 'before the drop');
  await expect(ann.locator('.message .body', { hasText: 'before the drop' })).toBeVisible();
  await expect(ann.getByTestId('news')).toHaveCount(0);

  await ann.context().setOffline(true);
  await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'offline');
  for (let i = 1; i <= 8; i++) await send(bob, `while away ${i}`);
  await ann.context().setOffline(false);
  await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(ann.locator('.message .body', { hasText: 'while away 8' })).toBeVisible();
  // One rule, right above the first message that came while she was away.
  await expect(ann.getByTestId('news')).toHaveCount(1);
  await expect(ann.locator('[data-testid=news] + li.message .body')).toHaveText('while away 1');
  // What comes live afterwards does not move it.
  await send(bob, 'live again');
  await expect(ann.locator('.message .body', { hasText: 'live again' })).toBeVisible();
  await expect(ann.getByTestId('news')).toHaveCount(1);
  await expect(ann.locator('[data-testid=news] + li.message .body')).toHaveText('while away 1');
  // A drop during which nothing was said draws no rule: writing took the old one away.
  await send(ann, 'back');
  await expect(ann.getByTestId('news')).toHaveCount(0);
  await ann.context().setOffline(true);
  await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'offline');
  await backOnline(ann, room);
  await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await send(bob, 'after a quiet drop');
  await expect(ann.locator('.message .body', { hasText: 'after a quiet drop' })).toBeVisible();
  await expect(ann.getByTestId('news')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('what is written while the phone rejoins comes live, with no rule above it', async ({ browser }) => {
  const room = uniqueRoom('rejoin');
  const ann = await (await browser.newContext(PHONE)).newPage();
  // Ann's socket, seen from between the page and the server: the test drops it, and holds the
  // room's `presence` (which ends a rejoin's replay) while Bob writes. The server lets what was
  // stored during a join through before that `presence`: it is live, though it comes first.
  let holding = false;
  const held: (string | Buffer)[] = [];
  let drop = () => {};
  let release = () => {};
  await ann.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((frame) => server.send(frame));
    server.onMessage((frame) => {
      const { type, room: of } = JSON.parse(String(frame));
      if (holding && type === 'presence' && of === room) held.push(frame);
      else ws.send(frame);
    });
    drop = () => {
      server.close();
      ws.close({ code: 1001, reason: 'going away' });
    };
    release = () => held.splice(0).forEach((frame) => ws.send(frame));
  });
  await openChat(ann, `${herald.url}/r/${room}`, 'Ann');
  const bob = await person(browser, LAPTOP, `/r/${room}`, 'Bob');
  const errors = watchForErrors(ann);
  await send(bob, 'before the drop');
  await expect(ann.locator('.message .body', { hasText: 'before the drop' })).toBeVisible();

  holding = true;
  drop();
  // Rejoined: its replay (nothing: nothing was said) is over, its `presence` held here.
  await expect.poll(() => held.length).toBeGreaterThan(0);
  await send(bob, 'just as Ann is back');
  await expect(ann.locator('.message .body', { hasText: 'just as Ann is back' })).toBeVisible();
  await expect(ann.getByTestId('news')).toHaveCount(0);
  // The `presence` comes: what came before it stays as it was, live.
  holding = false;
  release();
  await send(bob, 'and after');
  await expect(ann.locator('.message .body', { hasText: 'and after' })).toBeVisible();
  await expect(ann.getByTestId('news')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('"go to room" turns "Design Team" into #design-team and says so; the API takes names by the same rule', async ({
  browser,
}) => {
  const page = await person(browser, LAPTOP, '/');
  const box = page.getByTestId('room-input');
  const words = uniqueRoom('Design Team').replace(/-/g, ' ');
  const room = words.toLowerCase().replace(/ /g, '-');
  await makeRoom(page, room);
  await box.fill(words);
  // Said before submitting, beside the field, never the browser's "match the requested format".
  await expect(page.getByTestId('room-hint')).toHaveText(`Goes to #${room}`);
  expect(await box.evaluate((el) => (el as HTMLInputElement).checkValidity())).toBe(true);
  await box.press('Enter');
  await expect(page).toHaveURL(new RegExp(`/r/${room}$`));
  await expect(page.getByTestId('room-name')).toHaveText(`# ${room}`);
  await expect(page.getByTestId('room-hint')).toBeHidden();

  // A program writes the room as a person would: the same room.
  const post = (path: string) =>
    fetch(`${herald.url}/api/rooms/${path}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ body: `into ${path}` }),
    });
  const published = await post(encodeURIComponent(words));
  expect(published.status).toBe(201);
  expect((await published.json()).room).toBe(room);
  await expect(page.locator('.message .body', { hasText: 'into ' })).toHaveCount(1);
  const general = await post('General');
  expect(general.status).toBe(201);
  expect((await general.json()).room).toBe('general');
  const refused = await post('no%2Fslashes');
  expect(refused.status).toBe(400);
  expect((await refused.json()).error.message).toMatch(/spaces become -/);
  // And without the script, the plain form goes to the same room.
  const plain = await (await browser.newContext({ javaScriptEnabled: false, storageState: await page.context().storageState() })).newPage();
  await plain.goto(`${herald.url}/r?room=${encodeURIComponent(words)}`);
  await expect(plain).toHaveURL(new RegExp(`/r/${room}$`));
});

test('the sidebar keeps one order in every tab, and unread and people here never look alike', async ({ browser }) => {
  const prefix = uniqueRoom('order');
  const [a, b, c] = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
  const ann = await person(browser, LAPTOP, `/r/${c}`, 'Ann');
  await goTo(ann, a);
  await goTo(ann, b);
  const bob = await person(browser, LAPTOP, `/r/${b}`, 'Bob');
  await goTo(bob, c);
  const ours = async (page: Page) => (await sidebarRooms(page)).filter((r) => r === 'general' || r.startsWith(prefix));
  // general first, then by name, whatever order each tab opened them in.
  await expect.poll(() => ours(ann)).toEqual(['general', a, b, c]);
  await expect.poll(() => ours(bob)).toEqual(['general', a, b, c]);

  // Bob speaks in c while Ann reads b: c gets an unread badge, and the order stays.
  await send(bob, 'news in c');
  const link = ann.locator(`.room[data-room="${c}"] a`);
  await expect(link.getByTestId('unread')).toHaveText('1');
  await expect(link).toHaveAccessibleName(new RegExp(`^# ${c}, 1 unread message, 2 people here$`));
  await expect(ann.locator(`.room[data-room="${a}"] a`)).toHaveAccessibleName(
    new RegExp(`^# ${a}, 1 person here$`),
  );
  expect(await ours(ann)).toEqual(['general', a, b, c]);
  // The two numbers look different: a filled badge, and a muted count after a person icon.
  const looks = await link.evaluate((el) => {
    const unread = getComputedStyle(el.querySelector('[data-testid=unread]')!);
    const here = el.querySelector('[data-testid=member-count]')!;
    return {
      unreadFilled: unread.backgroundColor !== 'rgba(0, 0, 0, 0)',
      hereFilled: getComputedStyle(here).backgroundColor !== 'rgba(0, 0, 0, 0)',
      hereIcon: getComputedStyle(here, '::before').maskImage.includes('svg'),
      titleBold: Number(getComputedStyle(el.querySelector('.room-title')!).fontWeight) >= 700,
    };
  });
  expect(looks).toEqual({ unreadFilled: true, hereFilled: false, hereIcon: true, titleBold: true });
});

test('comings and goings stay in the people panel; a change of name is one line', async ({ browser }) => {
  const room = uniqueRoom('quiet');
  const ann = await person(browser, LAPTOP, `/r/${room}`, 'Ann');
  const bob = await person(browser, LAPTOP, `/r/${room}`, 'Bob');
  await expect(ann.getByTestId('people').locator('li')).toHaveText(['Ann', 'Bob']);
  // Reloads, a hop to another room and back, a tab closed and opened again.
  for (let i = 0; i < 2; i++) {
    await bob.reload();
    await expect(bob.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  }
  await goTo(bob, `${room}-other`);
  await bob.locator(`.room[data-room="${room}"] a`).click();
  await expect(bob.getByTestId('room-name')).toHaveText(`# ${room}`);
  await bob.close();
  const again = await bob.context().newPage();
  await openChat(again, `${herald.url}/r/${room}`);
  await send(again, 'still here');
  await expect(ann.locator('.message .body', { hasText: 'still here' })).toBeVisible();
  await expect(ann.getByTestId('notice')).toHaveCount(0);
  await expect(ann.locator('.messages > li:not(.day)')).toHaveText([/still here/]);

  await again.getByTestId('me').click();
  await again.getByTestId('rename-input').fill('Robert');
  await again.getByRole('button', { name: 'Change name' }).click();
  await expect(again.getByTestId('me')).toHaveText('Robert');
  // He speaks at once, perhaps before the room's presence says who he is now: the line goes where
  // it happened, before his first words under the new name, whichever reaches Ann first.
  await expect(again.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await send(again, 'said as Robert');
  await expect(ann.getByTestId('people').locator('li')).toHaveText(['Ann', 'Robert']);
  await expect(ann.getByTestId('notice')).toHaveText(['Bob is now Robert']);
  await expect(ann.locator('.messages > li:not(.day)')).toHaveText([/still here/, 'Bob is now Robert', /said as Robert/]);
  // Robert himself is not told who he was.
  await expect(again.getByTestId('notice')).toHaveCount(0);
});

test('on a phone with four rooms every room and "go to room" can be reached, and the row says it scrolls', async ({
  browser,
}) => {
  const prefix = uniqueRoom('chips');
  const rooms = [1, 2, 3, 4].map((n) => `${prefix}-room-${n}`);
  const phone = await person(browser, PHONE, `/r/${rooms[0]}`);
  for (const room of rooms.slice(1)) await goTo(phone, room);
  // The field is on screen, whole, and wide enough to type in.
  const input = phone.getByTestId('room-input');
  await expect(input).toBeInViewport({ ratio: 1 });
  expect((await input.boundingBox())!.width).toBeGreaterThanOrEqual(100);
  // The row of chips fades out where more are hidden.
  const list = phone.getByTestId('room-list');
  await list.evaluate((el) => (el.scrollLeft = 0));
  await expect(list).toHaveClass(/more-after/);
  expect(await list.evaluate((el) => getComputedStyle(el).maskImage)).toContain('gradient');
  // Every chip can be scrolled to and tapped.
  for (const room of ['general', ...rooms]) {
    const chip = phone.locator(`.room[data-room="${room}"] a`);
    await chip.scrollIntoViewIfNeeded();
    await chip.tap();
    await expect(phone.getByTestId('room-name')).toHaveText(`# ${room}`);
  }
  await expect(list).toHaveClass(/more-before/);
  // However far the row is scrolled, Search and Mentions stay in sight before it.
  for (const id of ['search', 'mentions']) await expect(phone.getByTestId(id)).toBeInViewport({ ratio: 1 });
  expect(await pageScroll(phone)).toEqual({ top: 0, excess: 0 });
});

test('reading back by keyboard: PageUp from the box, the list a Tab stop, focus kept after "Older messages"', async ({
  browser,
}) => {
  const room = uniqueRoom('keys');
  await publish(
    room,
    Array.from({ length: 400 }, (_, i) => `history ${i + 1}`),
  );
  const page = await person(browser, LAPTOP, `/r/${room}`);
  const scroller = page.getByTestId('scroller');
  const top = () => scroller.evaluate((el) => el.scrollTop);
  await expect(page.getByTestId('composer-input')).toBeFocused();
  const start = await top();
  await page.keyboard.press('PageUp');
  await expect.poll(top).toBeLessThan(start);
  await expect(page.getByTestId('composer-input')).toBeFocused();
  await page.keyboard.press('PageDown');
  await expect.poll(top).toBeGreaterThanOrEqual(start - 1);

  // The list is a Tab stop (right after "go to room"), announced as a log; PageUp and End move
  // through it.
  await expect(scroller).toHaveAttribute('role', 'log');
  await page.getByTestId('room-input').focus();
  await page.keyboard.press('Tab');
  await expect(scroller).toBeFocused();
  const bottom = await top();
  await page.keyboard.press('PageUp');
  await expect.poll(top).toBeLessThan(bottom);
  await page.keyboard.press('End');
  await expect.poll(top).toBeGreaterThanOrEqual(bottom - 1);

  // "Older messages" by keyboard: reaching it loads the page before (as scrolling up does), and
  // the focus goes to what was loaded, just above where the reader was, not to the page.
  const older = page.getByTestId('older');
  await expect(older).toHaveText('Older messages');
  const oldest = Number(await page.locator('.messages li.message').first().getAttribute('data-seq'));
  await older.focus();
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return { tag: el?.tagName, seq: Number(el?.dataset.seq ?? 'NaN') };
    });
  await expect.poll(focused).toEqual({ tag: 'LI', seq: oldest - 1 });
  // And reading back goes on from there.
  await page.keyboard.press('End');
  await expect.poll(() => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight)).toBeLessThan(2);
});

test('a run by one author is one group; days are divided, the same on the server page and after hydration', async ({
  browser,
}) => {
  const room = uniqueRoom('dense');
  await publish(
    room,
    Array.from({ length: 12 }, (_, i) => `bot line ${i + 1}`),
  );
  const page = await person(browser, LAPTOP, `/r/${room}`, 'Ann');
  const errors = watchForErrors(page);
  await send(page, 'mine after the bot');
  const lines = page.locator('.messages li.message:not(.pending)');
  await expect(lines).toHaveCount(13);
  // One header for the twelve bot lines, one for Ann.
  await expect(page.locator('.messages li.message:not(.continued)')).toHaveCount(2);
  await expect(page.locator('.messages .author:visible')).toHaveText(['Deploy bot', 'Ann']);
  // One divider, for today, above the first line.
  await expect(page.getByTestId('day')).toHaveText(['Today']);
  await expect(page.locator('[data-testid=day] + li.message .body')).toHaveText('bot line 1');
  // A continuing line's time shows on hover, with the full date and time in its title.
  const fifth = page.locator('.message', { hasText: 'bot line 5' });
  await expect(fifth.locator('time')).toBeHidden();
  await fifth.hover();
  await expect(fifth.locator('time')).toBeVisible();
  await expect(fifth.locator('time')).toHaveAttribute('title', /^\w+day, \w+ \d{1,2}, \d{4} at \d{2}:\d{2} [AP]M$/);
  // By keyboard too: the message with the focus shows its time, and the full date beside it.
  const sixth = page.locator('.message', { hasText: 'bot line 6' });
  await sixth.focus();
  await expect(sixth.locator('time')).toBeVisible();
  const shown = await sixth
    .locator('time')
    .evaluate((el) => getComputedStyle(el, '::after').content);
  expect(shown).toMatch(/^" · \w+day, \w+ \d{1,2}, \d{4} at \d{2}:\d{2} [AP]M"$/);

  // The server's page (no script): the same groups, no divider (it cannot know the reader's zone).
  const plain = await (
    await browser.newContext({ javaScriptEnabled: false, storageState: await page.context().storageState() })
  ).newPage();
  await plain.goto(`${herald.url}/r/${room}`);
  await expect(plain.locator('.messages li.message')).toHaveCount(13);
  await expect(plain.locator('.messages li.message:not(.continued)')).toHaveCount(2);
  await expect(plain.getByTestId('day')).toHaveCount(0);
  await expect(plain.locator('.message', { hasText: 'bot line 5' }).locator('time')).toHaveText(/ UTC$/);
  expect(errors).toEqual([]);
});

test('own messages and mentions are marked the same on a page loaded afresh, before and after the wasm, as live', async ({
  browser,
}) => {
  // The server renders every row alike for every reader (it keeps one page per room state); the
  // page marks the reader's own rows and mentions itself (app/src/early.js), as the wasm does live.
  const room = uniqueRoom('marks');
  const mary = await person(browser, LAPTOP, `/r/${room}`, 'Mary Jane');
  const errors = watchForErrors(mary);
  const bob = await person(browser, LAPTOP, `/r/${room}`, 'Bob');
  const other = await person(browser, LAPTOP, `/r/${room}`, 'Mary Jane');
  const expected: [string, boolean, boolean][] = [
    ['@mary jane can you look?', false, true],
    ['@Mary Janet is someone else', false, false],
    ['write to mail@mary jane', false, false],
    ['(@MARY JANE) in brackets', false, true],
    ["@Mary Jane's turn", false, true],
    ['@Mary Jane2 is not her', false, false],
    ['the other one speaking', false, false],
    ['mine, calling @Mary Jane', true, false],
    ['@Mary Jane from a program', false, true],
  ];
  // In this order: each person's stored before the next writes.
  for (const [body] of expected.slice(0, 6)) await send(bob, body);
  await stored(bob);
  await send(other, expected[6][0]);
  await stored(other);
  await send(mary, expected[7][0]);
  await stored(mary);
  await publish(room, [expected[8][0]]);
  const marks = (page: Page) =>
    page.locator('.messages li.message:not(.pending)').evaluateAll((rows) =>
      rows.map((row) => [
        row.querySelector('.body')?.textContent ?? '',
        row.classList.contains('mine'),
        row.classList.contains('mention'),
      ]),
    );
  await expect.poll(() => marks(mary)).toEqual(expected);

  // Loaded afresh with the wasm held back: the page as the server sent it, marked by the page.
  const early = await mary.context().newPage();
  await early.route('**/*.wasm', (route) => route.abort());
  await early.goto(`${herald.url}/r/${room}`);
  expect(await marks(early)).toEqual(expected);
  await expect(early.locator('.message.mine')).toHaveCSS('align-self', 'flex-end');
  // And once the wasm has taken over.
  await mary.reload();
  await expect(mary.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  expect(await marks(mary)).toEqual(expected);
  // The other Mary Jane: her own row is hers, and the same mentions call on her too.
  await other.reload();
  await expect(other.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  expect(await marks(other)).toEqual(
    expected.map(([body, , mention], i): [string, boolean, boolean] => [body, i === 6, i === 7 || mention]),
  );
  expect(errors).toEqual([]);
});

test('over the send budget the page says so in words, and nothing is dropped', async ({ browser }) => {
  // A Herald of its own with a small budget: a burst of 3 frames, then 2 a second.
  const tight = await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--rate-burst', '3', '--rate-per-sec', '2']);
  try {
    const page = await (await browser.newContext()).newPage();
    const errors = watchForErrors(page);
    await openChat(page, `${tight.url}/r/${uniqueRoom('tight')}`, 'Hasty');
    const sent = ['one', 'two', 'three', 'four', 'five'];
    for (const body of sent) await send(page, body);
    await expect(page.getByTestId('composer-error')).toHaveText(/^Slow down: what you send goes again in \d+ s/);
    // Everything typed arrives, once, in order, as the budget comes back.
    await expect(page.locator('.messages li.message:not(.pending) .body')).toHaveText(sent, { timeout: 15_000 });
    await stored(page);
    expect(errors).toEqual([]);
  } finally {
    expect(await tight.stop()).toBe(0);
  }
});

test('past the new-room budget the page says so in words, and rooms that exist still open', async ({ browser }) => {
  // A Herald of its own where a person may make one room an hour.
  const tight = await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--rooms-per-hour', '1']);
  try {
    const page = await (await browser.newContext()).newPage();
    const errors = watchForErrors(page);
    await openChat(page, `${tight.url}/r/first`, 'Maker');
    await send(page, 'the first room');
    // A second room's page offers to make it; making it is refused, in words, on the form.
    await page.goto(`${tight.url}/r/second`);
    await page.getByTestId('create-room').click();
    await expect(page.getByTestId('form-error')).toHaveText(
      'Slow down: you made many new rooms; another can be made in 60 min.',
    );
    await expect(page.getByTestId('new-room-name')).toHaveValue('second');
    // A room that exists opens and takes messages as before.
    await openChat(page, `${tight.url}/r/first`);
    await send(page, 'still here');
    await expect(page.locator('.messages li.message:not(.pending) .body')).toHaveText(['the first room', 'still here']);
    expect(errors).toEqual([]);
  } finally {
    expect(await tight.stop()).toBe(0);
  }
});

test('two people called Ann can be told apart, and names cannot turn text around', async ({ browser }) => {
  const room = uniqueRoom('twins');
  const first = await person(browser, LAPTOP, `/r/${room}`, 'Ann');
  const second = await person(browser, LAPTOP, `/r/${room}`, '  Ann  ');
  await expect(second.getByTestId('me')).toHaveText('Ann');
  // Whoever shares a name is told, with the way to change it.
  await expect(second.getByTestId('same-name')).toContainText('Someone here is already called Ann');
  await expect(first.getByTestId('same-name')).toContainText('Someone here is already called Ann');
  // In the people panel each has a mark and a tag of their own.
  const people = first.getByTestId('people').locator('li');
  await expect(people).toHaveCount(2);
  await expect(people.locator('.avatar')).toHaveCount(2);
  const tags = await people.locator('.tag').allTextContents();
  expect(tags).toHaveLength(2);
  expect(tags[0]).not.toEqual(tags[1]);
  // Every message carries its author's mark, the same as in the panel.
  await send(first, 'from the first Ann');
  await send(second, 'from the second Ann');
  const mark = (page: Page, text: string) =>
    page.locator('.message', { hasText: text }).locator('.avatar').getAttribute('class');
  const panelMarks = await people.locator('.avatar').evaluateAll((els) => els.map((el) => el.className));
  expect(panelMarks).toContain(await mark(first, 'from the first Ann'));
  expect(panelMarks).toContain(await mark(first, 'from the second Ann'));
  await expect(first.locator('.message', { hasText: 'from the second Ann' }).locator('.avatar')).toHaveAttribute(
    'data-initial',
    'A',
  );
  // "Change your name" opens the box to do it.
  await second.getByTestId('same-name').getByRole('button', { name: 'Change your name' }).click();
  await expect(second.getByTestId('rename-input')).toBeFocused();

  // A bot given a person's name is still a bot, badge and all.
  await publish(room, ['a bot called Ann'], 'Ann');
  const bot = first.locator('.message', { hasText: 'a bot called Ann' });
  await expect(bot).toHaveClass(/bot/);
  await expect(bot.locator('.badge')).toHaveText('bot');

  // A name with a right-to-left override is refused, with the reason.
  const third = await (await browser.newContext(LAPTOP)).newPage();
  await third.goto(`${herald.url}/r/${room}`);
  await third.getByTestId('name-input').fill('Ann\u202Enimda');
  await third.getByRole('button', { name: 'Start chatting' }).click();
  await expect(third.getByTestId('name-error')).toContainText('text-direction');
  await expect(third.getByTestId('name-form')).toBeVisible();
  // So is a name of invisible characters only.
  await third.getByTestId('name-input').fill('\u200B\u2060');
  await third.getByRole('button', { name: 'Start chatting' }).click();
  await expect(third.getByTestId('name-error')).toContainText('some of them visible');
  // And every name is set apart from the text around it, whatever its direction.
  for (const where of ['.message .author', '[data-testid=people] .person-name', '[data-testid=me]']) {
    expect(await first.locator(where).first().evaluate((el) => getComputedStyle(el).unicodeBidi), where).toBe('isolate');
  }
});
