// Benchmarks that need a browser (not tests: `cargo xtask test` does not run them). See BENCHMARKS.md.
//   cd end2end && HERALD_BIN=../target/release/herald npx playwright test -c bench.config.ts
import { defineConfig } from '@playwright/test';
import base from './playwright.config';

export default defineConfig({
  ...base,
  testDir: './bench',
  workers: 1,
  timeout: 600_000,
  reporter: [['list']],
});
