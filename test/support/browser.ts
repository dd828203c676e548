// A real headless browser for the inspector page's test: Debian's chromium,
// driven by puppeteer-core (which brings no browser of its own). A missing
// browser follows the services' rule (services.ts): with CI set its suite
// fails, elsewhere it is skipped and says why. scripts/install-services.sh
// installs it and searches the same names in the same order.

import puppeteer, { type Browser } from 'puppeteer-core';
import { findOnPath, isExecutableFile, type Availability } from './services.js';

const NAMES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

/** CHROMIUM_PATH (when it is an executable), else the first of Debian's, Ubuntu's and Google's names on PATH. */
export function findChromium(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured !== undefined && configured !== '') return isExecutableFile(configured) ? configured : undefined;
  for (const name of NAMES) {
    const found = findOnPath(name);
    if (found !== undefined) return found;
  }
  return undefined;
}

export function browserAvailability(): Availability {
  return findChromium() !== undefined
    ? { isAvailable: true }
    : {
        isAvailable: false,
        reason: process.env.CHROMIUM_PATH ? `CHROMIUM_PATH (${process.env.CHROMIUM_PATH}) is not an executable file` : `no Chromium: none of ${NAMES.join(', ')} is on PATH`,
        hint: 'run scripts/install-services.sh (apt-get install -y chromium), or set CHROMIUM_PATH',
      };
}

export async function launchBrowser(): Promise<Browser> {
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error('no Chromium to launch (run scripts/install-services.sh)');
  return puppeteer.launch({
    executablePath,
    headless: true,
    // Root (CI, containers) cannot use Chromium's sandbox; /dev/shm is small in containers.
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage', '--window-size=1280,900'],
    defaultViewport: { width: 1280, height: 900 },
  });
}
