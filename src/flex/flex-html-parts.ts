import {
  aspectRatio,
  color,
  css,
  el,
  escapeHtml,
  IMAGE_PX,
  integer,
  length,
  oneOf,
  safeHref,
  safeImageSrc,
  TEXT_PX,
} from './flex-style.ts'

/** The leaf components of the Flex → HTML renderer (flex-html.ts) and the shared helpers. */

export type Node = Record<string, unknown>
export type Layout = 'vertical' | 'horizontal' | 'baseline'
export type Ctx = { layout: Layout; spacing: unknown; index: number }
export type Decl = [string, string | number | undefined]

const GRAVITY: Record<string, string> = { top: 'flex-start', center: 'center', bottom: 'flex-end' }
const ALIGN: Record<string, string> = { start: 'flex-start', center: 'center', end: 'flex-end' }
export const NO_PX: Record<string, number> = {}

/** `table[value]` for the table's own keys only (not `constructor`, `toString`…). */
function keyword(value: unknown, table: Record<string, string>): string | undefined {
  return typeof value === 'string' && Object.hasOwn(table, value) ? table[value] : undefined
}

export function renderText(n: Node, ctx: Ctx): string {
  const spans = Array.isArray(n.contents) ? n.contents.map(asNode) : []
  const inner =
    spans.length > 0
      ? spans.map((s) => (s?.type === 'span' ? renderSpan(s) : '')).join('')
      : escapeHtml(typeof n.text === 'string' ? n.text : '')
  // Without wrap LINE draws one line (ellipsized) whatever maxLines says.
  const maxLines = n.wrap === true ? integer(n.maxLines) : undefined
  const cls = `fx-text ${n.wrap === true ? 'fx-wrap' : 'fx-nowrap'}${maxLines ? ' fx-clamp' : ''}`
  const spacing = length(n.lineSpacing, NO_PX)
  const action = actionOf(n.action)
  const decls: Decl[] = [
    ...itemDecls(n, ctx, ctx.layout === 'vertical' ? 0 : 1),
    ...fontDecls(n),
    ['text-align', oneOf(n.align, ['start', 'end', 'center'])],
    ['-webkit-line-clamp', maxLines || undefined],
    ['line-height', spacing ? `calc(1.4em + ${spacing})` : undefined],
  ]
  return el(
    action.href ? 'a' : 'p',
    { class: cls + action.cls, style: css(decls), ...action.attrs },
    inner,
  )
}

function renderSpan(s: Node): string {
  const text = typeof s.text === 'string' ? s.text : ''
  return el('span', { style: css(fontDecls(s)) }, escapeHtml(text))
}

export function fontDecls(n: Node): Decl[] {
  return [
    ['font-size', length(n.size, TEXT_PX)],
    ['color', color(n.color)],
    ['font-weight', n.weight === 'bold' ? 700 : undefined],
    ['font-style', n.style === 'italic' ? 'italic' : undefined],
    ['text-decoration', oneOf(n.decoration, ['underline', 'line-through'])],
  ]
}

export function renderImage(n: Node, ctx: Ctx): string {
  const width = n.size === 'full' ? '100%' : (length(n.size, IMAGE_PX) ?? '100px')
  const src = safeImageSrc(n.url)
  const fit = n.aspectMode === 'cover' ? 'cover' : 'contain'
  const img = src
    ? el(
        'img',
        { src, alt: '', referrerpolicy: 'no-referrer', style: `object-fit:${fit}` },
        '',
        true,
      )
    : ''
  const frameDecls: Decl[] = [
    ['width', width],
    ['aspect-ratio', aspectRatio(n.aspectRatio)],
    ['background-color', color(n.backgroundColor)],
  ]
  const frame = el('div', { class: 'fx-image-frame', style: css(frameDecls) }, img)
  const action = actionOf(n.action)
  const decls: Decl[] = [
    ...itemDecls(n, ctx, ctx.layout === 'vertical' ? 0 : 1),
    ['justify-content', keyword(n.align, ALIGN)],
  ]
  return el(
    action.href ? 'a' : 'div',
    { class: `fx-image${action.cls}`, style: css(decls), ...action.attrs },
    frame,
  )
}

