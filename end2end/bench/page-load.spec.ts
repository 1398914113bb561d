// How long a returning reader waits for the chat on a slow phone network: Chromium throttled over CDP
// to DevTools' "Fast 3G" (562.5 ms round trip, 1.44 Mbit/s down, 675 kbit/s up) and a 4x slower CPU,
// cold cache, a room with 50 messages. Prints a table for BENCHMARKS.md ("The browser bundle").
import { Browser, test } from '@playwright/test';
import * as fs from 'node:fs';
import { chooseName, send, uniqueRoom } from '../lib/chat';
import { binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

const RUNS = Number(process.env.RUNS ?? 5);
const FAST_3G = { offline: false, latency: 562.5, downloadThroughput: 180_000, uploadThroughput: 84_375 };
const CPU_SLOWDOWN = 4;

/** Moments after navigation start (ms), recorded inside the page as they happen. */
interface Marks {
  paint?: number;
  composer?: number;
  hydrated?: number;
  connected?: number;
}

// Runs in the page before any of it: watches for each moment with a MutationObserver.
const WATCH = () => {
  const marks: Record<string, number> = {};
  (window as unknown as { marks: Record<string, number> }).marks = marks;
  const mark = (name: string, holds: boolean) => {
    if (holds && marks[name] === undefined) marks[name] = performance.now();
  };
  const check = () => {
    const box = document.getElementById('message-box') as HTMLTextAreaElement | null;
    mark('composer', !!box && !box.disabled);
    mark('hydrated', !!document.querySelector('.app[data-hydrated="true"]'));
    mark('connected', !!document.querySelector('[data-testid="status"][data-state="connected"]'));
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.name === 'first-contentful-paint') marks.paint = entry.startTime;
    }
  }).observe({ type: 'paint', buffered: true });
};

async function load(browser: Browser, url: string, cookies: Parameters<Browser['newContext']>[0]) {
  const context = await browser.newContext(cookies);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: false });
  await cdp.send('Network.emulateNetworkConditions', FAST_3G);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
  let bytes = 0;
  cdp.on('Network.loadingFinished', (e) => (bytes += e.encodedDataLength));
  await page.addInitScript(WATCH);
  const timed = async (): Promise<Marks & { bytes: number }> => {
    bytes = 0;
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { marks: Marks }).marks.connected !== undefined, null, {
      timeout: 60_000,
    });
    const marks = await page.evaluate(() => (window as unknown as { marks: Marks }).marks);
    return { ...marks, bytes };
  };
  const cold = await timed();
  // The same reader coming back later: the hashed files come from the cache, unasked.
  const warm = await timed();
  await context.close();
  return { cold, warm };
}

test('time to a usable composer on Fast 3G with a 4x slower CPU', async ({ browser }) => {
  const dir = copyAlone(binaryUnderTest());
  const herald = await startHerald(dir);
  try {
    const room = uniqueRoom('load');
    const url = `${herald.url}/r/${room}`;
    const setup = await browser.newContext();
    const page = await setup.newPage();
    await page.goto(url);
    await chooseName(page, 'Reader');
    for (let i = 1; i <= 50; i++) await send(page, `message ${i}: the quick brown fox jumps over the lazy dog`);
    const state = { storageState: await setup.storageState() };
    await setup.close();

    const rows: string[] = [];
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const results = [];
    for (let run = 0; run < RUNS; run++) results.push(await load(browser, url, state));
    for (const visit of ['cold', 'warm'] as const) {
      const of = (key: keyof Marks | 'bytes') => median(results.map((r) => r[visit][key] ?? NaN));
      rows.push(
        `| ${visit} | ${Math.round(of('paint'))} | ${Math.round(of('composer'))} | ` +
          `${Math.round(of('hydrated'))} | ${Math.round(of('connected'))} | ${Math.round(of('bytes') / 1024)} KiB |`,
      );
    }
    const table = [
      `Fast 3G + ${CPU_SLOWDOWN}x CPU, median of ${RUNS} runs (ms after navigation start):`,
      '',
      '| visit | first paint | composer takes typing | hydrated | connected | transferred |',
      '|---|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    console.log(table);
    if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, table + '\n');
  } finally {
    await herald.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
