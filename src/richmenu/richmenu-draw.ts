import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas'
import { RICH_MENU_LIMITS } from './richmenu.schemas.ts'

type Action = {
  type?: string
  label?: string
  data?: string
  text?: string
  uri?: string
  richMenuAliasId?: string
}
type Area = { bounds: { x: number; y: number; width: number; height: number }; action: Action }

/** What the drawing needs: a menu.json that passed LINE's rules, and the folder's alias. */
export type DrawableMenu = {
  alias?: string | undefined
  richMenu: { size: { width: number; height: number }; areas: Area[] }
}

const FILLS = ['#06c755', '#1f8f4e', '#2f6fb0', '#7a4fb5', '#c2562f', '#46627a']
// DejaVu and Liberation are on Debian with Chromium; Droid/Noto carry Japanese when present.
const FONT =
  '"DejaVu Sans", "Liberation Sans", "Droid Sans Fallback", "Noto Sans CJK JP", sans-serif'

/**
 * A placeholder image for a menu: each area a coloured rectangle with its label centred (and a
 * small line saying what a tap does), at exactly `size`, as PNG. The current tab (a
 * `richmenuswitch` to the menu's own alias) is drawn light.
 */
export function drawRichMenu(menu: DrawableMenu): Buffer {
  const { width, height } = menu.richMenu.size
  const canvas = createCanvas(width, height)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#f4f4f4'
  ctx.fillRect(0, 0, width, height)
  // Lines and text scale with the menu: a 2500 px menu is about 375 pt wide on a phone.
  const unit = width / 2500
  const { areas } = menu.richMenu
  // Areas of one height share one label size (the smallest that fits them all).
  const fits = areas.map((a) =>
    fitText(
      ctx,
      labelOf(a.action),
      a.bounds.width * 0.88,
      Math.min(a.bounds.height * 0.28, 150 * unit),
    ),
  )
  const labelSizeOf = (h: number) =>
    Math.min(...fits.filter((_, j) => areas[j]?.bounds.height === h))
  areas.forEach((area, i) => {
    const { x, y, width: w, height: h } = area.bounds
    const current =
      area.action.type === 'richmenuswitch' && area.action.richMenuAliasId === menu.alias
    ctx.fillStyle = current ? '#ffffff' : (FILLS[i % FILLS.length] as string)
    ctx.fillRect(x, y, w, h)
    ctx.strokeStyle = '#ffffff'
    ctx.lineWidth = Math.max(2, 8 * unit)
    ctx.strokeRect(x, y, w, h)
    ctx.fillStyle = current ? '#06c755' : '#ffffff'
    ctx.textAlign = 'center'
    ctx.textBaseline = 'middle'
    const label = labelOf(area.action)
    const labelSize = labelSizeOf(h)
    // Short areas (a tab row) show the label only.
    const hint = h >= 400 * unit ? hintOf(area.action) : undefined
    const hintSize = hint ? fitText(ctx, hint, w * 0.88, Math.min(h * 0.1, 56 * unit)) : 0
    const gap = hint ? (labelSize + hintSize) * 0.35 : 0
    ctx.font = `bold ${labelSize}px ${FONT}`
    ctx.fillText(label, x + w / 2, y + h / 2 - (hint ? hintSize / 2 + gap / 2 : 0))
    if (hint) {
      ctx.globalAlpha = 0.85
      ctx.font = `${hintSize}px ${FONT}`
      ctx.fillText(hint, x + w / 2, y + h / 2 + labelSize / 2 + gap / 2)
      ctx.globalAlpha = 1
    }
  })
  const png = canvas.toBuffer('image/png')
  if (png.length > RICH_MENU_LIMITS.imageBytesMax) {
    throw new Error(`the drawn image is ${png.length} bytes, over LINE's 1 MB`)
  }
  return png
}

function labelOf(action: Action): string {
  return action.label || action.text || action.richMenuAliasId || action.type || '?'
}

/** One short line for the people testing the menu: what a tap does. */
function hintOf(action: Action): string | undefined {
  switch (action.type) {
    case 'postback':
      return action.data ? `postback ${action.data}` : undefined
    case 'message':
      return action.label && action.text ? `sends “${action.text}”` : undefined
    case 'uri':
      return action.uri?.replace(/^https?:\/\//, '')
    case 'richmenuswitch':
      return `tab → ${action.richMenuAliasId}`
    default:
      return action.type
  }
}

/** The largest font size up to `max` at which `text` fits `maxWidth` (never below 12 px). */
function fitText(ctx: SKRSContext2D, text: string, maxWidth: number, max: number): number {
  let size = Math.max(12, Math.floor(max))
  while (size > 12) {
    ctx.font = `bold ${size}px ${FONT}`
    if (ctx.measureText(text).width <= maxWidth) break
    size = Math.floor(size * 0.9)
  }
  return size
}
