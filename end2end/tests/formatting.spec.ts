// Formatting in real Chromium: a message's Markdown shows as bold, italic, struck, code, code
// blocks, quotes, lists and links — for the person who typed it, for whoever receives it live, and
// the same, element for element, in the page the server renders; hostile text stays text; a code
// block's 200-character line scrolls inside the message and never widens the page, on a phone too;
// a 40-line paste folds behind "Show more", and stays unfolded when the row is drawn again.
import { expect, Page, test } from '../lib/test';
import { heraldUrl, openChat, send, uniqueRoom, watchForErrors } from '../lib/chat';

const FORMATTED = [
  '**Release** is _today_, ~~not~~ `v2.1` — see [the notes](https://example.com/notes)',
  '> the plan, quoted',
  '',
  '- first',
  '- second',
  '',
  '1. one',
  '2. two',
].join('\n');

/** The (newest) message row whose text contains `text`. */
function row(page: Page, text: string) {
  return page.locator('li.message', { has: page.locator('.body', { hasText: text }) }).last();
}

/** That row's body. */
function body(page: Page, text: string) {
  return row(page, text).locator('.body');
}

/** A body's elements as the server wrote them into the page (no script run). */
async function serverRendered(page: Page, seq: string): Promise<string> {
  const html = await (await page.request.get(page.url())).text();
  return page.evaluate(
    ({ html, seq }) => {
      const doc = new DOMParser().parseFromString(html, 'text/html');
      return doc.querySelector(`li[data-seq="${seq}"] .body`)?.innerHTML ?? 'missing';
    },
    { html, seq },
  );
}

test('formatting shows as elements, live and server-rendered alike, and text stays text', async ({ browser }) => {
  const room = uniqueRoom('format');
  const ann = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const errors = [...watchForErrors(ann), ...watchForErrors(bob)];
  await openChat(ann, `${heraldUrl()}/r/${room}`, 'Ann');
  await openChat(bob, `${heraldUrl()}/r/${room}`, 'Bob');

  await send(ann, FORMATTED);
  await send(ann, '<img src=x onerror="window.owned=1"> [x](javascript:window.owned=1) & <b>not bold</b>');

  for (const page of [ann, bob]) {
    const formatted = body(page, 'Release');
    await expect(formatted.locator('strong')).toHaveText('Release');
    await expect(formatted.locator('em')).toHaveText('today');
    await expect(formatted.locator('del')).toHaveText('not');
    await expect(formatted.locator('code')).toHaveText('v2.1');
    await expect(formatted.locator('a')).toHaveText('the notes');
    await expect(formatted.locator('a')).toHaveAttribute('href', 'https://example.com/notes');
    await expect(formatted.locator('a')).toHaveAttribute('rel', 'noopener noreferrer nofollow');
    await expect(formatted.locator('blockquote')).toHaveText('the plan, quoted');
    await expect(formatted.locator('ul > li')).toHaveText(['first', 'second']);
    await expect(formatted.locator('ol > li')).toHaveText(['one', 'two']);

    const hostile = body(page, 'not bold');
    await expect(hostile).toHaveText('<img src=x onerror="window.owned=1"> [x](javascript:window.owned=1) & <b>not bold</b>');
    await expect(hostile.locator('img, b, a')).toHaveCount(0);
    expect(await page.evaluate(() => (window as unknown as { owned?: number }).owned)).toBeUndefined();
  }

  // Bob's copies were built by the browser; the page the server renders holds the same elements.
  // (Leptos leaves empty comments as markers in what it builds: they are not content.)
  const elements = async (page: Page, text: string) =>
    (await body(page, text).innerHTML()).replaceAll('<!---->', '');
  for (const text of ['Release', 'not bold']) {
    const seq = await row(bob, text).getAttribute('data-seq');
    expect(seq).not.toBeNull();
    expect(await serverRendered(bob, seq!)).toBe(await elements(bob, text));
  }
  // And after a reload, hydration keeps them (no error, nothing different).
  const before = await elements(bob, 'Release');
  await bob.reload();
  await expect(bob.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(body(bob, 'Release')).toBeVisible();
  expect(await elements(bob, 'Release')).toBe(before);
  expect(errors).toEqual([]);
});

for (const phone of [false, true]) {
  test(`a code block's 200-character line scrolls inside its message${phone ? ' on a phone' : ''}`, async ({ browser }) => {
    const context = await browser.newContext(
      phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : {},
    );
    const page = await context.newPage();
    const errors = watchForErrors(page);
    await openChat(page, `${heraldUrl()}/r/${uniqueRoom('code')}`, 'Coder');
    const line = 'x'.repeat(200);
    await send(page, `Here:\n\`\`\`\nlet long = "${line}";\n\`\`\``);
    const pre = body(page, 'Here:').locator('pre');
    await expect(pre).toContainText(line);
    const widths = await page.evaluate(() => {
      const pre = document.querySelector('li.message .body pre')!;
      const message = pre.closest('li')!;
      return {
        page: document.documentElement.scrollWidth,
        viewport: document.documentElement.clientWidth,
        preScroll: pre.scrollWidth,
        preBox: pre.clientWidth,
        preRight: pre.getBoundingClientRect().right,
        messageRight: message.getBoundingClientRect().right,
        list: document.querySelector('#messages')!.scrollWidth - document.querySelector('#messages')!.clientWidth,
      };
    });
    expect(widths.page).toBeLessThanOrEqual(widths.viewport); // The page is not wider than the screen,
    expect(widths.list).toBe(0); // nor the conversation wider than itself;
    expect(widths.preScroll).toBeGreaterThan(widths.preBox); // the line scrolls inside its block,
    expect(widths.preRight).toBeLessThanOrEqual(widths.messageRight); // which stays in its message.
    expect(errors).toEqual([]);
  });
}

test('a 40-line paste folds behind "Show more", and stays open when its row is drawn again', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  const errors = watchForErrors(page);
  await openChat(page, `${heraldUrl()}/r/${uniqueRoom('fold')}`, 'Paster');
  const lines = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join('\n');
  await send(page, lines);
  const long = body(page, 'line 40');
  const message = row(page, 'line 40');
  const fold = message.getByTestId('fold');
  await expect(fold).toHaveText('Show more');
  await expect(fold).toHaveAttribute('aria-expanded', 'false');
  const folded = (await long.boundingBox())!.height;
  expect(folded).toBeLessThan(400); // 40 lines are ~900 px unfolded.
  await fold.click();
  await expect(fold).toHaveText('Show less');
  await expect(fold).toHaveAttribute('aria-expanded', 'true');
  expect((await long.boundingBox())!.height).toBeGreaterThan(folded * 2);

  // A reaction draws the row again: it stays unfolded.
  await message.hover();
  await message.getByTestId('react').click();
  await message.getByRole('button', { name: 'React with 👍' }).click();
  await expect(message.getByTestId('reaction')).toHaveCount(1);
  await expect(message.getByTestId('fold')).toHaveText('Show less');
  expect((await body(page, 'line 40').boundingBox())!.height).toBeGreaterThan(folded * 2);

  // A short message has no fold.
  await send(page, 'short');
  await expect(row(page, 'short').getByTestId('fold')).toHaveCount(0);
  await page.screenshot({ path: 'test-results/formatting-fold.png' });
  expect(errors).toEqual([]);
});
