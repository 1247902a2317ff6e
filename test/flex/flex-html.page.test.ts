import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { renderPreviewPage } from '../../src/flex/flex-preview.ts'
import { launchChromium } from '../support/browser.ts'

/** The Flex renderer as `kizuna flex preview` shows it: a page with no script, in Chromium. */
let browser: Browser
let page: Page
beforeAll(async () => {
  browser = await launchChromium()
})
afterAll(async () => {
  await browser?.close()
})
beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
  page.setDefaultTimeout(10_000)
  // A followed link lands on a page rather than a network error.
  await page
    .context()
    .route(/^https:\/\/[a-z]+\.example\//, (route) =>
      route.fulfill({ contentType: 'text/html', body: '<p>elsewhere</p>' }),
    )
})
afterEach(async () => {
  await page?.close()
})

async function show(contents: unknown): Promise<void> {
  await page.setContent(
    renderPreviewPage({
      template: { id: 't', file: 't.json', category: 'transactional', description: 'a test' },
      message: {
        line: { type: 'flex', altText: 'x', contents: contents as never },
        email: { subject: 's', html: '<p>e</p>', text: 't' },
      },
    }),
  )
}

/**
 * Clicks `text` in the bubble and returns the URL of the tab it opened. Text that is no link
 * of its own lies under its container's link, so Playwright must not insist on hitting it.
 */
async function openedBy(text: string, under = false): Promise<string> {
  const popup = page.waitForEvent('popup')
  await page.locator('.pv-line .fx-bubble').getByText(text, { exact: true }).click({ force: under })
  const opened = await popup
  await opened.waitForLoadState()
  const url = opened.url()
  await opened.close()
  return url
}

const uri = (label: string, target: string) => ({ type: 'uri', label, uri: target })

describe('links in the rendered Flex, with no script', () => {
  it("an inner uri opens its own target, the rest of a linked bubble or box the container's", async () => {
    await show({
      type: 'bubble',
      action: uri('bubble', 'https://a.example/'),
      body: {
        type: 'box',
        layout: 'vertical',
        contents: [
          { type: 'text', text: 'Spring sale' },
          {
            type: 'box',
            layout: 'vertical',
            action: uri('box', 'https://c.example/'),
            contents: [
              { type: 'text', text: 'Shoes' },
              { type: 'text', text: 'Size guide', action: uri('guide', 'https://d.example/') },
            ],
          },
        ],
      },
      footer: {
        type: 'box',
        layout: 'vertical',
        contents: [{ type: 'button', action: uri('Details', 'https://b.example/') }],
      },
    })
    expect(await openedBy('Details')).toBe('https://b.example/')
    expect(await openedBy('Spring sale', true)).toBe('https://a.example/')
    expect(await openedBy('Shoes', true)).toBe('https://c.example/')
    expect(await openedBy('Size guide')).toBe('https://d.example/')
    // No link holds another (the HTML parser would split nested <a>s).
    expect(await page.locator('a a').count()).toBe(0)
  })
})

describe('text in the rendered Flex', () => {
  it('wrap:false is one line even with maxLines; wrap:true with maxLines is clamped', async () => {
    const long = 'A long product description that cannot fit on one line of a bubble. '.repeat(4)
    await show({
      type: 'bubble',
      body: {
        type: 'box',
        layout: 'vertical',
        contents: [
          { type: 'text', text: 'x', size: 'md' },
          { type: 'text', text: long, size: 'md', wrap: false, maxLines: 3 },
          { type: 'text', text: long, size: 'md', wrap: true, maxLines: 2 },
          { type: 'text', text: long, size: 'md', wrap: true },
        ],
      },
    })
    const texts = page.locator('.pv-line .fx-text')
    const heights: number[] = []
    for (let i = 0; i < 4; i++) heights.push((await texts.nth(i).boundingBox())!.height)
    const [one, nowrap, clamped, all] = heights
    expect(nowrap).toBeCloseTo(one!, 0)
    expect(clamped).toBeCloseTo(2 * one!, 0)
    expect(all).toBeGreaterThan(2 * one!)
  })
})
