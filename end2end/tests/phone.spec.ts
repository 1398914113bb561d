// On a phone (390x844): the room chips, the "go to room" box and who is here, in real Chromium.
import { expect, test } from '../lib/test';
import { heraldUrl, openChat, uniqueRoom } from '../lib/chat';

const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

test('on a phone the room chips show their names, "go to room" has room to type, and who is here is a tap away', async ({
  browser,
}) => {
  const room = uniqueRoom('ph').slice(0, 12);
  const bob = await (await browser.newContext()).newPage();
  await openChat(bob, `${heraldUrl()}/r/${room}`, 'Bob');
  const phone = await (await browser.newContext(PHONE)).newPage();
  await openChat(phone, `${heraldUrl()}/`, 'Ann Marie');
  await phone.goto(`${heraldUrl()}/r/design`);
  await openChat(phone, `${heraldUrl()}/r/${room}`);

  // The chips for short names (general, design, this room) are whole, not "# gen…".
  for (const name of ['general', room]) {
    const title = phone.locator(`.room[data-room="${name}"] .room-title`);
    await expect(title).toHaveText(`# ${name}`);
    const cut = await title.evaluate((el) => el.scrollWidth > el.clientWidth);
    expect(cut, name).toBe(false);
  }
  // So is the open room's name in the top bar.
  const top = phone.getByTestId('room-name');
  expect(await top.evaluate((el) => el.scrollWidth > el.clientWidth)).toBe(false);

  // "go to room" is wide enough to type a name into, at the end of the row of chips.
  const input = phone.getByTestId('room-input');
  await phone.locator('.sidebar').evaluate((row) => (row.scrollLeft = row.scrollWidth));
  expect((await input.boundingBox())!.width).toBeGreaterThanOrEqual(100);
  await expect(input).toBeInViewport({ ratio: 1 });

  // Who is here: hidden until asked for, then listed; Escape puts it away.
  const people = phone.getByTestId('people');
  const toggle = phone.getByTestId('people-toggle');
  await expect(people).toBeHidden();
  await expect(toggle).toHaveText('2 here');
  await toggle.tap();
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  await expect(people.locator('li')).toHaveText(['Ann Marie', 'Bob']);
  await expect(people).toBeInViewport({ ratio: 1 });
  await phone.keyboard.press('Escape');
  await expect(people).toBeHidden();
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');

  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
});

test('on a wide screen the people are always shown, and there is no button for them', async ({ browser }) => {
  const page = await (await browser.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('wide')}`, 'Wanda');
  await expect(page.getByTestId('people').locator('li')).toHaveText(['Wanda']);
  await expect(page.getByTestId('people-toggle')).toBeHidden();
});
