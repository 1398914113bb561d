// Starting and stopping a real `herald` process for the tests.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Herald {
  url: string;
  dir: string;
  process: ChildProcess;
  /** Everything the process has printed so far. */
  output: () => string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop: () => Promise<number | null>;
}

/** The release binary under test, as `cargo xtask test` passes it. */
export function binaryUnderTest(): string {
  const bin = process.env.HERALD_BIN;
  if (!bin || !fs.existsSync(bin)) {
    throw new Error(`HERALD_BIN must name the built herald binary (got ${bin}); run \`cargo xtask test\``);
  }
  return bin;
}

/** Copies the binary alone into a new empty folder: what an operator deploying it does. */
export function copyAlone(bin: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-e2e-'));
  const target = path.join(dir, 'herald');
  fs.copyFileSync(bin, target);
  fs.chmodSync(target, 0o755);
  return dir;
}

/** The flags a test server runs with: a free loopback port, data kept in the folder's `data`. */
/**
 * Every browser of a test is at one address (127.0.0.1): the budgets everyone at an address shares
 * are lifted (and tests make rooms freely), so each test's people have their own person's budget as
 * they would from their homes.
 */
export const TEST_FLAGS = [
  '--addr', '127.0.0.1:0', '--data-dir', 'data',
  '--address-rate-per-sec', '100000', '--address-rate-burst', '100000',
  '--rooms-per-hour', '100000',
];

/** The setup code of every test server, and the owner's account its setup makes. */
export const SETUP_CODE = 'E2E-SETUP-CODE-000000001';
export const OWNER = { handle: 'owner', name: 'Owner', password: 'the owner of the e2e servers' };

/**
 * What every test server is given through its environment (so tests that pass flags of their own
 * keep it): people may come in as guests, as the chat tests do (accounts have tests of their own,
 * which turn it off), and the setup code is known.
 */
export const HARNESS_ENV: Record<string, string> = {
  HERALD_GUESTS: 'true',
  HERALD_SETUP_CODE: SETUP_CODE,
  // Every test visitor (a guest) may make the open rooms it opens, with the offer's button.
  HERALD_ROOM_MAKERS: 'everyone',
};

/**
 * Starts `./herald` inside `dir`, waits until it says where it listens, and (unless `claim` is
 * false) makes the owner's account with the setup code, as the first visitor of a fresh server
 * does; a server set up before (restarted, or a cluster's next node) is left as it is.
 */
export async function startHerald(
  dir: string,
  args: string[] = TEST_FLAGS,
  env: Record<string, string> = {},
  { claim = true }: { claim?: boolean } = {},
): Promise<Herald> {
  const child = spawn('./herald', args, {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', HERALD_LOG: 'info', ...HARNESS_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // If the test process dies, the server must not outlive it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start:\n${output}`)), 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const found = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited with ${code} before listening:\n${output}`));
    });
  });
  if (claim) await claimSetup(url);
  return {
    url,
    dir,
    process: child,
    output: () => output,
    stop: async () => {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Posts the setup form as the owner: 303 whether it made the account or found one made before. */
export async function claimSetup(url: string) {
  const form = new URLSearchParams({
    code: SETUP_CODE, handle: OWNER.handle, name: OWNER.name, password: OWNER.password,
  });
  const answer = await fetch(`${url}/setup`, { method: 'POST', body: form, redirect: 'manual' });
  if (answer.status !== 303) throw new Error(`setting up ${url} answered ${answer.status}: ${await answer.text()}`);
}
