import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createCanvas, loadImage } from '@napi-rs/canvas'
import { imageSize } from 'image-size'
import { describe, expect, it } from 'vitest'
import { canvasMeasure, drawRichMenu, layoutMenuText } from '../../src/richmenu/richmenu-draw.ts'
import { loadRichMenus } from '../../src/richmenu/richmenu-files.ts'
import { area, menuFolder, menuJson } from './menu-folder.ts'

/** The colour of one pixel of a PNG, as #rrggbb. */
async function pixel(png: Buffer, x: number, y: number): Promise<string> {
  const img = await loadImage(png)
  const canvas = createCanvas(img.width, img.height)
  const ctx = canvas.getContext('2d')
  ctx.drawImage(img, 0, 0)
  const [r, g, b] = ctx.getImageData(x, y, 1, 1).data
  return `#${[r, g, b].map((v) => (v ?? 0).toString(16).padStart(2, '0')).join('')}`
}

describe('drawRichMenu', () => {
  it("draws a PNG of the menu's size that then loads clean", () => {
    const json = menuJson()
    const png = drawRichMenu(json as never)
    expect(imageSize(png)).toMatchObject({ type: 'png', width: 800, height: 400 })
    const { dir, add } = menuFolder()
    add('m', json, { 'image.png': png })
    const { menus, problems } = loadRichMenus(dir)
    expect(problems).toEqual([])
    expect(menus[0]?.image.bytes.equals(png)).toBe(true)
  })

  it('fills each area, draws the current tab light, and puts text in the middle', async () => {
    const json = menuJson(
      { alias: 'home', segments: [] },
      {
        areas: [
          area(0, 400, {
            type: 'richmenuswitch',
            label: 'Home',
            richMenuAliasId: 'home',
            data: 't',
          }),
          area(400, 400, {
            type: 'richmenuswitch',
            label: 'More',
            richMenuAliasId: 'more',
            data: 't',
          }),
        ],
      },
    )
    const png = drawRichMenu(json as never)
    expect(await pixel(png, 20, 20)).toBe('#ffffff')
    expect(await pixel(png, 420, 20)).toBe('#1f8f4e')
    // Inside the second area (its white border left out), the label's white text.
    const img = await loadImage(png)
    const canvas = createCanvas(img.width, img.height)
    const ctx = canvas.getContext('2d')
    ctx.drawImage(img, 0, 0)
    const inside = ctx.getImageData(410, 10, 380, 380).data
    let white = 0
    for (let i = 0; i < inside.length; i += 4)
      if (inside[i] === 255 && inside[i + 1] === 255) white++
    expect(white).toBeGreaterThan(200)
  })

  it("keeps each area's text inside the area: a long hint does not run into the area before", async () => {
    const png = drawRichMenu({
      richMenu: {
        size: { width: 2500, height: 843 },
        areas: [
          {
            // Nothing to write: a blank label and no hint.
            bounds: { x: 0, y: 0, width: 1250, height: 843 },
            action: { type: 'postback', label: ' ', data: '' },
          },
          {
            // Drawn after the first area, so what runs over would stay on it.
            bounds: { x: 1250, y: 0, width: 1250, height: 843 },
            action: {
              type: 'postback',
              label: 'Points',
              data: `action=points&x=${'y'.repeat(270)}`,
            },
          },
        ],
      },
    })
    const img = await loadImage(png)
    const canvas = createCanvas(img.width, img.height)
    const ctx = canvas.getContext('2d')
    ctx.drawImage(img, 0, 0)
    // The first area inside its white border: its fill (#06c755) and nothing else.
    const inside = ctx.getImageData(10, 10, 1250 - 20, 843 - 20).data
    let other = 0
    for (let i = 0; i < inside.length; i += 4) {
      if (inside[i] !== 0x06 || inside[i + 1] !== 0xc7 || inside[i + 2] !== 0x55) other++
    }
    expect(other).toBe(0)
  })

  it('keeps a 2500×1686 menu of 20 areas with long labels under 1 MB', () => {
    const areas = Array.from({ length: 20 }, (_, i) => ({
      bounds: { x: (i % 5) * 500, y: Math.floor(i / 5) * 421, width: 500, height: 421 },
      action: { type: 'postback', label: `Label number ${i} here`, data: `action=n&i=${i}` },
    }))
    const png = drawRichMenu({ richMenu: { size: { width: 2500, height: 1686 }, areas } })
    expect(imageSize(png)).toMatchObject({ width: 2500, height: 1686 })
    expect(png.length).toBeLessThan(1024 * 1024)
    const { dir, add } = menuFolder()
    add('m', menuJson({}, { size: { width: 2500, height: 1686 }, areas }), { 'image.png': png })
    expect(loadRichMenus(dir).problems).toEqual([])
    writeFileSync(join(dir, 'unused.txt'), 'a file beside the folders is not a menu')
    expect(loadRichMenus(dir).menus).toHaveLength(1)
  })
})

describe('layoutMenuText', () => {
  const measure = canvasMeasure()
  const menu = (areas: { w: number; h: number; action: Record<string, string> }[]) => {
    let x = 0
    return {
      richMenu: {
        size: { width: 2500, height: 843 },
        areas: areas.map(({ w, h, action }) => {
          const bounds = { x, y: 0, width: w, height: h }
          x += w
          return { bounds, action }
        }),
      },
    }
  }

  it('gives a row one readable size; a label too long for it is ellipsized, not the row shrunk', () => {
    const texts = layoutMenuText(
      menu([
        { w: 500, h: 843, action: { type: 'postback', label: 'Points', data: 'a=1' } },
        { w: 500, h: 843, action: { type: 'postback', label: 'Card', data: 'a=2' } },
        {
          w: 500,
          h: 843,
          action: {
            type: 'postback',
            label: 'ＷＷＷＷＷＷＷＷＷＷＷＷＷＷＷＷＷＷＷＷ',
            data: 'a=3',
          },
        },
      ]),
      measure,
    )
    const [points, card, long] = texts.map((t) => t.label)
    expect(points).toEqual({ text: 'Points', size: card!.size })
    expect(card?.text).toBe('Card')
    expect(points!.size).toBeGreaterThanOrEqual(64)
    expect(long?.size).toBe(points!.size)
    expect(long?.text).toMatch(/^Ｗ+…$/)
    for (const t of texts)
      expect(measure(t.label.text, t.label.size, true)).toBeLessThanOrEqual(440)
  })

  it('draws the hint no larger than the label, and ellipsizes it to the area', () => {
    const [tall] = layoutMenuText(
      menu([
        {
          w: 400,
          h: 843,
          action: {
            type: 'uri',
            label: 'ＷＷＷＷＷＷＷＷＷＷＷＷ',
            uri: `https://shop.example/${'p'.repeat(300)}`,
          },
        },
      ]),
      measure,
    )
    expect(tall!.hint!.size).toBeLessThanOrEqual(tall!.label.size)
    expect(tall!.hint!.text).toMatch(/^shop\.example\/p*…$/)
    expect(measure(tall!.hint!.text, tall!.hint!.size, false)).toBeLessThanOrEqual(400 * 0.88)
  })
})
