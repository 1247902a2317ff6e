import { createCanvas } from '@napi-rs/canvas'
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
 * `richmenuswitch` to the menu's own alias) is drawn light. Text stays inside its area: sizes and
 * ellipses come from `layoutMenuText`, and each area's drawing is clipped to its bounds.
 */
export function drawRichMenu(menu: DrawableMenu): Buffer {
  const { width, height } = menu.richMenu.size
  const canvas = createCanvas(width, height)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#f4f4f4'
  ctx.fillRect(0, 0, width, height)
  const unit = width / 2500
  const texts = layoutMenuText(menu, canvasMeasure(ctx))
  menu.richMenu.areas.forEach((area, i) => {
    const { x, y, width: w, height: h } = area.bounds
    const current =
      area.action.type === 'richmenuswitch' && area.action.richMenuAliasId === menu.alias
    ctx.fillStyle = current ? '#ffffff' : (FILLS[i % FILLS.length] as string)
    ctx.fillRect(x, y, w, h)
    ctx.strokeStyle = '#ffffff'
    ctx.lineWidth = Math.max(2, 8 * unit)
    ctx.strokeRect(x, y, w, h)
    const { label, hint } = texts[i] as AreaText
    ctx.save()
    ctx.beginPath()
    ctx.rect(x, y, w, h)
    ctx.clip()
    ctx.fillStyle = current ? '#06c755' : '#ffffff'
    ctx.textAlign = 'center'
    ctx.textBaseline = 'middle'
    const gap = hint ? (label.size + hint.size) * 0.35 : 0
    ctx.font = fontOf(label.size, true)
    ctx.fillText(label.text, x + w / 2, y + h / 2 - (hint ? hint.size / 2 + gap / 2 : 0))
    if (hint) {
      ctx.globalAlpha = 0.85
      ctx.font = fontOf(hint.size, false)
      ctx.fillText(hint.text, x + w / 2, y + h / 2 + label.size / 2 + gap / 2)
    }
    ctx.restore()
  })
  const png = canvas.toBuffer('image/png')
  if (png.length > RICH_MENU_LIMITS.imageBytesMax) {
    throw new Error(`the drawn image is ${png.length} bytes, over LINE's 1 MB`)
  }
  return png
}

/** The width in pixels of `text` drawn at `px` (bold for labels). */
export type MeasureText = (text: string, px: number, bold: boolean) => number
export type PlacedText = { text: string; size: number }
/** What is written in one area: its label, and under it (tall areas) what a tap does. */
export type AreaText = { label: PlacedText; hint?: PlacedText }

const fontOf = (px: number, bold: boolean) => `${bold ? 'bold ' : ''}${px}px ${FONT}`

/** Measures with the drawing's own fonts. */
export function canvasMeasure(ctx = createCanvas(1, 1).getContext('2d')): MeasureText {
  return (text, px, bold) => {
    ctx.font = fontOf(px, bold)
    return ctx.measureText(text).width
  }
}

/**
 * Sizes and texts for each area's label and hint, in pixels of a menu `size.width` wide (a
 * 2500 px menu is about 375 pt on a phone, so sizes scale with the width). Text may take 88% of
 * its area's width.
 * - Labels: at most 150 px (and 28% of the area's height), at least LABEL_MIN_PX (about 10 pt on
 *   a phone). Areas of one height share one size, the smallest at which each of their labels
 *   fits, leaving out labels that fit at no readable size: those are ellipsized instead of
 *   shrinking the whole row.
 * - Hints (areas 400 px high or more): at most 56 px, 10% of the height and the label's size,
 *   at least HINT_MIN_PX; ellipsized when they still don't fit.
 */
export function layoutMenuText(menu: DrawableMenu, measure: MeasureText): AreaText[] {
  const unit = menu.richMenu.size.width / 2500
  const { areas } = menu.richMenu
  const labelMax = (h: number) => Math.max(1, Math.floor(Math.min(h * 0.28, 150 * unit)))
  const labelMin = (h: number) =>
    Math.min(labelMax(h), Math.max(12, Math.round(LABEL_MIN_PX * unit)))
  const fitted = areas.map((a) =>
    fitSize(
      (px) => measure(labelOf(a.action), px, true) <= a.bounds.width * 0.88,
      labelMin(a.bounds.height),
      labelMax(a.bounds.height),
    ),
  )
  const rowSize = (h: number) => {
    const sizes = fitted.filter(
      (size, j): size is number => size !== undefined && areas[j]?.bounds.height === h,
    )
    return sizes.length > 0 ? Math.min(...sizes) : labelMin(h)
  }
  return areas.map((area) => {
    const { width: w, height: h } = area.bounds
    const room = w * 0.88
    const size = rowSize(h)
    const label = {
      text: ellipsize(labelOf(area.action), (t) => measure(t, size, true) <= room),
      size,
    }
    const hintText = h >= 400 * unit ? hintOf(area.action) : undefined
    if (!hintText) return { label }
    const max = Math.max(1, Math.floor(Math.min(h * 0.1, 56 * unit, size)))
    const min = Math.min(max, Math.max(12, Math.round(HINT_MIN_PX * unit)))
    const fits = (px: number) => (t: string) => measure(t, px, false) <= room
    const hintSize = fitSize((px) => fits(px)(hintText), min, max) ?? min
    return { label, hint: { text: ellipsize(hintText, fits(hintSize)), size: hintSize } }
  })
}

/** Readable minimums at 2500 px wide: about 10 pt for a label, 6 pt for a hint, on a phone. */
const LABEL_MIN_PX = 64
const HINT_MIN_PX = 40

/** The largest size from `max` down to `min` (whole pixels) at which `fits`, or undefined. */
function fitSize(fits: (px: number) => boolean, min: number, max: number): number | undefined {
  let size = max
  while (size > min) {
    if (fits(size)) return size
    size = Math.max(min, Math.floor(size * 0.9))
  }
  return fits(size) ? size : undefined
}

/** `text`, or its longest start that `fits` with an ellipsis after it ('' if none does). */
function ellipsize(text: string, fits: (text: string) => boolean): string {
  if (fits(text)) return text
  if (!fits('…')) return ''
  const chars = Array.from(text)
  // The first `low` characters and an ellipsis fit; the first `high` and one don't.
  let low = 0
  let high = chars.length
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2)
    if (fits(`${chars.slice(0, mid).join('')}…`)) low = mid
    else high = mid
  }
  return `${chars.slice(0, low).join('').trimEnd()}…`
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
