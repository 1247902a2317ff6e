import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest'
import { createLinePlatform, type SandboxPlatform } from '../../src/sandbox/platform.ts'
import { createSandboxUi } from '../../src/sandbox/ui.routes.ts'
import { launchChromium } from '../support/browser.ts'
import { channelAccessToken, channelSecret } from './fixtures.ts'

export type SandboxPage = {
  platform: SandboxPlatform
  baseUrl: string
  page: Page
  /** Messages of dialogs the page opened (dismissed): a script that ran shows here. */
  dialogs: string[]
}

/**
 * Registers the hooks of a page test: one Chromium for the file, and for each test a fresh
 * stand-in with its UI at `/sandbox` on its own port and a new page. Read the fields in a test
 * or a later beforeEach (they change for every test).
 */
export function useSandboxPage(viewport = { width: 1000, height: 900 }): SandboxPage {
  const current = {} as SandboxPage
  let browser: Browser
  let server: Server | undefined
  const closeServer = () =>
    new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))

  beforeAll(async () => {
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    await closeServer()
  })
  // An open page holds its live-update stream, which server.close() would wait for.
  afterEach(async () => {
    await current.page?.close()
  })
  beforeEach(async () => {
    await closeServer()
    current.platform = createLinePlatform({ channelSecret, channelAccessToken })
    const app = new Hono().route('/sandbox', createSandboxUi(current.platform))
    server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () =>
        resolve(s as Server),
      ) as Server
    })
    current.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    current.page = await browser.newPage({ viewport })
    current.page.setDefaultTimeout(10_000)
    current.dialogs = []
    current.page.on('dialog', (d) => {
      current.dialogs.push(d.message())
      void d.dismiss()
    })
  })
  return current
}
