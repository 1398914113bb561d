// Every page as axe-core sees it: no violation on the name page or a room, on a desktop and on a
// phone. (Lighthouse's scores: lighthouse.spec.ts.)
import AxeBuilder from '@axe-core/playwright';
import { expect, test } from '@playwright/test';
import { heraldUrl, openChat, send, uniqueRoom } from '../lib/chat';

const SCREENS = [
  { name: 'desktop', viewport: { width: 1280, height: 800 } },
  { name: 'phone', viewport: { width: 390, height: 844 } },
];

for (const screen of SCREENS) {
  test(`on a ${screen.name}, the name page and a room have no axe-core violations`, async ({ browser }) => {
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
    await expect(page.locator('.message:not(.pending) .body')).toHaveCount(1);
    expect(await violations()).toEqual([]);
  });
}
