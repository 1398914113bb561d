// Playwright's `test`, with one thing added to every test: the browser contexts it opened are
// closed when it ends. The `browser` fixture lives as long as its worker, and so does every context
// a test makes with `browser.newContext()` unless it is closed: left open, each page of every earlier
// test went on running (its socket, its timers, reconnecting to servers long stopped), and a test
// late in a worker ran several times slower than alone — near its time limit on a slow machine.
import { test as base } from '@playwright/test';

export * from '@playwright/test';

export const test = base.extend<{ closeContexts: void }>({
  closeContexts: [
    async ({ browser }, use) => {
      await use();
      await Promise.all(browser.contexts().map((context) => context.close()));
    },
    { auto: true },
  ],
});
