/**
 * Helpers for the Flex → HTML renderer: HTML escaping and LINE's keyword → CSS tables. Every
 * value that reaches a style attribute passes a sanitiser here (colours, px/% lengths, known
 * keywords, numbers), so a message can't inject CSS (`url(…)`, `;`) or markup.
 * The keyword values are read from LINE's simulator CSS (FLEX-AND-SANDBOX.md Feature 1).
 */

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

/** Escapes text and attribute values (always written inside double quotes). */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c)
}

/** `<tag attr="…">inner</tag>`; attribute values are escaped, `inner` must already be HTML. */
export function el(
  tag: string,
  attrs: Record<string, string | undefined | false>,
  inner = '',
  empty = false,
): string {
  let out = `<${tag}`
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false || value === '') continue
    out += ` ${name}="${escapeHtml(value)}"`
  }
  return empty ? `${out}>` : `${out}>${inner}</${tag}>`
}

export const SPACING_PX: Record<string, number> = {
  none: 0,
  xs: 2,
  sm: 4,
  md: 8,
  lg: 12,
  xl: 16,
  xxl: 20,
}
export const TEXT_PX: Record<string, number> = {
  xxs: 11,
  xs: 13,
  sm: 14,
  md: 16,
  lg: 19,
  xl: 22,
  xxl: 29,
  '3xl': 35,
  '4xl': 48,
  '5xl': 74,
}
export const IMAGE_PX: Record<string, number> = {
  xxs: 40,
  xs: 60,
  sm: 80,
  md: 100,
  lg: 120,
  xl: 140,
  xxl: 160,
  '3xl': 180,
  '4xl': 200,
  '5xl': 220,
}
export const BUBBLE_PX: Record<string, number> = {
  nano: 120,
  micro: 160,
  deca: 220,
  hecto: 241,
  kilo: 260,
  mega: 300,
  giga: 500,
}
const BORDER_PX: Record<string, string> = {
  none: '0',
  light: '0.5px',
  normal: '1px',
  medium: '2px',
  'semi-bold': '3px',
  bold: '4px',
}

const LENGTH = /^\d{1,5}(\.\d{1,3})?(px|%)$/
const COLOR = /^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i
const ANGLE = /^-?\d{1,3}(\.\d{1,3})?deg$/

/** `#RRGGBB`/`#RRGGBBAA` (and short forms), else undefined. */
export function color(value: unknown): string | undefined {
  return typeof value === 'string' && COLOR.test(value) ? value : undefined
}

/** A px/% length, or a keyword from `table`. */
export function length(value: unknown, table: Record<string, number> = SPACING_PX) {
  if (typeof value !== 'string') return undefined
  if (LENGTH.test(value)) return value
  const px = Object.hasOwn(table, value) ? table[value] : undefined
  return px === undefined ? undefined : `${px}px`
}

export function borderWidth(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  if (Object.hasOwn(BORDER_PX, value)) return BORDER_PX[value]
  return /^\d{1,3}(\.\d{1,2})?px$/.test(value) ? value : undefined
}

/** A non-negative integer (flex), else undefined. */
export function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < 1e4
    ? value
    : undefined
}

/** `"20:13"` → `20 / 13` (CSS aspect-ratio). */
export function aspectRatio(value: unknown, fallback = '1 / 1'): string {
  if (typeof value !== 'string') return fallback
  const m = /^(\d{1,5}(?:\.\d{1,3})?):(\d{1,5}(?:\.\d{1,3})?)$/.exec(value)
  return m && Number(m[1]) > 0 && Number(m[2]) > 0 ? `${m[1]} / ${m[2]}` : fallback
}

/** LINE's `linearGradient` background → CSS. */
export function gradient(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined
  const g = value as Record<string, unknown>
  if (g.type !== 'linearGradient' || typeof g.angle !== 'string' || !ANGLE.test(g.angle)) {
    return undefined
  }
  const start = color(g.startColor)
  const end = color(g.endColor)
  if (!start || !end) return undefined
  const center = color(g.centerColor)
  const pos =
    typeof g.centerPosition === 'string' && LENGTH.test(g.centerPosition) ? g.centerPosition : '50%'
  const stops = center ? `${start} 0%, ${center} ${pos}, ${end} 100%` : `${start} 0%, ${end} 100%`
  return `linear-gradient(${g.angle}, ${stops})`
}

/** Picks `value` when it is one of `allowed`. */
export function oneOf<T extends string>(value: unknown, allowed: readonly T[]): T | undefined {
  return typeof value === 'string' && (allowed as readonly string[]).includes(value)
    ? (value as T)
    : undefined
}

/** Joins `prop:value` pairs, skipping undefined values. */
export function css(decls: [string, string | number | undefined][]): string {
  let out = ''
  for (const [prop, value] of decls) if (value !== undefined) out += `${prop}:${value};`
  return out
}

const LINK_SCHEMES = new Set(['http', 'https', 'line', 'tel'])

/** A link target we let through: http, https, line, tel (LINE's uri action schemes). */
export function safeHref(uri: unknown): string | undefined {
  if (typeof uri !== 'string' || uri.length > 2000) return undefined
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(uri)?.[1]?.toLowerCase()
  return scheme && LINK_SCHEMES.has(scheme) ? uri : undefined
}

/** An image source we let through: https, or http (the local stand-in serves http). */
export function safeImageSrc(url: unknown): string | undefined {
  if (typeof url !== 'string' || url.length > 2000) return undefined
  return /^https?:\/\//i.test(url) && URL.canParse(url) ? url : undefined
}
