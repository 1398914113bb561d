// Rooms side by side in one tab, who is in them, who is typing, and older history on scroll — in real
// Chromium against the release binary. Each test uses rooms of its own: other tests share the server.
import { expect, Page, test } from '../lib/test';
import { bodies, flood, heraldUrl, makeRoom, openChat, send, uniqueRoom, watchForErrors } from '../lib/chat';

/** Goes to a room through the sidebar's "go to room" box, without a page load. */
async function goToRoom(page: Page, room: string) {
  await makeRoom(page, room);
  await page.getByTestId('room-input').fill(room);
  await page.getByTestId('room-input').press('Enter');
  await expect(page).toHaveURL(new RegExp(`/r/${room}$`));
  await expect(page.getByTestId('room-name')).toHaveText(`# ${room}`);
}

/** The sidebar entry of a room. */
function roomLink(page: Page, room: string) {
  return page.locator(`.room[data-room="${room}"]`);
}

test('one socket carries every open room; switching keeps each conversation', async ({ browser }) => {
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const errors = [a, b].map(watchForErrors);
  let sockets = 0;
  a.on('websocket', () => (sockets += 1));
  const first = uniqueRoom('first');
  const second = uniqueRoom('second');

  await openChat(a, `${heraldUrl()}/r/${first}`);
  await send(a, `said in ${first}`);
  // Survives only if the page is never reloaded.
  await a.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
  await goToRoom(a, second);
  await expect(a.getByTestId('status')).toHaveAttribute('data-state', 'connected');
  await send(a, `said in ${second}`);
  await expect(bodies(a).filter({ hasText: `said in ${second}` })).toHaveCount(1);
  await expect(bodies(a).filter({ hasText: `said in ${first}` })).toHaveCount(0);

  // B talks in the first room while A looks at the second: A's sidebar counts it as unread.
  await openChat(b, `${heraldUrl()}/r/${first}`);
  await send(b, `news in ${first}`);
  await expect(roomLink(a, first).getByTestId('unread')).toHaveText('1');

  // Back through the sidebar: the first room's conversation is all there, the news included.
  await roomLink(a, first).getByRole('link').click();
  await expect(a).toHaveURL(new RegExp(`/r/${first}$`));
  await expect(bodies(a).filter({ hasText: `said in ${first}` })).toHaveCount(1);
  await expect(bodies(a).filter({ hasText: `news in ${first}` })).toHaveCount(1);
  await expect(roomLink(a, first).getByTestId('unread')).toBeHidden();
  // Both rooms are still live on the one socket: news in the second reaches A there.
  await openChat(b, `${heraldUrl()}/r/${second}`);
  await send(b, `news in ${second}`);
  await expect(roomLink(a, second).getByTestId('unread')).toHaveText('1');

  expect(await a.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
  expect(sockets).toBe(1);
  expect(errors.flat()).toEqual([]);
});

test('Back and Forward move between rooms as links do; a ctrl-click opens a new tab', async ({ browser }) => {
  const context = await browser.newContext();
  const a = await context.newPage();
  const errors = watchForErrors(a);
  const first = uniqueRoom('back');
  const second = uniqueRoom('forth');
  await openChat(a, `${heraldUrl()}/r/${first}`);
  await send(a, `said in ${first}`);
  await a.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
  await goToRoom(a, second);
  await send(a, `said in ${second}`);

  await a.goBack();
  await expect(a).toHaveURL(new RegExp(`/r/${first}$`));
  await expect(a.getByTestId('room-name')).toHaveText(`# ${first}`);
  await expect(bodies(a).filter({ hasText: `said in ${first}` })).toHaveCount(1);
  await a.goForward();
  await expect(a.getByTestId('room-name')).toHaveText(`# ${second}`);
  await expect(bodies(a).filter({ hasText: `said in ${second}` })).toHaveCount(1);
  expect(await a.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);

  // Asked for elsewhere, the link is left to the browser: this tab stays where it is.
  const opened = context.waitForEvent('page');
  await roomLink(a, first).getByRole('link').click({ modifiers: ['Control'] });
  const tab = await opened;
  await expect(tab).toHaveURL(new RegExp(`/r/${first}$`));
  await expect(a.getByTestId('room-name')).toHaveText(`# ${second}`);
  expect(errors).toEqual([]);
});

test('what is typed but not sent waits in its room while another room is on screen', async ({ browser }) => {
  const a = await (await browser.newContext()).newPage();
  const first = uniqueRoom('draft');
  const second = uniqueRoom('draft');
  const composer = a.getByTestId('composer-input');
  await openChat(a, `${heraldUrl()}/r/${first}`);
  await composer.fill('half a thought');
  await goToRoom(a, second);
  await expect(composer).toHaveValue('');
  await composer.fill('something else');

  await roomLink(a, first).getByRole('link').click();
  await expect(a.getByTestId('room-name')).toHaveText(`# ${first}`);
  await expect(composer).toHaveValue('half a thought');
  await composer.press('Enter');
  await expect(bodies(a)).toHaveText(['half a thought']);
  await expect(composer).toHaveValue('');
  await roomLink(a, second).getByRole('link').click();
  await expect(composer).toHaveValue('something else');
});

test('a message that calls on you by name stands out for you, not for others', async ({ browser }) => {
  const room = uniqueRoom('mention');
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await openChat(a, `${heraldUrl()}/r/${room}`, 'Ann');
  await openChat(b, `${heraldUrl()}/r/${room}`, 'Bob');
  await send(b, 'hey @ann, have a look');
  await send(b, 'and @Annabel is not you');
  await expect(bodies(a)).toHaveCount(2);
  await expect(a.locator('.message.mention')).toHaveCount(1);
  await expect(a.locator('.message.mention .body')).toHaveText('hey @ann, have a look');
  await expect(b.locator('.message.mention')).toHaveCount(0);
  // A page loaded afresh marks it too, before the wasm has arrived (the page's own script: the
  // server renders the rows alike for every reader).
  const early = await a.context().newPage();
  await early.route('**/*.wasm', (route) => route.abort());
  await early.goto(`${heraldUrl()}/r/${room}`);
  await expect(early.locator('.message.mention .body')).toHaveText(['hey @ann, have a look']);
});

test('coming back to a room, "New messages" marks where the news begins', async ({ browser }) => {
  const first = uniqueRoom('news');
  const second = uniqueRoom('news');
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await openChat(a, `${heraldUrl()}/r/${first}`, 'Ann');
  await openChat(b, `${heraldUrl()}/r/${first}`, 'Bob');
  await send(b, 'seen by Ann');
  await expect(bodies(a)).toHaveText(['seen by Ann']);
  await goToRoom(a, second);
  await send(b, 'news one');
  await send(b, 'news two');
  await expect(roomLink(a, first).getByTestId('unread')).toHaveText('2');

  await roomLink(a, first).getByRole('link').click();
  const lines = a.locator('.messages > li:not(.notice):not(.day)');
  await expect(lines).toHaveText([/seen by Ann/, /^New messages/, /news one/, /news two/]);
  // Writing in the room answers the news: the marker goes.
  await send(a, 'thanks');
  await expect(a.getByTestId('news')).toHaveCount(0);
  await expect(bodies(a)).toHaveText(['seen by Ann', 'news one', 'news two', 'thanks']);
});

test('a read position told back late, from before the tab moved on, does not undo what it read', async ({ browser }) => {
  // The server tells a tab where its person has read a room (`read`) a moment after the tab says
  // so. Here the tab's first report arrives late, so the server's answer (nothing of the room
  // read) comes after the tab has read its first message and gone to another room: it must not
  // count that message unread again, nor keep "New messages" from the news that follows.
  const first = uniqueRoom('late');
  const second = uniqueRoom('late');
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const isRead = (frame: string | Buffer) => {
    const msg = JSON.parse(String(frame));
    return msg.type === 'read' && msg.room === first ? msg : null;
  };
  // The tab's reports of the room are held on the way out, and the server's answers on the way in,
  // until let go (in order, on the socket they were held on).
  let holdReports = true;
  let holdAnswers = true;
  const reports: (string | Buffer)[] = [];
  const answers: (string | Buffer)[] = [];
  let newsArrived = false;
  let release = { reports: (_n: number) => {}, answers: (_n: number) => {} };
  await a.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((frame) => (holdReports && isRead(frame) ? reports.push(frame) : server.send(frame)));
    server.onMessage((frame) => {
      if (String(frame).includes('"news one"')) newsArrived = true;
      if (holdAnswers && isRead(frame)) answers.push(frame);
      else ws.send(frame);
    });
    release = {
      reports: (n: number) => reports.splice(0, n).forEach((frame) => server.send(frame)),
      answers: (n: number) => answers.splice(0, n).forEach((frame) => ws.send(frame)),
    };
  });
  await openChat(a, `${heraldUrl()}/r/${first}`, 'Ann');
  await openChat(b, `${heraldUrl()}/r/${first}`, 'Bob');
  await send(b, 'seen by Ann');
  await expect(bodies(a)).toHaveText(['seen by Ann']);
  // The tab's first report (made on opening the room) reaches the server only now: the answer
  // counts "seen by Ann" unread. Any later report follows it.
  await expect.poll(() => reports.length).toBeGreaterThanOrEqual(1);
  release.reports(1);
  await expect.poll(() => answers.map((f) => isRead(f).unread)).toEqual([1]);
  holdReports = false;
  release.reports(reports.length);
  await goToRoom(a, second);
  // The stale answer arrives after the tab said it read "seen by Ann"; its news comes next.
  release.answers(1);
  await send(b, 'news one');
  await expect.poll(() => newsArrived).toBe(true);
  await send(b, 'news two');
  holdAnswers = false;
  release.answers(answers.length);
  await expect(roomLink(a, first).getByTestId('unread')).toHaveText('2');
  await roomLink(a, first).getByRole('link').click();
  const lines = a.locator('.messages > li:not(.notice):not(.day)');
  await expect(lines).toHaveText([/seen by Ann/, /^New messages/, /news one/, /news two/]);
});

