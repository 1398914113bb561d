// Accounts as people meet them (docs/ACCOUNTS.md): the first run's setup, signing up and in, one
// person on two browsers, the devices page signing one out, a new password. Each test has a server
// of its own, without guests and not set up: what an operator starts by default.
import { Browser, expect, Page, test } from '../lib/test';
import * as fs from 'node:fs';
import { makeRoomIfOffered, send, uniqueRoom } from '../lib/chat';
import { binaryUnderTest, copyAlone, Herald, SETUP_CODE, startHerald, TEST_FLAGS } from '../lib/herald';
import { axe, PASSWORD, signIn } from '../lib/people';

/** A server of its own without guests; set up by the harness's owner if `claim`. */
async function fresh(flags: string[] = [], claim = false): Promise<Herald> {
  return startHerald(copyAlone(binaryUnderTest()), [...TEST_FLAGS, ...flags], { HERALD_GUESTS: 'false' }, { claim });
}

async function stop(herald: Herald) {
  expect(await herald.stop()).toBe(0);
  fs.rmSync(herald.dir, { recursive: true, force: true });
}

/** Waits until the chat is hydrated and connected. */
async function inChat(page: Page) {
  await makeRoomIfOffered(page);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected');
}

/** A browser of its own (a device), on the sign-in page of `url`, signed in as `handle`. */
async function device(browser: Browser, url: string, handle: string, viewport = { width: 1280, height: 800 }) {
  const page = await (await browser.newContext({ viewport })).newPage();
  await page.goto(url);
  await expect(page.getByTestId('sign-in-form')).toBeVisible();
  await signIn(page, handle, PASSWORD);
  await inChat(page);
  return page;
}

