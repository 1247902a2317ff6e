import { readFileSync } from 'node:fs'
import { type Browser, type BrowserContext, chromium } from 'playwright-core'

/** Debian's Chromium (`apt-get install chromium`); `.ci/run` installs it when missing. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
}

const FAKE_CAMERA = readFileSync(new URL('./fake-camera.js', import.meta.url), 'utf8')

/** What the fake camera shows: a barcode (from its third frame), or a refused permission. */
export type FakeCamera = { barcode?: string; refuse?: boolean }

/**
 * Gives every page of `context` a camera and a `BarcodeDetector` (see fake-camera.js), with
 * what the page asked of them in `window.fakeCamera`.
 */
export async function fakeCamera(context: BrowserContext, camera: FakeCamera): Promise<void> {
  await context.addInitScript({
    content: `${FAKE_CAMERA}\ninstallFakeCamera(${JSON.stringify(camera)})`,
  })
}