/** What the browser would do when the user switches tabs or minimises the window. */
async function setHidden(page: Page, hidden: boolean) {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  }, hidden);
}

test('the tab title names the room and counts what is unread, in other rooms and while away', async ({
  browser,
}) => {
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const first = uniqueRoom('title');
  const second = uniqueRoom('title');
  await openChat(a, `${heraldUrl()}/r/${first}`, 'Ann');
  await expect(a).toHaveTitle(`# ${first} · Herald`);
  await goToRoom(a, second);
  await expect(a).toHaveTitle(`# ${second} · Herald`);

  await openChat(b, `${heraldUrl()}/r/${first}`, 'Bob');
  await send(b, 'over here');
  await expect(a).toHaveTitle(`(1) # ${second} · Herald`);
  await roomLink(a, first).getByRole('link').click();
  await expect(a).toHaveTitle(`# ${first} · Herald`);

  // Ann switches to another tab: what is said in the room on her screen now counts too.
  await setHidden(a, true);
  await send(b, 'are you there?');
  await send(b, 'hello?');
  await expect(a).toHaveTitle(`(2) # ${first} · Herald`);
  await setHidden(a, false);
  await expect(a).toHaveTitle(`# ${first} · Herald`);
  await expect(bodies(a)).toHaveText(['over here', 'are you there?', 'hello?']);
});