export function renderIcon(n: Node, ctx: Ctx): string {
  const src = safeImageSrc(n.url)
  const size = length(n.size, TEXT_PX) ?? '16px'
  const decls: Decl[] = [
    ['height', size],
    ['aspect-ratio', aspectRatio(n.aspectRatio)],
  ]
  const img = src
    ? el('img', { src, alt: '', referrerpolicy: 'no-referrer', style: css(decls) }, '', true)
    : ''
  return el('span', { class: 'fx-icon', style: css(itemDecls(n, ctx, 0)) }, img)
}

export function renderButton(n: Node, ctx: Ctx): string {
  const style = oneOf(n.style, ['primary', 'secondary', 'link']) ?? 'link'
  const height = n.height === 'sm' ? 'sm' : 'md'
  const label = asNode(n.action)?.label
  const action = actionOf(n.action)
  const tint = color(n.color)
  const decls: Decl[] = [
    ...itemDecls(n, ctx, ctx.layout === 'vertical' ? 0 : 1),
    [style === 'link' ? 'color' : 'background-color', tint],
  ]
  return el(
    action.href ? 'a' : 'div',
    {
      class: `fx-button fx-button-${style} fx-button-${height}${action.cls}`,
      style: css(decls),
      ...action.attrs,
    },
    el('span', {}, escapeHtml(typeof label === 'string' ? label : '')),
  )
}

/** Flex sizing, the leading gap (spacing or margin), offsets and gravity of a box's child. */
export function itemDecls(n: Node, ctx: Ctx, defaultFlex: number): Decl[] {
  const row = ctx.layout !== 'vertical'
  const grow = integer(n.flex) ?? defaultFlex
  const flex = grow === 0 ? '0 0 auto' : row ? `${grow} 0 0` : `${grow} 0 auto`
  const gap = length(n.margin) ?? (ctx.index > 0 ? length(ctx.spacing) : undefined)
  const offsets = ['offsetTop', 'offsetBottom', 'offsetStart', 'offsetEnd'].some((k) => k in n)
  const position = n.position === 'absolute' ? 'absolute' : offsets ? 'relative' : undefined
  const gravity = ctx.layout === 'horizontal' ? keyword(n.gravity, GRAVITY) : undefined
  return [
    ['flex', flex],
    [row ? 'margin-inline-start' : 'margin-top', gap],
    ['position', position],
    ['top', length(n.offsetTop)],
    ['bottom', length(n.offsetBottom)],
    ['inset-inline-start', length(n.offsetStart)],
    ['inset-inline-end', length(n.offsetEnd)],
    ['align-self', gravity],
  ]
}

type ActionView = {
  href: string | undefined
  label: string | undefined
  cls: string
  attrs: Record<string, string | undefined>
}

/** An action as inert data (for the sandbox's one delegated listener), a link for safe URIs. */
export function actionOf(value: unknown): ActionView {
  const action = asNode(value)
  if (!action) return { href: undefined, label: undefined, cls: '', attrs: {} }
  const href = action.type === 'uri' ? safeHref(action.uri) : undefined
  return {
    href,
    label: typeof action.label === 'string' ? action.label : undefined,
    cls: ' fx-action',
    attrs: {
      'data-action': JSON.stringify(action),
      href,
      target: href ? '_blank' : undefined,
      rel: href ? 'noopener noreferrer' : undefined,
    },
  }
}

/**
 * A bubble or box (classes `cls`) holding `inner`, with its action. A link can't hold the
 * links of its components (the browser would follow the outer one, or split the markup), so a
 * linked container is a plain element whose first child is an empty link covering it
 * (`fx-cover`); the container's actions are drawn above that cover (flex-css.ts), so each opens
 * its own target and the rest of the container opens the container's, with no script.
 */
export function actionContainer(
  action: ActionView,
  cls: string,
  attrs: Record<string, string | undefined>,
  inner: string,
): string {
  if (!action.href) {
    return el('div', { class: cls + action.cls, ...attrs, ...action.attrs }, inner)
  }
  const cover = el('a', { class: 'fx-cover', ...action.attrs, 'aria-label': action.label })
  return el('div', { class: `${cls} fx-linked`, ...attrs }, cover + inner)
}

export function asNode(value: unknown): Node | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Node)
    : undefined
}
