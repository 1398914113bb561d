// Herald's browser tests. Run through `cargo xtask test`, which builds the release binary, installs
// Debian's Chromium and the npm packages, and adds these results to the Rust ones.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  globalSetup: './lib/global-setup.ts',
  // A flaky test is a bug to fix, not to retry.
  retries: 0,
  workers: 2,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  forbidOnly: true,
  reporter: [['list'], ['json', { outputFile: 'test-results/report.json' }]],
  use: {
    browserName: 'chromium',
    launchOptions: {
      // Playwright's own browser download needs GitHub; Debian's Chromium is used instead.
      executablePath: process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
    trace: 'off',
  },
  projects: [
    { name: 'browser', testIgnore: /lighthouse\.spec\.ts/ },
    // Alone, after the others: Lighthouse's simulated timings need the box to itself.
    { name: 'lighthouse', testMatch: /lighthouse\.spec\.ts/, dependencies: ['browser'] },
  ],
});