test('the people in a room and the room list counts update live', async ({ browser }) => {
  const room = uniqueRoom('people');
  const a = await (await browser.newContext()).newPage();
  const bContext = await browser.newContext();
  const b = await bContext.newPage();
  await openChat(a, `${heraldUrl()}/r/${room}`, 'Ann');
  await expect(a.getByTestId('people')).toHaveText('Ann');

  await openChat(b, `${heraldUrl()}/r/${room}`, 'Bob');
  for (const page of [a, b]) {
    await expect(page.getByTestId('people').locator('li')).toHaveText(['Ann', 'Bob']);
    await expect(page.getByTestId('people-count')).toHaveText('2');
    await expect(roomLink(page, room).getByTestId('member-count')).toHaveText('2');
  }

  // Bob closes his tab: after a short grace (a reload is not a departure) the people panel says so.
  await bContext.close();
  await expect(a.getByTestId('people').locator('li')).toHaveText(['Ann']);
  await expect(a.getByTestId('people-count')).toHaveText('1');
  await expect(roomLink(a, room).getByTestId('member-count')).toHaveText('1');
  // Comings and goings are the people panel's: the conversation holds no "joined" or "left".
  await expect(a.getByTestId('notice')).toHaveCount(0);
});

test('someone who speaks as they arrive is in the people panel, and only their words in the conversation', async ({
  browser,
}) => {
  const room = uniqueRoom('arrival');
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await openChat(a, `${heraldUrl()}/r/${room}`, 'Ann');
  await expect(a.getByTestId('people')).toHaveText('Ann');
  // Bob sends at once, well within the half second in which arrivals are gathered.
  await openChat(b, `${heraldUrl()}/r/${room}`, 'Bob');
  await send(b, 'hello from Bob');
  await expect(a.locator('.messages li:not(.day)')).toHaveText([/hello from Bob/]);
  await expect(a.getByTestId('people').locator('li')).toHaveText(['Ann', 'Bob']);
});

