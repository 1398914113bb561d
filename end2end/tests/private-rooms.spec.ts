// Rooms with access and their moderation, as people meet them (docs/ACCOUNTS.md, "Rooms",
// "Moderation"): a private room made from the sidebar, invisible to whoever is not in it, a member
// added who sees it appear at once; a direct conversation started from a name, in both sidebars
// apart from the rooms; a moderator removing someone's message. A server of its own, taking
// sign-ups, where members (not guests) make rooms: what an operator would run.
import { expect, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { bodies, send, watchForErrors } from '../lib/chat';
import { binaryUnderTest, copyAlone, Herald, OWNER, startHerald, TEST_FLAGS } from '../lib/herald';
import { axe, member, PASSWORD } from '../lib/people';

/** The sidebar's entry of a room, by what it is called there. */
function entry(page: Page, title: string) {
  return page.locator('.room', { hasText: title });
}

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

test('a private room is for its members: others find no trace of it, and one added sees it at once', async ({ browser }) => {
  const ann = await member(browser, herald, 'ann', 'Ann Lee');
  const bob = await member(browser, herald, 'bob', 'Bob Ray');
  const errors = [ann, bob].map(watchForErrors);

  // Ann makes a private room from the sidebar.
  await ann.getByTestId('new-room').click();
  await expect(ann.getByTestId('new-room-form')).toBeVisible();
  expect(await axe(ann)).toEqual([]);
  await ann.getByTestId('kind-private').check();
  await ann.getByTestId('new-room-name').fill('Launch plans');
  await ann.getByTestId('new-room-topic').fill('What ships on Tuesday');
  await ann.getByRole('button', { name: 'Create room' }).click();
  await expect(ann).toHaveURL(/\/r\/~[0-9a-f]{20}$/);
  const address = ann.url();
  await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(ann.getByTestId('room-name')).toHaveText('🔒 Launch plans');
  await expect(entry(ann, 'Launch plans')).toHaveClass(/current/);
  await send(ann, 'the launch is on Tuesday');

  // Bob: not in his list, and its address is a room that does not exist.
  await expect(entry(bob, 'Launch plans')).toHaveCount(0);
  const look = await (await browser.newContext({ storageState: await bob.context().storageState() })).newPage();
  const answer = await look.goto(address);
  expect(answer?.status()).toBe(404);
  await expect(look.getByTestId('no-room')).toContainText('does not exist, or you are not one of its members');
  expect(await look.content()).not.toContain('Launch plans');

  // Ann adds him from the room's page (its name in the header leads there).
  await ann.getByTestId('room-name').click();
  await expect(ann.getByTestId('room-title')).toHaveText('Launch plans');
  await expect(ann.getByTestId('topic')).toHaveText('What ships on Tuesday');
  expect(await axe(ann)).toEqual([]);
  await ann.getByTestId('add-member-handle').fill('@bob');
  await ann.getByRole('button', { name: 'Add to room' }).click();
  await expect(ann.getByTestId('member')).toHaveCount(2);

  // His open page shows it at once, and it holds what was said.
  await expect(entry(bob, 'Launch plans')).toBeVisible();
  await entry(bob, 'Launch plans').getByRole('link').click();
  await expect(bob.getByTestId('room-name')).toHaveText('🔒 Launch plans');
  await expect(bodies(bob).filter({ hasText: 'the launch is on Tuesday' })).toHaveCount(1);
  expect(errors.flat()).toEqual([]);
});

test('a direct message is started from a name and sits in both sidebars, apart from the rooms', async ({ browser }) => {
  const cy = await member(browser, herald, 'cy', 'Cy Okafor');
  const di = await member(browser, herald, 'di', 'Di Park');

  await cy.getByTestId('new-direct').click();
  await expect(cy.getByTestId('direct-form')).toBeVisible();
  expect(await axe(cy)).toEqual([]);
  await cy.getByTestId('direct-handles').fill('di');
  await cy.getByRole('button', { name: 'Start' }).click();
  await expect(cy).toHaveURL(/\/r\/@[0-9a-f]{20}$/);
  await expect(cy.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(cy.getByTestId('room-name')).toHaveText('Di Park');
  await expect(cy.getByTestId('composer-input')).toHaveAttribute('placeholder', 'Message Di Park');
  await send(cy, 'are you free at noon?');

  // Di, still in #general: the conversation is in her list under "Direct messages", by Cy's name,
  // with what she has not read.
  const hers = entry(di, 'Cy Okafor');
  await expect(hers).toHaveCount(1);
  await expect(hers).toBeVisible();
  await expect(di.locator('.list-title')).toHaveText('Direct messages');
  await hers.getByRole('link').click();
  await expect(bodies(di).filter({ hasText: 'are you free at noon?' })).toHaveCount(1);
  await send(di, 'yes');
  await expect(bodies(cy).filter({ hasText: 'yes' })).toHaveCount(1);
  await di.screenshot({ path: test.info().outputPath('direct-message.png') });
});

test('a moderator removes anyone\'s message; everyone sees it removed by a moderator, and a member cannot', async ({ browser }) => {
  const eve = await member(browser, herald, 'eve', 'Eve Stone');
  const fay = await member(browser, herald, 'fay', 'Fay Lund');
  // The owner (an admin, so a moderator too) signs in on a browser of their own.
  const mod = await (await browser.newContext()).newPage();
  await mod.goto(`${herald.url}/sign-in`);
  await mod.getByTestId('handle').fill(OWNER.handle);
  await mod.getByTestId('password').fill(OWNER.password);
  await mod.getByRole('button', { name: 'Sign in' }).click();
  await expect(mod.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await send(eve, 'buy cheap watches at example.com');
  await send(eve, 'good morning');

  // Fay, a member, is offered no "Delete" on Eve's message.
  const hers = (page: Page) => page.locator('.message', { hasText: 'buy cheap watches' });
  await hers(fay).hover();
  await expect(hers(fay).getByTestId('delete-action')).toBeHidden();
  await expect(hers(fay).getByTestId('reply')).toBeVisible();
  // The moderator is, and removes it after confirming.
  await expect(mod.locator('html')).toHaveClass(/moderator/);
  await hers(mod).hover();
  await hers(mod).getByTestId('delete-action').click();
  await mod.getByTestId('confirm').click();
  for (const page of [eve, fay, mod]) {
    await expect(page.getByTestId('deleted')).toHaveText('Removed by a moderator');
    await expect(page.locator('.messages')).not.toContainText('buy cheap watches');
    await expect(bodies(page).filter({ hasText: 'good morning' })).toHaveCount(1);
  }
  // Loaded afresh, the page says the same.
  await fay.reload();
  await expect(fay.getByTestId('deleted')).toHaveText('Removed by a moderator');
});

test('anyone reports a message from its actions; a moderator finds it in the queue and removes it', async ({ browser }) => {
  const gil = await member(browser, herald, 'gil', 'Gil Moss');
  const hal = await member(browser, herald, 'hal', 'Hal Ito');
  await send(gil, 'my password is hunter2, log in as me');
  // Hal reports it: "Report" opens the message's page, where he says why.
  const it = hal.locator('.message', { hasText: 'hunter2' });
  await it.hover();
  await it.getByTestId('report-action').click();
  await expect(hal).toHaveURL(/\/r\/general\/messages\/\d+$/);
  await expect(hal.getByTestId('message')).toContainText('hunter2');
  expect(await axe(hal)).toEqual([]);
  await hal.getByTestId('reason').fill('shares a password');
  await hal.getByRole('button', { name: 'Report' }).click();
  await expect(hal.getByTestId('done')).toHaveText('Thank you: the moderators will look at it.');

  // The owner (an admin) finds it from their account page, and removes it from its page.
  const mod = await (await browser.newContext()).newPage();
  await mod.goto(`${herald.url}/sign-in?next=/account`);
  await mod.getByTestId('handle').fill(OWNER.handle);
  await mod.getByTestId('password').fill(OWNER.password);
  await mod.getByRole('button', { name: 'Sign in' }).click();
  await mod.getByTestId('moderation-link').click();
  const report = mod.getByTestId('report').filter({ hasText: 'hunter2' });
  await expect(report).toContainText('Hal Ito: shares a password');
  expect(await axe(mod)).toEqual([]);
  await report.getByRole('link').click();
  await mod.getByTestId('remove').click();
  await expect(mod.getByTestId('done')).toContainText('Removed');
  // Gil's open page shows it removed at once.
  await expect(gil.locator('.messages')).not.toContainText('hunter2');
  await expect(gil.getByTestId('deleted').last()).toHaveText('Removed by a moderator');
  await mod.goto(`${herald.url}/moderation`);
  await expect(mod.getByTestId('report').filter({ hasText: 'hunter2' })).toHaveCount(0);
});

test('an admin deletes a room from its page: everyone in it is put out, and its address is a room that does not exist', async ({ browser }) => {
  const ivy = await member(browser, herald, 'ivy', 'Ivy Park');
  const errors = [ivy].map(watchForErrors);
  const admin = await (await browser.newContext()).newPage();
  await admin.goto(`${herald.url}/sign-in`);
  await admin.getByTestId('handle').fill(OWNER.handle);
  await admin.getByTestId('password').fill(OWNER.password);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await expect(admin.getByTestId('status')).toHaveAttribute('data-state', 'connected');

  // The admin makes a private room and adds Ivy; she talks in it.
  await admin.getByTestId('new-room').click();
  await admin.getByTestId('kind-private').check();
  await admin.getByTestId('new-room-name').fill('Old project');
  await admin.getByRole('button', { name: 'Create room' }).click();
  await expect(admin).toHaveURL(/\/r\/~[0-9a-f]{20}$/);
  const address = admin.url();
  await admin.getByTestId('room-name').click();
  await admin.getByTestId('add-member-handle').fill('ivy');
  await admin.getByRole('button', { name: 'Add to room' }).click();
  await expect(admin.getByTestId('member')).toHaveCount(2);
  await entry(ivy, 'Old project').getByRole('link').click();
  await expect(ivy.getByTestId('room-name')).toHaveText('🔒 Old project');
  await send(ivy, 'the last notes of the old project');

  expect(errors.flat()).toEqual([]);

  // Deleting asks for the box to be ticked: without it, nothing happens.
  await expect(admin.getByTestId('delete-room')).toBeVisible();
  await admin.screenshot({ path: test.info().outputPath('delete-room.png'), fullPage: true });
  expect(await axe(admin)).toEqual([]);
  await admin.getByTestId('delete-room').click();
  await expect(admin.getByTestId('delete-room-form')).toBeVisible();
  await expect(entry(ivy, 'Old project')).toHaveCount(1);
  await admin.getByTestId('delete-room-sure').check();
  await admin.getByTestId('delete-room').click();
  await expect(admin.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(entry(admin, 'Old project')).toHaveCount(0);

  // Ivy, who had it open, is put out at once: her page says the room does not exist.
  await expect(ivy.getByTestId('no-room')).toContainText('does not exist, or you are not one of its members');
  expect(await ivy.content()).not.toContain('the last notes of the old project');
  await ivy.goto(herald.url);
  await expect(ivy.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await expect(entry(ivy, 'Old project')).toHaveCount(0);
  // Her page was reloaded to a room that is not there (a 404, as the console says), and no more.
  const again = await admin.goto(address);
  expect(again?.status()).toBe(404);
  expect(errors.flat().filter((e) => !e.includes('status of 404'))).toEqual([]);
});
