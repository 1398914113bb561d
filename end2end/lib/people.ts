// People as the browser tests make them on servers with accounts (accounts.spec.ts,
// private-rooms.spec.ts, people.spec.ts), and the accessibility check their pages get.
import AxeBuilder from '@axe-core/playwright';
import { Browser, expect, Page } from '@playwright/test';
import { Herald } from './herald';

/** The password of everyone the tests sign up. */
export const PASSWORD = 'a password nobody guesses';

/** What axe-core finds wrong with the page, one line per rule broken. */
export async function axe(page: Page): Promise<string[]> {
  return (await new AxeBuilder({ page }).analyze()).violations.map(
    (v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
}

/** Someone signing themselves up on a browser of their own; left in #general, connected. */
export async function member(browser: Browser, herald: Herald, handle: string, name: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await signUp(page, herald, handle, name);
  return page;
}

/** Someone signing themselves up on `page` (a browser the test set up); left in #general, connected. */
export async function signUp(page: Page, herald: Herald, handle: string, name: string) {
  await page.goto(`${herald.url}/sign-up`);
  await page.getByTestId('handle').fill(handle);
  await page.getByTestId('display-name').fill(name);
  await page.getByTestId('password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected');
}

/** Signs in on the sign-in page `page` shows. */
export async function signIn(page: Page, handle: string, password: string) {
  await page.getByTestId('handle').fill(handle);
  await page.getByTestId('password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

