// The page's protective headers, enforced in Chromium: the chat works whole under its
// Content-Security-Policy (hydration, the WebSocket, Server-Sent Events, the name form) without one
// violation, an injected inline script does not run, and no other site can frame the page.
import { expect, test } from '../lib/test';
import { heraldUrl, openChat, send, uniqueRoom, watchForErrors } from '../lib/chat';

/** Records every CSP violation the page reports, from before its first script runs. */
async function recordViolations(page: import('@playwright/test').Page) {
  await page.addInitScript(() => {
    const w = window as unknown as { violations: string[] };
    w.violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      w.violations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return () => page.evaluate(() => (window as unknown as { violations: string[] }).violations);
}

test('the chat page carries a strict policy and works whole under it', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  const errors = watchForErrors(page);
  const violations = await recordViolations(page);
  const room = uniqueRoom('csp');

  // Signing in as a guest (a form post), hydrating, the socket; then the page again, to read it.
  await openChat(page, `${heraldUrl()}/r/${room}`);
  const response = await page.goto(`${heraldUrl()}/r/${room}`);
  const headers = response!.headers();
  const csp = headers['content-security-policy'];
  expect(csp).toMatch(/script-src 'self' 'nonce-[0-9a-f]{32}' 'wasm-unsafe-eval'/);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("connect-src 'self'");
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('same-origin');
  expect(headers['x-frame-options']).toBe('DENY');
  // The hydration script carries the header's nonce.
  const nonce = /'nonce-([0-9a-f]+)'/.exec(csp)![1];
  const scriptNonces = await page.locator('script').evaluateAll((s) => s.map((e) => (e as HTMLScriptElement).nonce));
  expect(scriptNonces.length).toBeGreaterThan(0);
  expect(new Set(scriptNonces)).toEqual(new Set([nonce]));
  // So does the inline stylesheet, and it applies.
  const styleNonces = await page.locator('style').evaluateAll((s) => s.map((e) => (e as HTMLStyleElement).nonce));
  expect(styleNonces).toEqual([nonce]);
  expect(await page.locator('.app').evaluate((el) => getComputedStyle(el).display)).toBe('grid');

  // Sending, a Server-Sent Events stream.
  await expect(page.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await send(page, 'under a strict policy');
  await expect(page.locator('.message .body', { hasText: 'under a strict policy' })).toHaveCount(1);
  await page.evaluate((room) => {
    const w = window as unknown as { sse: string[] };
    w.sse = [];
    new EventSource(`/api/rooms/${room}/events`).addEventListener('joined', () => w.sse.push('joined'));
  }, room);
  await expect.poll(() => page.evaluate(() => (window as unknown as { sse: string[] }).sse)).toEqual(['joined']);

  // A script that got into the page some other way does not run.
  const ran = await page.evaluate(async () => {
    const w = window as unknown as { injected?: boolean };
    const script = document.createElement('script');
    script.textContent = 'window.injected = true';
    document.body.appendChild(script);
    await new Promise((r) => setTimeout(r, 100));
    return w.injected === true;
  });
  expect(ran).toBe(false);
  // Nor does a style that got in (it could hide or restyle what the reader sees).
  const styled = await page.evaluate(async () => {
    const style = document.createElement('style');
    style.textContent = '.app { display: none !important; }';
    document.head.appendChild(style);
    await new Promise((r) => setTimeout(r, 100));
    return getComputedStyle(document.querySelector('.app')!).display;
  });
  expect(styled).toBe('grid');
  expect(await violations()).toEqual(['script-src-elem inline', 'style-src-elem inline']);
  // Only those refusals: everything Herald itself does is within the policy.
  expect(errors.filter((e) => !e.includes('Content Security Policy'))).toEqual([]);
  expect(errors.filter((e) => e.includes('Content Security Policy'))).toHaveLength(2);
});

test('another site cannot frame the chat', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  // A page of another origin (localhost is not 127.0.0.1 to the browser) framing Herald.
  const other = heraldUrl().replace('127.0.0.1', 'localhost');
  await page.goto(`${other}/healthz`);
  await page.setContent(`<iframe id="f" src="${heraldUrl()}/"></iframe>`);
  const frame = page.frameLocator('#f');
  await expect(page.locator('#f')).toBeAttached();
  // The framed document never becomes Herald's page.
  await expect
    .poll(async () => page.frames().find((f) => f !== page.mainFrame())?.url() ?? '')
    .toMatch(/^chrome-error:|^about:blank$/);
  await expect(frame.getByTestId('name-form')).toHaveCount(0);
});
