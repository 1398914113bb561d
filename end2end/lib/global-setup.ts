// One Herald for the whole run: the release binary, copied alone into an empty folder and started
// there. Tests find it through HERALD_URL and HERALD_DIR.
import * as fs from 'node:fs';
import { binaryUnderTest, copyAlone, startHerald } from './herald';

export default async function globalSetup() {
  const dir = copyAlone(binaryUnderTest());
  const herald = await startHerald(dir);
  process.env.HERALD_URL = herald.url;
  process.env.HERALD_DIR = dir;
  return async () => {
    const code = await herald.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    if (code !== 0) throw new Error(`herald exited with ${code} on SIGTERM:\n${herald.output()}`);
  };
}