test('the first visitor of a fresh server makes the owner with the printed code, and then chats', async ({ browser }) => {
  const herald = await fresh();
  try {
    // The code is in what Herald printed.
    await expect.poll(() => herald.output()).toContain(`enter the setup code ${SETUP_CODE}`);
    const room = uniqueRoom('first-run');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${herald.url}/r/${room}`);
    await expect(page).toHaveURL(/\/setup$/);
    await expect(page.getByTestId('setup-form')).toBeVisible();
    expect(await axe(page)).toEqual([]);
    // A wrong code is explained, and makes nothing.
    await page.getByTestId('setup-code').fill('NOT-THE-CODE-AT-ALL');
    await page.getByTestId('handle').fill('ann');
    await page.getByTestId('display-name').fill('Ann Lee');
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByRole('button', { name: "Create the owner's account" }).click();
    await expect(page.getByTestId('form-error')).toContainText('not the setup code');
    await expect(page.getByTestId('handle')).toHaveValue('ann');
    // The right one, typed in small letters.
    await page.getByTestId('setup-code').fill(SETUP_CODE.toLowerCase());
    await page.getByTestId('display-name').fill('Ann Lee');
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByRole('button', { name: "Create the owner's account" }).click();
    await inChat(page);
    await expect(page.getByTestId('me')).toHaveText('Ann Lee');
    await send(page, 'the first words on this server');
    // The setup page is gone for good; someone else is asked to sign in.
    const other = await (await browser.newContext()).newPage();
    await other.goto(`${herald.url}/setup`);
    await expect(other.getByTestId('sign-in-form')).toBeVisible();
    expect(await axe(other)).toEqual([]);
  } finally {
    await stop(herald);
  }
});

test('one person signed in on a laptop and a phone is one person; signing the phone out from the laptop ends it there', async ({ browser }) => {
  const herald = await fresh(['--sign-up', 'open'], true);
  try {
    const room = uniqueRoom('devices');
    // Bea signs herself up (the server takes sign-ups).
    const laptop = await (await browser.newContext()).newPage();
    await laptop.goto(`${herald.url}/r/${room}`);
    await laptop.getByTestId('sign-up-link').click();
    await laptop.getByTestId('handle').fill('Bea');
    await laptop.getByTestId('display-name').fill('Bea Ortiz');
    await laptop.getByTestId('password').fill('password1');
    await laptop.getByRole('button', { name: 'Create account' }).click();
    await expect(laptop.getByTestId('form-error')).toContainText('most common');
    await laptop.getByTestId('display-name').fill('Bea Ortiz');
    await laptop.getByTestId('password').fill(PASSWORD);
    await laptop.getByRole('button', { name: 'Create account' }).click();
    // Back to the room she asked for.
    await inChat(laptop);
    await expect(laptop).toHaveURL(new RegExp(`/r/${room}$`));

    const phone = await device(browser, `${herald.url}/r/${room}`, 'bea', { width: 390, height: 844 });
    await expect(phone.getByTestId('me')).toHaveText('Bea Ortiz');
    // One person, however many devices: "1 here", and what one says is one's own on the other.
    await expect(laptop.getByTestId('people-toggle')).toContainText('1 here');
    await send(phone, 'sent from the phone');
    const mine = laptop.locator('.message', { hasText: 'sent from the phone' });
    await expect(mine).toHaveClass(/mine/);

    // The laptop's devices page lists both; it signs the phone out.
    await laptop.goto(`${herald.url}/account`);
    await expect(laptop.getByTestId('session')).toHaveCount(2);
    await expect(laptop.locator('[data-testid=session][data-this=true]')).toContainText('this device');
    await expect(laptop.locator('[data-testid=session][data-this=false]')).toContainText('Chromium');
    expect(await axe(laptop)).toEqual([]);
    await laptop.getByTestId('end-others').click();
    await expect(laptop.getByTestId('session')).toHaveCount(1);
    // The phone's socket is closed at once, its next handshake refused, and it is asked to sign
    // in, to come back to the room.
    await expect(phone.getByTestId('sign-in-form')).toBeVisible();
    await signIn(phone, 'bea', PASSWORD);
    await inChat(phone);
    await expect(phone).toHaveURL(new RegExp(`/r/${room}$`));
  } finally {
    await stop(herald);
  }
});

test('a new password signs every other device out, and the old one no longer works', async ({ browser }) => {
  const herald = await fresh();
  try {
    // The owner, set up through the form.
    const laptop = await (await browser.newContext()).newPage();
    await laptop.goto(herald.url);
    await laptop.getByTestId('setup-code').fill(SETUP_CODE);
    await laptop.getByTestId('handle').fill('cy');
    await laptop.getByTestId('display-name').fill('Cy');
    await laptop.getByTestId('password').fill(PASSWORD);
    await laptop.getByRole('button', { name: "Create the owner's account" }).click();
    await inChat(laptop);
    const phone = await device(browser, herald.url, 'cy');

    // From the chat, "Your account and devices".
    await laptop.getByTestId('me').click();
    await laptop.getByTestId('account-link').click();
    await laptop.getByTestId('current').fill(PASSWORD);
    await laptop.getByTestId('password').fill('a newer password, longer');
    await laptop.getByTestId('again').fill('a newer password, longer');
    await laptop.getByRole('button', { name: 'Change password' }).click();
    await expect(laptop.getByTestId('done')).toContainText('every other device is signed out');
    await expect(laptop.getByTestId('session')).toHaveCount(1);

    await expect(phone.getByTestId('sign-in-form')).toBeVisible();
    await signIn(phone, 'cy', PASSWORD);
    await expect(phone.getByTestId('form-error')).toContainText('do not match');
    await phone.getByTestId('password').fill('a newer password, longer');
    await phone.getByRole('button', { name: 'Sign in' }).click();
    await inChat(phone);
  } finally {
    await stop(herald);
  }
});

test('an invitation link from the owner lets a new person sign up and chat with them', async ({ browser }) => {
  const herald = await fresh();
  try {
    const room = uniqueRoom('invited');
    const owner = await (await browser.newContext()).newPage();
    await owner.goto(`${herald.url}/r/${room}`);
    await owner.getByTestId('setup-code').fill(SETUP_CODE);
    await owner.getByTestId('handle').fill('olu');
    await owner.getByTestId('display-name').fill('Olu');
    await owner.getByTestId('password').fill(PASSWORD);
    await owner.getByRole('button', { name: "Create the owner's account" }).click();
    await inChat(owner);

    // By default nobody signs themselves up: the page says how to get in.
    const stranger = await (await browser.newContext()).newPage();
    await stranger.goto(`${herald.url}/sign-up`);
    await expect(stranger.getByTestId('why')).toContainText('by invitation');

    // The owner makes a link for one person, from their account page.
    await owner.goto(`${herald.url}/account`);
    await owner.locator('#uses').selectOption('1');
    await owner.getByTestId('make-invitation').click();
    const link = await owner.getByTestId('invitation-link').inputValue();
    expect(link).toMatch(new RegExp(`^${herald.url}/invite/[0-9a-f]{64}$`));
    expect(await axe(owner)).toEqual([]);

    const guest = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    await guest.goto(link);
    await expect(guest.getByText('You are invited')).toBeVisible();
    expect(await axe(guest)).toEqual([]);
    await guest.getByTestId('handle').fill('pia');
    await guest.getByTestId('display-name').fill('Pia');
    await guest.getByTestId('password').fill(PASSWORD);
    await guest.getByRole('button', { name: 'Create account' }).click();
    await inChat(guest);
    await guest.goto(`${herald.url}/r/${room}`);
    await inChat(guest);
    await send(guest, 'thanks for the invitation');
    await owner.goto(`${herald.url}/r/${room}`);
    await expect(owner.locator('.message', { hasText: 'thanks for the invitation' }).locator('.author')).toHaveText('Pia');

    // Used once, the link lets nobody else in.
    await stranger.goto(link);
    await expect(stranger.getByTestId('why')).toContainText('not valid any more');
  } finally {
    await stop(herald);
  }
});

