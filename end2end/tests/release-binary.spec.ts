// The release binary as an operator meets it: alone in a folder, serving every asset, documenting its
// flags, stopping cleanly on SIGTERM.
import { APIRequestContext, expect, test } from '../lib/test';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { heraldUrl, openChat } from '../lib/chat';
import { binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

/**
 * The page's script, wasm and stylesheet, as the build lists them; the page links the first two and
 * carries the stylesheet inline (its first paint waits for no second request).
 */
async function pageFiles(request: APIRequestContext): Promise<{ js: string; wasm: string; css: string }> {
  // The chat page is a signed-in person's: in as a guest first (the request context keeps the cookie).
  await request.post(heraldUrl() + '/session', { form: { name: 'Files', next: '/' } });
  const listed = await (await request.get(heraldUrl() + '/pkg/files.json')).json();
  const files = { js: `/${listed.js}`, wasm: `/${listed.wasm}`, css: `/${listed.css}` };
  const html = await (await request.get(heraldUrl() + '/')).text();
  const links = [...html.matchAll(/"(\/pkg\/[^"]+)"/g)].map((m) => m[1]);
  expect(new Set(links)).toEqual(new Set([files.js, files.wasm]));
  const css = await (await request.get(heraldUrl() + files.css)).text();
  expect(css.length).toBeGreaterThan(1000);
  expect(html).toContain(`>${css}</style>`);
  return files;
}

test('copied alone into an empty folder, it serves the page and every asset', async ({ request }) => {
  // The global setup started it in a folder holding nothing but the binary (and the data dir it made).
  expect(fs.readdirSync(process.env.HERALD_DIR!).sort()).toEqual(['data', 'herald']);

  const files = await pageFiles(request);
  const expectations: [string, string][] = [
    ['/', 'text/html'],
    [files.wasm, 'application/wasm'],
    [files.js, 'text/javascript'],
    [files.css, 'text/css'],
    ['/favicon.svg', 'image/svg+xml'],
  ];
  for (const [url, type] of expectations) {
    const response = await request.get(heraldUrl() + url);
    expect(response.status(), url).toBe(200);
    expect(response.headers()['content-type'], url).toContain(type);
  }
  const wasm = await request.get(heraldUrl() + files.wasm);
  const bytes = await wasm.body();
  expect([...bytes.subarray(0, 4)]).toEqual([0x00, 0x61, 0x73, 0x6d]); // "\0asm"
});

test('the files the page loads are named after their content and kept for good; others revalidate', async ({ request }) => {
  const files = await pageFiles(request);
  for (const [file, stem, ext] of [
    [files.js, 'herald', '.js'],
    [files.wasm, 'herald_bg', '.wasm'],
    [files.css, 'herald', '.css'],
  ]) {
    const response = await request.get(heraldUrl() + file, { headers: { 'accept-encoding': 'identity' } });
    expect(response.headers()['cache-control'], file).toBe('public, max-age=31536000, immutable');
    // The name holds the start of the content's SHA-256: a new build cannot reuse it.
    const hash = createHash('sha256').update(await response.body()).digest('hex').slice(0, 16);
    expect(file).toBe(`/pkg/${stem}.${hash}${ext}`);
  }
  // The unhashed names are gone: nothing can be served stale under them.
  for (const old of ['/pkg/herald.js', '/pkg/herald_bg.wasm', '/pkg/herald.css']) {
    expect((await request.get(heraldUrl() + old)).status(), old).toBe(404);
  }
  // The list of names itself changes with each build under one name: revalidated every time.
  const manifest = await request.get(heraldUrl() + '/pkg/files.json');
  expect(manifest.headers()['cache-control']).toBe('no-cache');
});

test('assets carry validators, revalidate with 304, and come gzipped when accepted', async ({ request }) => {
  const url = heraldUrl() + (await pageFiles(request)).wasm;
  const plain = await request.get(url, { headers: { 'accept-encoding': 'identity' } });
  const etag = plain.headers()['etag'];
  expect(etag).toMatch(/^"[0-9a-f]+"$/);

  const again = await request.get(url, { headers: { 'accept-encoding': 'identity', 'if-none-match': etag } });
  expect(again.status()).toBe(304);

  const gzipped = await request.get(url, { headers: { 'accept-encoding': 'gzip' } });
  expect(gzipped.headers()['content-encoding']).toBe('gzip');
  expect(gzipped.headers()['content-type']).toBe('application/wasm');
  // The client decoded it: the same wasm as the uncompressed one.
  expect((await gzipped.body()).equals(await plain.body())).toBe(true);

  const favicon = await request.get(heraldUrl() + '/favicon.svg');
  expect(favicon.headers()['cache-control']).toContain('max-age=');
});

test('brotli is served when accepted, else gzip; the page itself is compressed too', async ({ request }) => {
  const files = await pageFiles(request);
  for (const file of [files.wasm, files.js, files.css]) {
    const url = heraldUrl() + file;
    const plain = await request.get(url, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers()['content-encoding'], file).toBeUndefined();
    for (const [accept, expected] of [
      ['gzip, deflate, br, zstd', 'br'],
      ['br', 'br'],
      ['gzip', 'gzip'],
      ['gzip, br;q=0', 'gzip'],
    ]) {
      const response = await request.get(url, { headers: { 'accept-encoding': accept } });
      expect(response.headers()['content-encoding'], `${file} ${accept}`).toBe(expected);
      expect(response.headers()['vary']).toContain('Accept-Encoding');
      // Decoded by the client: the very same file.
      expect((await response.body()).equals(await plain.body()), `${file} ${accept}`).toBe(true);
    }
  }
  // The chat page (and API JSON) are compressed as they are sent.
  for (const [accept, expected] of [
    ['br', 'br'],
    ['gzip', 'gzip'],
  ]) {
    const page = await request.get(heraldUrl() + '/', { headers: { 'accept-encoding': accept } });
    expect(page.headers()['content-encoding'], accept).toBe(expected);
    expect(await page.text()).toContain('<!DOCTYPE html>');
  }
  const plainPage = await request.get(heraldUrl() + '/', { headers: { 'accept-encoding': 'identity' } });
  expect(plainPage.headers()['content-encoding']).toBeUndefined();
});

test('--help lists its flags and their environment twins', async () => {
  const help = spawnSync(binaryUnderTest(), ['--help'], { encoding: 'utf8' });
  expect(help.status).toBe(0);
  for (const text of ['--addr', 'HERALD_ADDR', '--data-dir', 'HERALD_DATA_DIR', '127.0.0.1:3000']) {
    expect(help.stdout).toContain(text);
  }
});

test('the environment twins of --addr and --data-dir are honoured', async ({ request }) => {
  const dir = copyAlone(binaryUnderTest());
  const herald = await startHerald(dir, [], { HERALD_ADDR: '127.0.0.1:0', HERALD_DATA_DIR: 'from-env' });
  try {
    expect((await request.get(herald.url + '/')).status()).toBe(200);
    expect(fs.existsSync(path.join(dir, 'from-env'))).toBe(true);
  } finally {
    expect(await herald.stop()).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM closes open sockets with going-away (1001) and exits cleanly', async ({ browser }) => {
  const dir = copyAlone(binaryUnderTest());
  const herald = await startHerald(dir);
  try {
    const page = await (await browser.newContext()).newPage();
    await openChat(page, herald.url);
    // A second, plain socket in the page, to read the close code the server sends.
    await page.evaluate((url) => {
      const w = window as unknown as { closeCode?: number };
      const socket = new WebSocket(url.replace('http', 'ws') + '/ws');
      socket.onclose = (event) => (w.closeCode = event.code);
      return new Promise((resolve) => (socket.onmessage = resolve));
    }, herald.url);

    const code = await herald.stop();
    expect(code).toBe(0);
    // The close event is dispatched asynchronously in the page: wait for it, then check its code.
    const closeCode = await page.waitForFunction(() => (window as unknown as { closeCode?: number }).closeCode);
    expect(await closeCode.jsonValue()).toBe(1001);
    // The app's own socket noticed too and is trying again.
    await expect(page.getByTestId('status')).toHaveAttribute('data-state', /reconnecting|connecting/);
    expect(fs.existsSync(path.join(dir, 'data'))).toBe(true);
  } finally {
    await herald.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
