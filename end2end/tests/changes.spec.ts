// Fixing, taking back, answering and reacting to messages in real Chromium, two people side by side:
// editing with ↑ and with the message's action, deleting after a confirmation, replying and jumping
// to an original that is not loaded yet, reactions from two people, a phone, the keyboard alone.
// Its own Herald: an API token to write a long history quickly, and a generous rate for it.
import { expect, Page, test } from '../lib/test';
import { bodies, openChat, send, uniqueRoom, watchForErrors } from '../lib/chat';
import { Herald, TEST_FLAGS, binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

const TOKEN = 'e2e-changes-token';
let herald: Herald;

test.beforeAll(async () => {
  herald = await startHerald(copyAlone(binaryUnderTest()), TEST_FLAGS, { HERALD_API_TOKENS: TOKEN });
});

test.afterAll(async () => {
  expect(await herald.stop()).toBe(0);
});

async function publish(room: string, body: object): Promise<number> {
  const response = await fetch(`${herald.url}/api/rooms/${room}/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return (await response.json()).seq;
}

async function person(browser: import('@playwright/test').Browser, room: string, name: string, options = {}) {
  const page = await (await browser.newContext(options)).newPage();
  const errors = watchForErrors(page);
  await openChat(page, `${herald.url}/r/${room}`, name);
  return { page, errors };
}

/** The row of the message whose text is `text`. */
function row(page: Page, text: string) {
  return page.locator('li.message', { has: page.locator('.body', { hasText: text }) });
}

test('an edit, by ↑ and by the action, shows in place for both, marked edited; Escape leaves it as it was', async ({ browser }) => {
  const room = uniqueRoom('edits');
  const { page: ann, errors: annErrors } = await person(browser, room, 'Ann');
  const { page: bob, errors: bobErrors } = await person(browser, room, 'Bob');
  await send(ann, 'the meeting is at 3');
  await send(ann, 'bring the slides');
  await expect(row(bob, 'bring the slides')).toHaveCount(1);

  // ↑ in the empty box edits her last message; Enter saves.
  await ann.getByTestId('composer-input').press('ArrowUp');
  const editBox = ann.getByTestId('edit-input');
  await expect(editBox).toBeFocused();
  await expect(editBox).toHaveValue('bring the slides');
  await editBox.fill('bring the slides and the demo');
  await editBox.press('Enter');
  for (const page of [ann, bob]) {
    await expect(row(page, 'bring the slides and the demo').getByTestId('edited')).toHaveText('(edited)');
  }
  await expect(ann.getByTestId('composer-input')).toBeFocused();

  // The action on an older message; Escape cancels without a change.
  const first = row(ann, 'the meeting is at 3');
  await first.hover();
  await first.getByTestId('edit-action').click();
  await ann.getByTestId('edit-input').fill('something else');
  await ann.getByTestId('edit-input').press('Escape');
  await expect(ann.getByTestId('edit-input')).toHaveCount(0);
  await expect(row(ann, 'the meeting is at 3').getByTestId('edited')).toHaveCount(0);
  await first.hover();
  await first.getByTestId('edit-action').click();
  await ann.getByTestId('edit-input').fill('the meeting is at 4');
  await ann.getByTestId('edit-input').press('Enter');
  await expect(row(bob, 'the meeting is at 4').getByTestId('edited')).toHaveCount(1);
  try {
    await expect(row(bob, 'the meeting is at 3')).toHaveCount(0);
  } catch (e) {
    // Seen twice under load (the old text and the new in one paragraph), not reproduced since:
    // what the list held then says where.
    console.log('the list:', await bob.locator('.messages').evaluate((list) => list.innerHTML));
    throw e;
  }
  // Bob has no "Edit" on Ann's message.
  await row(bob, 'the meeting is at 4').hover();
  await expect(row(bob, 'the meeting is at 4').getByTestId('edit-action')).toBeHidden();

  // Reloaded, the page shows it as it is now.
  await bob.reload();
  await expect(row(bob, 'the meeting is at 4').getByTestId('edited')).toHaveCount(1);

  // "(edited)" opens its earlier texts, oldest first; the way back leads to the message.
  await row(bob, 'the meeting is at 4').getByTestId('edited').click();
  await expect(bob.getByRole('heading', { name: 'Edit history' })).toBeVisible();
  await expect(bob.getByTestId('version').locator('.body')).toHaveText(['the meeting is at 3', 'the meeting is at 4']);
  await expect(bob.getByTestId('version').last()).toContainText('(now)');
  await bob.getByTestId('back').click();
  await expect(bob).toHaveURL(new RegExp(`/r/${room}\\?at=\\d+$`));
  await expect(row(bob, 'the meeting is at 4')).toBeInViewport();
  expect([...annErrors, ...bobErrors]).toEqual([]);
});

test('what is being typed in an edit box survives someone reacting to that message meanwhile', async ({ browser }) => {
  const room = uniqueRoom('edit-race');
  const { page: ann, errors } = await person(browser, room, 'Ann');
  const { page: bob } = await person(browser, room, 'Bob');
  await send(ann, 'the demo is on friday');
  await expect(row(bob, 'the demo is on friday')).toHaveCount(1);
  await ann.getByTestId('composer-input').press('ArrowUp');
  const editBox = ann.getByTestId('edit-input');
  await editBox.fill('the demo is on thursday');

  // Bob reacts, then speaks: once Ann's page shows his words, it has had his reaction too (a
  // room's entries arrive in order).
  const onBob = row(bob, 'the demo is on friday');
  await onBob.hover();
  await onBob.getByTestId('react').click();
  await bob.getByTestId('picker').getByRole('button', { name: 'React with 👀' }).click();
  await send(bob, 'noted');
  await expect(row(ann, 'noted')).toHaveCount(1);
  await expect(editBox).toHaveValue('the demo is on thursday');
  await expect(editBox).toBeFocused();

  await editBox.press('Enter');
  for (const page of [ann, bob]) {
    const edited = row(page, 'the demo is on thursday');
    await expect(edited.getByTestId('edited')).toHaveCount(1);
    await expect(edited.getByTestId('reaction')).toHaveText('👀1');
  }
  expect(errors).toEqual([]);
});

test('a deletion asks first, then everyone sees "Message deleted" in its place at once', async ({ browser }) => {
  const room = uniqueRoom('deletes');
  const { page: ann } = await person(browser, room, 'Ann');
  const { page: bob } = await person(browser, room, 'Bob');
  await send(ann, 'oops, wrong room');
  await send(ann, 'hello all');
  await expect(row(bob, 'oops, wrong room')).toHaveCount(1);

  const oops = row(ann, 'oops, wrong room');
  await oops.hover();
  await oops.getByTestId('delete-action').click();
  await expect(ann.getByTestId('confirm-delete')).toBeVisible();
  // Cancelled: nothing happens.
  await ann.getByTestId('confirm-delete').getByRole('button', { name: 'Cancel' }).click();
  await expect(row(bob, 'oops, wrong room')).toHaveCount(1);
  await oops.hover();
  await oops.getByTestId('delete-action').click();
  await ann.getByTestId('confirm').click();
  for (const page of [ann, bob]) {
    await expect(page.getByTestId('deleted')).toHaveText('Message deleted');
    await expect(page.locator('.messages')).not.toContainText('oops, wrong room');
    await expect(bodies(page).filter({ hasText: 'hello all' })).toHaveCount(1);
  }
  // Reloaded: still only the mark, the words are not in the page at all.
  await bob.reload();
  await expect(bob.getByTestId('deleted')).toHaveCount(1);
  expect(await bob.content()).not.toContain('oops, wrong room');
});

test('a reply quotes its original; the quote brings an original that is not loaded into view', async ({ browser }) => {
  const room = uniqueRoom('replies');
  const original = await publish(room, { body: 'the release notes are in the wiki', author_name: 'Docs' });
  for (let i = 1; i <= 70; i++) {
    await publish(room, { body: `filler ${i}` });
  }
  await publish(room, { body: 'which page?', reply_to: original });
  const { page: ann, errors } = await person(browser, room, 'Ann');

  // The original is not on the page (the last 50 are); the reply still says what it answers.
  await expect(row(ann, 'the release notes are in the wiki')).toHaveCount(0);
  const reply = row(ann, 'which page?');
  await expect(reply.getByTestId('quote')).toContainText('Docs');
  await expect(reply.getByTestId('quote')).toContainText('the release notes are in the wiki');
  await reply.getByTestId('quote').click();
  const found = row(ann, 'the release notes are in the wiki');
  await expect(found).toBeInViewport();
  await expect(found).toBeFocused();

  // Ann answers the newest message with the action; Bob sees her quote.
  const { page: bob } = await person(browser, room, 'Bob');
  const question = row(ann, 'which page?');
  await question.hover();
  await question.getByTestId('reply').click();
  await expect(ann.getByTestId('replying')).toContainText('which page?');
  await expect(ann.getByTestId('composer-input')).toBeFocused();
  await send(ann, 'the one called Releases');
  await expect(ann.getByTestId('replying')).toHaveCount(0);
  await expect(row(bob, 'the one called Releases').getByTestId('quote')).toContainText('which page?');
  expect(errors).toEqual([]);
});

test('reactions from two people: counts, who, and taking one back', async ({ browser }) => {
  const room = uniqueRoom('reactions');
  const { page: ann } = await person(browser, room, 'Ann');
  const { page: bob } = await person(browser, room, 'Bob');
  await send(ann, 'lunch at noon?');
  const onAnn = row(ann, 'lunch at noon?');
  const onBob = row(bob, 'lunch at noon?');
  await expect(onBob).toHaveCount(1);

  await onBob.hover();
  await onBob.getByTestId('react').click();
  await bob.getByTestId('picker').getByRole('button', { name: 'React with 👍' }).click();
  for (const page of [ann, bob]) {
    await expect(row(page, 'lunch at noon?').getByTestId('reaction')).toHaveText('👍1');
  }
  // Ann adds hers by clicking the reaction; both see two, and who.
  await onAnn.getByTestId('reaction').click();
  for (const page of [ann, bob]) {
    const chip = row(page, 'lunch at noon?').getByTestId('reaction');
    await expect(chip).toHaveText('👍2');
    await expect(chip).toHaveAttribute('title', 'Bob, Ann');
  }
  await expect(onAnn.getByTestId('reaction')).toHaveAttribute('aria-pressed', 'true');
  // Any emoji can be typed.
  await onAnn.hover();
  await onAnn.getByTestId('react').click();
  await ann.getByTestId('emoji-input').fill('🦀');
  await ann.getByTestId('emoji-input').press('Enter');
  await expect(onBob.getByTestId('reaction').filter({ hasText: '🦀' })).toHaveText('🦀1');
  // Bob takes his 👍 back.
  await onBob.getByTestId('reaction').filter({ hasText: '👍' }).click();
  for (const page of [ann, bob]) {
    await expect(row(page, 'lunch at noon?').getByTestId('reaction').filter({ hasText: '👍' })).toHaveText('👍1');
  }
  await expect(onBob.getByTestId('reaction').filter({ hasText: '👍' })).toHaveAttribute('aria-pressed', 'false');
  // Drawn as emoji, in colour, in the chip's own fonts — not as empty boxes, as on a desktop with
  // no emoji font (`cargo xtask test` installs Debian's, as a person's desktop has one).
  const coloured = await onAnn
    .getByTestId('reaction')
    .first()
    .evaluate((chip) => {
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 64;
      const draw = canvas.getContext('2d')!;
      draw.font = `48px ${getComputedStyle(chip).fontFamily}`;
      draw.fillText(chip.textContent?.match(/\p{Extended_Pictographic}/u)?.[0] ?? '', 4, 52);
      const px = draw.getImageData(0, 0, 64, 64).data;
      let coloured = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] > 0 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) coloured++;
      }
      return coloured;
    });
  expect(coloured).toBeGreaterThan(100);
});

test('on a phone the actions are a visible "…" button, never hover alone, and a long press says who reacted', async ({ browser }) => {
  const room = uniqueRoom('phone-actions');
  await publish(room, { body: 'tap me' });
  const { page } = await person(browser, room, 'Pat', { viewport: { width: 390, height: 760 }, hasTouch: true, isMobile: true });
  const message = row(page, 'tap me');
  const more = message.getByTestId('more');
  await expect(more).toBeVisible();
  await more.tap();
  await expect(message.getByTestId('toolbar')).toBeVisible();
  await message.getByTestId('react').tap();
  await page.getByTestId('picker').getByRole('button', { name: 'React with 🎉' }).tap();
  await expect(message.getByTestId('reaction')).toHaveText('🎉1');
  // A long press on a reaction (the browser's context menu) says who, with no hover on a phone.
  const reaction = message.getByTestId('reaction');
  await reaction.dispatchEvent('contextmenu');
  await expect(reaction).toHaveClass(/names/);
  expect(await reaction.evaluate((el) => getComputedStyle(el, '::after').content)).toBe('"Pat"');
  // Nothing is wider than the screen.
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
});

test('the keyboard alone reaches a message\'s actions: reply, react, and Escape closes them', async ({ browser }) => {
  const room = uniqueRoom('keyboard-actions');
  await publish(room, { body: 'keyboard people welcome' });
  const { page } = await person(browser, room, 'Kay');
  // From the message box, Shift+Tab back into the conversation reaches the newest message's "…".
  const box = page.getByTestId('composer-input');
  await box.focus();
  const more = row(page, 'keyboard people welcome').getByTestId('more');
  for (let i = 0; i < 6 && !(await more.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Shift+Tab');
  }
  await expect(more).toBeFocused();
  await page.keyboard.press('Enter');
  const toolbar = row(page, 'keyboard people welcome').getByTestId('toolbar');
  await expect(toolbar).toBeVisible();
  await expect(toolbar.getByRole('button', { name: 'React' })).toBeFocused();
  await page.keyboard.press('Escape');
  await expect(toolbar).toBeHidden();
  await expect(more).toBeFocused();
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  await expect(toolbar.getByRole('button', { name: 'Reply' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(box).toBeFocused();
  await page.keyboard.type('thanks!');
  await page.keyboard.press('Enter');
  await expect(row(page, 'thanks!').getByTestId('quote')).toContainText('keyboard people welcome');
});
