// Two people on two nodes of a cluster (one redis-server, two `herald --redis` processes), each
// behind a load balancer of their own; one's node is killed with SIGKILL, their page reconnects
// through the balancer to the other node, and they keep chatting: nothing missing or doubled on
// either screen. Real Chromium against the release binary.
import { expect, test } from '../lib/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { openChat, reconnect, send, uniqueRoom, watchForErrors } from '../lib/chat';
import { binaryUnderTest, copyAlone, Herald, startHerald, TEST_FLAGS } from '../lib/herald';
import { startRedis } from '../lib/redis';

/** A TCP load balancer on a free loopback port: each connection goes to the first backend that takes it. */
async function balancer(backends: string[]): Promise<{ url: string; close: () => void }> {
  const server = net.createServer((client) => {
    client.pause();
    const tryNext = (i: number) => {
      if (i >= backends.length) {
        client.destroy();
        return;
      }
      const { hostname, port } = new URL(backends[i]);
      const upstream = net.connect(Number(port), hostname);
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        client.pipe(upstream).pipe(client);
        client.resume();
        const end = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', end).on('close', end);
        upstream.on('error', end).on('close', end);
      });
      upstream.once('error', () => tryNext(i + 1));
    };
    tryNext(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

test('two people on two nodes keep chatting when one node is killed: nothing missing or doubled', async ({ browser }) => {
  const redis = await startRedis();
  const secret = 'e2e-cluster-secret-of-32-bytes-or-more';
  const nodes: Herald[] = [];
  const balancers: { close: () => void }[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const dir = copyAlone(binaryUnderTest());
      nodes.push(await startHerald(dir, ['--addr', '127.0.0.1:0', '--data-dir', 'data',
        '--redis', redis.url, '--session-secret', secret]));
    }
    // Ann's balancer sends her to node 0; Bob's to node 1, and to node 0 once node 1 is gone.
    const forAnn = await balancer([nodes[0].url]);
    const forBob = await balancer([nodes[1].url, nodes[0].url]);
    balancers.push(forAnn, forBob);

    const room = uniqueRoom('cluster');
    const ann = await (await browser.newContext()).newPage();
    const bob = await (await browser.newContext()).newPage();
    const errors = [watchForErrors(ann), watchForErrors(bob)];
    await openChat(ann, `${forAnn.url}/r/${room}`, 'Ann');
    await openChat(bob, `${forBob.url}/r/${room}`, 'Bob');
    const shown = (page: typeof ann) => page.locator('.message:not(.pending) .body');

    await send(ann, 'hello from node zero');
    // Stored (and at Bob's) before Bob speaks: two sends a moment apart through two nodes are
    // ordered by which reaches Redis first, not by which was typed first.
    await expect(shown(bob)).toHaveText(['hello from node zero']);
    await send(bob, 'hello from node one');
    for (const page of [ann, bob]) {
      await expect(shown(page)).toHaveText(['hello from node zero', 'hello from node one']);
      await expect(page.getByTestId('people-toggle')).toContainText('2');
    }

    // Bob's node dies without a word.
    nodes[1].process.kill('SIGKILL');
    await send(bob, 'said while my node was gone');
    await send(ann, 'are you still there?');
    await expect(bob.getByTestId('status')).toHaveAttribute('data-state', 'connected');
    await send(bob, 'yes, through the other node');

    const all = [
      'hello from node zero',
      'hello from node one',
      'said while my node was gone',
      'are you still there?',
      'yes, through the other node',
    ];
    for (const page of [ann, bob]) {
      // Each once; Bob's kept send and Ann's question may have been stored in either order.
      await expect(shown(page)).toHaveCount(all.length);
      expect([...(await shown(page).allTextContents())].sort()).toEqual([...all].sort());
    }
    // Both screens show the one order the log gave them.
    expect(await shown(ann).allTextContents()).toEqual(await shown(bob).allTextContents());
    const dropped = (e: string) => e.includes('WebSocket') || e.includes('ERR_CONNECTION');
    expect(errors.flat().filter((e) => !dropped(e))).toEqual([]);
  } finally {
    balancers.forEach((b) => b.close());
    for (const node of nodes) {
      if (node.process.exitCode === null && node.process.signalCode === null) await node.stop();
    }
    redis.stop();
  }
});

/**
 * Stores an entry of a type this build does not know (a poll) in `room`, as a newer Herald node
 * sharing the log would: through the same append script, which publishes it to every node.
 */
function storeNewerEntry(redisUrl: string, room: string, clientId: string) {
  const script = fs.readFileSync(path.join(__dirname, '../../server/src/log/redis/append.lua'), 'utf8');
  const socket = redisUrl.replace('redis+unix://', '');
  const entry = JSON.stringify({
    room, author: { id: 'newer-node-user', name: 'Nia' }, client_id: clientId, body: 'Lunch?',
    type: 'poll', fields: { options: ['soup', 'salad'] },
  });
  execFileSync('redis-cli', ['-s', socket, 'EVAL', script, '5',
    `herald:{${room}}:meta`, `herald:{${room}}:log`, `herald:{${room}}:once`,
    `herald:{${room}}:state`, `herald:{${room}}:text`,
    '10000', 'unused-epoch', `herald:{${room}}:live`, '1', `newer-node-user\n${clientId}`, entry, '0']);
}

test('a page resumes over a log holding a kind of entry it does not know: it keeps its place and shows what it knows', async ({ browser }) => {
  const redis = await startRedis();
  const node = await startHerald(copyAlone(binaryUnderTest()),
    [...TEST_FLAGS, '--redis', redis.url, '--session-secret', 'e2e-cluster-secret-of-32-bytes-or-more']);
  try {
    const room = uniqueRoom('entries');
    const ann = await (await browser.newContext()).newPage();
    const bob = await (await browser.newContext()).newPage();
    const errors = watchForErrors(ann);
    // Where each of Ann's joins of the room asked to resume from, and the polls her page was sent.
    const joins: number[] = [];
    let polls = 0;
    ann.on('websocket', (ws) => {
      ws.on('framesent', (f) => {
        const frame = JSON.parse(String(f.payload));
        if (frame.type === 'join' && frame.room === room) joins.push(frame.since?.seq ?? 0);
      });
      ws.on('framereceived', (f) => {
        if (String(f.payload).includes('"type":"poll"')) polls++;
      });
    });
    await openChat(ann, `${node.url}/r/${room}`, 'Ann');
    await openChat(bob, `${node.url}/r/${room}`, 'Bob');
    const shown = ann.locator('.message:not(.pending) .body');

    await send(ann, 'before the poll'); // seq 1
    storeNewerEntry(redis.url, room, 'poll-1'); // seq 2, live
    await send(ann, 'after the poll'); // seq 3
    await expect(shown).toHaveText(['before the poll', 'after the poll']);

    // While Ann is away: Bob writes (seq 4), then the newer node stores another poll (seq 5), the
    // room's last entry.
    await ann.context().setOffline(true);
    await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'offline');
    await send(bob, 'while you were away');
    storeNewerEntry(redis.url, room, 'poll-2');
    await ann.context().setOffline(false);
    await expect(shown).toHaveText(['before the poll', 'after the poll', 'while you were away']);

    // Her copy reaches the poll: the next rejoin asks from seq 5, and nothing is asked again.
    await reconnect(ann);
    await expect(ann.getByTestId('status')).toHaveAttribute('data-state', 'connected');
    await send(ann, 'back again'); // seq 6: the round trip any repeated join would have preceded
    await expect(shown).toHaveText(['before the poll', 'after the poll', 'while you were away', 'back again']);
    expect(joins.slice(1)).toEqual([3, 5]);
    expect(polls).toBe(2); // Each poll reached the page once: live, then in the replay.
    await expect(ann.locator('.messages')).not.toContainText('Lunch?');
    const dropped = (e: string) => e.includes('WebSocket') || e.includes('ERR_INTERNET_DISCONNECTED');
    expect(errors.filter((e) => !dropped(e))).toEqual([]);
  } finally {
    await node.stop();
    redis.stop();
  }
});
