import type { messagingApi } from '@line/bot-sdk'
import {
  actionContainer,
  actionOf,
  asNode,
  type Ctx,
  type Decl,
  itemDecls,
  NO_PX,
  type Node,
  renderButton,
  renderIcon,
  renderImage,
  renderText,
} from './flex-html-parts.ts'
import { BUBBLE_PX, borderWidth, color, css, el, gradient, length, oneOf } from './flex-style.ts'

/**
 * Server-side Flex → HTML, close to how the LINE app draws a bubble or carousel (not pixel
 * exact; LINE itself differs by OS and version). Pair it with `flexCss` (flex-css.ts).
 * Safe by construction: text and attributes are escaped, style values are sanitised, there is
 * no script; an action becomes an inert `data-action` JSON attribute, and a uri action a link
 * only for http, https, line and tel. Used by `kizuna flex preview` and the sandbox phone page.
 */
export function renderFlexHtml(container: messagingApi.FlexContainer | unknown): string {
  const c = asNode(container)
  if (c?.type === 'bubble') return el('div', { class: 'fx fx-single' }, renderBubble(c))
  if (c?.type !== 'carousel' || !Array.isArray(c.contents)) return ''
  const bubbles = c.contents.map(asNode).filter((b): b is Node => b !== undefined)
  return el('div', { class: 'fx fx-carousel' }, bubbles.map(renderBubble).join(''))
}

const SIZES = ['nano', 'micro', 'deca', 'hecto', 'kilo', 'mega', 'giga'] as const
const BLOCKS = ['header', 'hero', 'body', 'footer'] as const
const LAYOUTS = ['vertical', 'horizontal', 'baseline'] as const
const JUSTIFY = [
  'flex-start',
  'center',
  'flex-end',
  'space-between',
  'space-around',
  'space-evenly',
]
const ALIGN_ITEMS = ['flex-start', 'center', 'flex-end']

function renderBubble(b: Node): string {
  const size = oneOf(b.size, SIZES) ?? 'mega'
  const styles = asNode(b.styles)
  const blocks = BLOCKS.map((name) =>
    renderBlock(asNode(b[name]), name, size, asNode(styles?.[name])),
  ).join('')
  return actionContainer(
    actionOf(b.action),
    `fx-bubble fx-${size}`,
    {
      dir: oneOf(b.direction, ['ltr', 'rtl']) ?? 'ltr',
      style: css([['width', `${BUBBLE_PX[size]}px`]]),
    },
    blocks,
  )
}

function renderBlock(
  node: Node | undefined,
  name: (typeof BLOCKS)[number],
  size: string,
  style: Node | undefined,
): string {
  if (!node) return ''
  const separator =
    style?.separator === true && name !== 'header'
      ? `1px solid ${color(style.separatorColor) ?? '#e5e5e5'}`
      : undefined
  const ctx: Ctx = { layout: 'vertical', spacing: undefined, index: 0 }
  const inner =
    name === 'hero' ? renderComponent(node, ctx) : renderBox(node, ctx, blockPadding(size, name))
  const decls: Decl[] = [
    ['background-color', color(style?.backgroundColor)],
    ['border-top', separator],
  ]
  return el('div', { class: `fx-block fx-${name}`, style: css(decls) }, inner)
}

/** Default block padding by bubble size (LINE's simulator CSS). */
function blockPadding(size: string, block: string): string {
  if (size === 'mega' || size === 'giga') {
    return block === 'footer' ? '10px' : block === 'body' ? '19px 20px 20px' : '20px'
  }
  if (size === 'kilo') return '13px'
  if (size === 'hecto' || size === 'deca') return '11px 14px 13px'
  return '10px'
}

function renderComponent(node: Node | undefined, ctx: Ctx): string {
  switch (node?.type) {
    case 'box':
      return renderBox(node, ctx)
    case 'text':
      return renderText(node, ctx)
    case 'image':
      return renderImage(node, ctx)
    case 'icon':
      return renderIcon(node, ctx)
    case 'button':
      return renderButton(node, ctx)
    case 'separator':
      return el('div', {
        class: `fx-separator ${ctx.layout === 'vertical' ? 'fx-separator-h' : 'fx-separator-v'}`,
        style: css([...itemDecls(node, ctx, 0), ['border-color', color(node.color)]]),
      })
    case 'filler':
      return el('div', { class: 'fx-filler', style: css(itemDecls(node, ctx, 1)) })
    case 'spacer': {
      const gap = length(node.size) ?? '8px'
      return el('div', { class: 'fx-spacer', style: css([['flex', `0 0 ${gap}`]]) })
    }
    case 'video':
      return renderComponent(asNode(node.altContent), ctx)
    default:
      return ''
  }
}

function renderBox(n: Node, ctx: Ctx, blockPad?: string): string {
  const layout = oneOf(n.layout, LAYOUTS) ?? 'vertical'
  const children = Array.isArray(n.contents) ? n.contents : []
  const inner = children
    .map((c, index) => renderComponent(asNode(c), { layout, spacing: n.spacing, index }))
    .join('')
  const row = ctx.layout !== 'vertical'
  const width = length(n.width, NO_PX)
  const height = length(n.height, NO_PX)
  const fixed = (row && width) || (!row && height)
  const bw = borderWidth(n.borderWidth)
  const decls: Decl[] = [
    ...(blockPad === undefined ? itemDecls(n, ctx, row ? 1 : 0) : []),
    ...(fixed ? ([['flex', '0 0 auto']] as Decl[]) : []),
    ['padding', length(n.paddingAll) ?? blockPad],
    ['padding-top', length(n.paddingTop)],
    ['padding-bottom', length(n.paddingBottom)],
    ['padding-inline-start', length(n.paddingStart)],
    ['padding-inline-end', length(n.paddingEnd)],
    ['background-color', color(n.backgroundColor)],
    ['background-image', gradient(n.background)],
    [
      'border',
      bw || n.borderColor ? `${bw ?? '1px'} solid ${color(n.borderColor) ?? '#000'}` : undefined,
    ],
    ['border-radius', length(n.cornerRadius)],
    ['width', width],
    ['max-width', length(n.maxWidth, NO_PX)],
    ['height', height],
    ['max-height', length(n.maxHeight, NO_PX)],
    ['justify-content', oneOf(n.justifyContent, JUSTIFY)],
    ['align-items', oneOf(n.alignItems, ALIGN_ITEMS)],
  ]
  return actionContainer(actionOf(n.action), `fx-box fx-${layout}`, { style: css(decls) }, inner)
}
