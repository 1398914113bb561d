// Every page as axe-core sees it: no violation on the name page, a room (with formatted, folded and
// edited messages) or a message's edit history, on a desktop and on a phone. (Lighthouse's scores:
// lighthouse.spec.ts.)
import AxeBuilder from '@axe-core/playwright';
import { expect, test } from '../lib/test';
import { heraldUrl, openChat, send, uniqueRoom } from '../lib/chat';

const SCREENS = [
  { name: 'desktop', viewport: { width: 1280, height: 800 } },
  { name: 'phone', viewport: { width: 390, height: 844 } },
];

for (const screen of SCREENS) {
  test(`on a ${screen.name}, the name page, a room and an edit history have no axe-core violations`, async ({ browser }) => {
    const page = await (await browser.newContext({ viewport: screen.viewport })).newPage();
    const violations = async () =>
      (await new AxeBuilder({ page }).analyze()).violations.map(
        (v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
      );
    await page.goto(heraldUrl());
    await expect(page.getByTestId('name-form')).toBeVisible();
    expect(await violations()).toEqual([]);

    await openChat(page, `${heraldUrl()}/r/${uniqueRoom('axe')}`);
    await send(page, 'a line to look at, with a link: https://example.com/page');
    await send(page, Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n'));
    await send(page, '**bold**, _it_, `code`\n> quoted\n\n- one\n- two\n\n```\nlet x = 1;\n```');
    // Stored first: ↑ edits the last message that is (one still being sent has nothing to edit yet).
    await expect(page.locator('.message:not(.pending) .body')).toHaveCount(3);
    await page.getByTestId('composer-input').press('ArrowUp');
    await page.getByTestId('edit-input').fill('**bold**, _it_, `code`, [a link](https://example.com)\n> quoted\n\n1. one\n2. two');
    await page.getByTestId('edit-input').press('Enter');
    await expect(page.getByTestId('edited')).toHaveCount(1);
    await expect(page.getByTestId('fold')).toHaveCount(1);
    expect(await violations()).toEqual([]);

    await page.getByTestId('edited').click();
    await expect(page.getByTestId('version')).toHaveCount(2);
    expect(await violations()).toEqual([]);
  });
}
