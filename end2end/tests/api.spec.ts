// The HTTP API meeting the browser: an EventSource on the page follows a room that a program publishes
// to, and a chat user sees an announcement. Its own Herald (an API token, and announcements go to every
// room, which would land in other tests' rooms on the shared server).
import { expect, test } from '../lib/test';
import { makeRoom, bodies, openChat, watchForErrors } from '../lib/chat';
import { Herald, TEST_FLAGS, binaryUnderTest, copyAlone, startHerald } from '../lib/herald';

const TOKEN = 'e2e-api-token';
let herald: Herald;

test.beforeAll(async () => {
  herald = await startHerald(copyAlone(binaryUnderTest()), TEST_FLAGS, { HERALD_API_TOKENS: TOKEN });
});

test.afterAll(async () => {
  expect(await herald.stop()).toBe(0);
});

async function post(path: string, body: object): Promise<Response> {
  return fetch(herald.url + path, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

test('an EventSource on the page receives what a program publishes; the chat shows it as a bot', async ({
  browser,
}) => {
  const page = await (await browser.newContext()).newPage();
  const errors = watchForErrors(page);
  await openChat(page, `${herald.url}/r/deploys`, 'Ann');
  // "Connected" comes with the server's welcome, before the room's join is answered; reading a room
  // that does not exist yet is a 404 (docs/API.md), so wait until Ann is listed in it.
  await expect(page.getByTestId('people')).toHaveText('Ann');
  // The page's own session cookie lets its scripts read the stream.
  await page.evaluate(() => {
    const w = window as unknown as { events: { type: string; id: string; data: string }[] };
    w.events = [];
    const source = new EventSource('/api/rooms/deploys/events');
    for (const type of ['joined', 'message', 'announcement']) {
      source.addEventListener(type, (e) => {
        const m = e as MessageEvent;
        w.events.push({ type, id: m.lastEventId, data: m.data });
      });
    }
  });
  const events = () =>
    page.evaluate(() => (window as unknown as { events: { type: string; id: string; data: string }[] }).events);
  await expect.poll(async () => (await events()).map((e) => e.type)).toContain('joined');

  const response = await post('/api/rooms/deploys/messages', { body: 'v2.3 is live', author_name: 'Deploy bot' });
  expect(response.status).toBe(201);
  const published = await response.json();

  await expect
    .poll(async () => (await events()).filter((e) => e.type === 'message').map((e) => [e.id, JSON.parse(e.data).body]))
    .toEqual([[String(published.seq), 'v2.3 is live']]);
  // In the conversation it is the bot's, marked as such, never as a person's message.
  const shown = page.locator('.message', { hasText: 'v2.3 is live' });
  await expect(shown).toHaveClass(/bot/);
  await expect(shown.locator('.author')).toHaveText('Deploy bot');
  await expect(shown.locator('.badge')).toHaveText('bot');
  expect(errors).toEqual([]);
});

test('a chat user sees an announcement from /api/broadcast in every open room', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChat(page, `${herald.url}/r/lobby`, 'Bob');
  // A second room open in the same tab.
  await makeRoom(page, 'support');
  await page.getByTestId('room-input').fill('support');
  await page.getByTestId('room-input').press('Enter');
  await expect(page.getByTestId('room-name')).toHaveText('# support');
  // Joined on the server (so the room exists): Bob is listed among the people in it.
  await expect(page.getByTestId('people')).toHaveText('Bob');

  const response = await post('/api/broadcast', { body: 'Maintenance at 18:00 UTC', author_name: 'Ops' });
  expect(response.status).toBe(201);
  const announced = await response.json();
  expect(announced.rooms.map((r: { room: string }) => r.room)).toEqual(expect.arrayContaining(['lobby', 'support']));

  const banner = page.getByTestId('announcement').filter({ hasText: 'Maintenance at 18:00 UTC' });
  await expect(banner).toHaveCount(1);
  await expect(banner.locator('.label')).toHaveText('Announcement');
  // Not a chat message from a person.
  await expect(bodies(page).filter({ hasText: 'Maintenance' })).toHaveCount(0);
  // And in the other open room too.
  await page.locator('.room[data-room="lobby"] a').click();
  await expect(page.getByTestId('room-name')).toHaveText('# lobby');
  await expect(page.getByTestId('announcement').filter({ hasText: 'Maintenance at 18:00 UTC' })).toHaveCount(1);
});