test('"is typing" shows while someone types and goes when they send or stop', async ({ browser }) => {
  const room = uniqueRoom('typing');
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await openChat(a, `${heraldUrl()}/r/${room}`, 'Ann');
  await openChat(b, `${heraldUrl()}/r/${room}`, 'Bob');
  const typing = a.getByTestId('typing');
  await expect(typing).toHaveText('');

  await b.getByTestId('composer-input').pressSequentially('hel');
  await expect(typing).toHaveText('Bob is typing…');
  await expect(b.getByTestId('typing')).toHaveText('', { timeout: 1000 }); // Not about oneself.
  await b.getByTestId('composer-input').pressSequentially('lo');
  await b.getByTestId('composer-input').press('Enter');
  await expect(bodies(a).filter({ hasText: 'hello' })).toHaveCount(1);
  await expect(typing).toHaveText('');

  // Typing, then stopping without sending: the signal expires by itself.
  await b.getByTestId('composer-input').pressSequentially('never mind');
  await expect(typing).toHaveText('Bob is typing…');
  await expect(typing).toHaveText('', { timeout: 9000 });
  // Never stored: a newcomer's page has no trace of it.
  const c = await (await browser.newContext()).newPage();
  await openChat(c, `${heraldUrl()}/r/${room}`);
  await expect(c.getByTestId('typing')).toHaveText('');
  await expect(bodies(c)).toHaveText(['hello']);
});

test('someone reading further up is told of new messages instead of being pulled down', async ({ browser }) => {
  const room = uniqueRoom('jump');
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  const errors = [a, b].map(watchForErrors);
  await openChat(a, `${heraldUrl()}/r/${room}`, 'Ann');
  await openChat(b, `${heraldUrl()}/r/${room}`, 'Bob');
  for (let i = 1; i <= 12; i++) await send(b, `message ${i}\n...\n...\n...\nend of ${i}`);
  await expect(bodies(a)).toHaveCount(12);
  const newest = (text: string) => a.locator('.message', { hasText: text });
  await expect(newest('end of 12')).toBeInViewport();
  const jump = a.getByTestId('jump');
  await expect(jump).toBeHidden();

  const scroller = a.getByTestId('scroller');
  await scroller.evaluate((el) => el.scrollTo(0, 0));
  await send(b, 'while you were up there');
  await send(b, 'and this');
  await expect(jump).toHaveText('2 new messages ↓');
  await expect(newest('and this')).not.toBeInViewport();
  await expect(a.locator('.message[data-seq="1"]')).toBeInViewport();
  await jump.click();
  await expect(newest('and this')).toBeInViewport();
  await expect(jump).toBeHidden();

  // Scrolling down by hand clears it too; and sending shows one's own message wherever one was.
  await scroller.evaluate((el) => el.scrollTo(0, 0));
  await send(b, 'one more');
  await expect(jump).toHaveText('1 new message ↓');
  await scroller.evaluate((el) => el.scrollTo(0, el.scrollHeight));
  await expect(jump).toBeHidden();
  await scroller.evaluate((el) => el.scrollTo(0, 0));
  await send(a, 'back from reading');
  await expect(newest('back from reading')).toBeInViewport();
  expect(errors.flat()).toEqual([]);
});

test('a room opens on its last 50 messages, rendered by the server; scrolling up loads older ones', async ({
  browser,
}) => {
  const room = uniqueRoom('long');
  // 120 messages, quicker than typing them: straight over a socket of each of five writers' pages.
  // A person's budget is shared by all their sockets (a burst of 30 frames): the page's join, the
  // socket's join and 24 sends fit.
  const per = 24;
  for (let s = 0; s < 120 / per; s++) {
    const writer = await (await browser.newContext()).newPage();
    await openChat(writer, `${heraldUrl()}/r/${room}`);
    await flood(writer, room, s * per + 1, per);
    await writer.context().close();
  }

  // Without scripts, the server's page already shows the latest 50.
  const noJs = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await noJs.goto(`${heraldUrl()}/r/${room}`);
  await noJs.getByTestId('name-input').fill('Reader');
  await noJs.getByRole('button', { name: 'Start chatting' }).click();
  await expect(bodies(noJs)).toHaveCount(50);

  const page = await (await browser.newContext()).newPage();
  const errors = watchForErrors(page);
  await openChat(page, `${heraldUrl()}/r/${room}`);
  await expect(bodies(page)).toHaveCount(50);
  await expect(page.getByTestId('older')).toBeVisible();
  const seqs = () => page.locator('.messages .message').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
  expect((await seqs())[0]).toBe(71);

  const scrollToTop = () => page.getByTestId('scroller').evaluate((el) => el.scrollTo(0, 0));
  await scrollToTop();
  await expect(bodies(page)).toHaveCount(100);
  // The reader keeps their place: the message they were looking at is still in view.
  await expect(page.locator('.message[data-seq="71"]')).toBeInViewport();
  await scrollToTop();
  await expect(bodies(page)).toHaveCount(120);
  await expect(page.getByTestId('older')).toBeHidden();
  expect(await seqs()).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
  expect(errors).toEqual([]);
});
