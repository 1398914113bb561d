// People as others see them (docs/ACCOUNTS.md, "Leaving, ignoring, and how people are marked"): a
// guest marked as a guest beside their name; someone ignored, their messages folded away for the
// one who ignores them (and shown when chosen); an account an admin deactivated marked
// "(deactivated)". And on a cluster: an admin deactivates someone who is typing on the other node —
// their socket closes at once, their page asks them to sign in, and signing in is refused.
import { Browser, expect, Locator, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { chooseName, send, stored, watchForErrors } from '../lib/chat';
import { binaryUnderTest, copyAlone, Herald, OWNER, startHerald, TEST_FLAGS } from '../lib/herald';
import { axe, member, PASSWORD, signIn } from '../lib/people';
import { startRedis } from '../lib/redis';

/** What the stylesheet adds after an element (`::after`'s content, `none` if nothing). */
async function after(element: Locator): Promise<string> {
  return element.evaluate((e) => getComputedStyle(e, '::after').content);
}

/** The row of the message whose body is `text`. */
function row(page: Page, text: string): Locator {
  return page.locator('ol.messages > li', { has: page.locator('.body', { hasText: text }) });
}

/** The owner of `herald`, signed in on a browser of their own. */
async function owner(browser: Browser, herald: Herald): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${herald.url}/sign-in`);
  await signIn(page, OWNER.handle, OWNER.password);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  return page;
}

/** The owner deactivates the account called `name` on `/admin/people`. */
async function deactivate(admin: Page, herald: Herald, name: string) {
  await admin.goto(`${herald.url}/admin/people`);
  await admin.getByRole('button', { name: `Deactivate ${name}` }).click();
  await expect(admin.locator('[data-testid=person][data-active=false]', { hasText: name })).toHaveCount(1);
}

test('guests are marked, someone ignored folds away, and a deactivated account is marked', async ({ browser }) => {
  const herald = await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--sign-up', 'open']);
  try {
    const ann = await member(browser, herald, 'ann', 'Ann Lee');
    const bob = await member(browser, herald, 'bob', 'Bob Ray');
    const gus = await (await browser.newContext()).newPage();
    await gus.goto(`${herald.url}/sign-in`);
    await chooseName(gus, 'Gus');
    await expect(gus.getByTestId('status')).toHaveAttribute('data-state', 'connected');
    // Bob's page is signed out when he is deactivated: its errors then are his.
    const errors = [ann, gus].map(watchForErrors);

    // A guest's name says so on a message; a member's does not.
    await send(gus, 'hello, I am only visiting');
    await stored(gus); // Before Bob's: his two fold into one line below.
    await send(bob, 'the deploy is broken again');
    await send(bob, 'and the tests are red');
    await expect(row(ann, 'only visiting').locator('.author')).toHaveText('Gus');
    expect(await after(row(ann, 'only visiting').locator('.author'))).toBe('" (guest)"');
    expect(await after(row(ann, 'deploy is broken').locator('.author'))).toBe('none');

    // Ann ignores Bob from one of his messages ("Report" opens its page).
    const seq = await row(ann, 'deploy is broken').getAttribute('data-seq');
    await ann.goto(`${herald.url}/r/general/messages/${seq}`);
    expect(await axe(ann)).toEqual([]);
    await ann.getByRole('button', { name: 'Ignore Bob Ray' }).click();
    await expect(ann.getByRole('button', { name: 'Stop ignoring Bob Ray' })).toBeVisible();
    await ann.goto(`${herald.url}/r/general`);
    await expect(ann.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    // His messages fold into one line; a message he sends now folds too.
    await expect(row(ann, 'deploy is broken').locator('.body')).toBeHidden();
    await expect(row(ann, 'tests are red')).toBeHidden();
    await send(bob, 'anyone there?');
    await expect(row(bob, 'anyone there?')).toBeVisible();
    await expect(row(ann, 'anyone there?').locator('.body')).toBeHidden();
    await expect(row(ann, 'only visiting').locator('.body')).toBeVisible();
    await ann.screenshot({ path: 'test-results/ignored.png' });
    // Chosen, they show.
    await row(ann, 'deploy is broken').click();
    await expect(row(ann, 'deploy is broken').locator('.body')).toBeVisible();
    await expect(row(ann, 'tests are red').locator('.body')).toBeVisible();
    // Bob sees his own messages, and nothing tells him.
    await expect(row(bob, 'deploy is broken').locator('.body')).toBeVisible();

    // The account page lists whom Ann ignores, and lets her stop.
    await ann.goto(`${herald.url}/account`);
    await expect(ann.getByTestId('ignored')).toContainText('Bob Ray');
    expect(await axe(ann)).toEqual([]);
    await ann.getByRole('button', { name: 'Stop ignoring Bob Ray' }).click();
    await expect(ann.getByTestId('ignored')).toHaveCount(0);

    // A member calls on the whole room: a mention of everyone, live and in a page loaded after;
    // a guest may not (`--room-mentions members`, the default), and is told so.
    await ann.goto(`${herald.url}/r/general`);
    await expect(ann.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await send(bob, '@room standup in five');
    await expect(row(ann, 'standup in five')).toHaveClass(/mention/);
    await ann.reload();
    await expect(row(ann, 'standup in five')).toHaveClass(/mention/);
    await gus.getByTestId('composer-input').fill('@room free pizza');
    await gus.getByTestId('composer-input').press('Enter');
    await expect(gus.getByTestId('composer-error')).toContainText('only members may call on the whole room');
    await expect(row(ann, 'free pizza')).toHaveCount(0);

    // An admin deactivates Bob: his messages stay, marked, for whoever opens the room.
    const admin = await owner(browser, herald);
    await deactivate(admin, herald, 'Bob Ray');
    await ann.goto(`${herald.url}/r/general`);
    await expect(row(ann, 'deploy is broken').locator('.body')).toBeVisible();
    await expect.poll(() => after(row(ann, 'deploy is broken').locator('.author'))).toBe('" (deactivated)"');
    await ann.screenshot({ path: 'test-results/marks.png' });
    expect(errors.flat().filter((e) => !e.includes('WebSocket'))).toEqual([]);
  } finally {
    expect(await herald.stop()).toBe(0);
    fs.rmSync(herald.dir, { recursive: true, force: true });
  }
});

test('an admin deactivates someone typing on another node: their socket closes, their next request is refused', async ({ browser }) => {
  const redis = await startRedis();
  const nodes: Herald[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      nodes.push(await startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, '--sign-up', 'open',
        '--redis', redis.url, '--session-secret', 'e2e-cluster-secret-of-32-bytes-or-more']));
    }
    // Bob on node 1, typing; the admin on node 0.
    const bob = await member(browser, nodes[1], 'bob', 'Bob Ray');
    await send(bob, 'about to say something rude');
    await bob.getByTestId('composer-input').fill('and now something worse');
    const admin = await owner(browser, nodes[0]);
    await expect(admin.locator('.message .body', { hasText: 'about to say something rude' })).toBeVisible();
    await deactivate(admin, nodes[0], 'Bob Ray');

    // Bob's page is told at once: his socket closes, his next handshake is refused, and he is
    // asked to sign in — where his password no longer lets him in.
    await expect(bob.getByTestId('sign-in-form')).toBeVisible();
    await signIn(bob, 'bob', PASSWORD);
    await expect(bob.getByTestId('form-error')).toContainText('deactivated');
    const answer = await bob.request.get(`${nodes[1].url}/session`);
    expect(answer.status()).toBe(401);
    // Nothing he had typed was sent.
    await expect(admin.locator('.message .body', { hasText: 'something worse' })).toHaveCount(0);
  } finally {
    for (const node of nodes) await node.stop();
    redis.stop();
  }
});
