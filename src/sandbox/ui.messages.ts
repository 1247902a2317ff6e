import { html, raw } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import { renderFlexHtml } from '../flex/flex-html.ts'
import { actionOf, asNode } from '../flex/flex-html-parts.ts'
import { el, escapeHtml, safeImageSrc } from '../flex/flex-style.ts'
import type { FeedEntry, InboxEntry, SimUser } from './state.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/** One line of a user's chat: a message they received (from `inbox`) or one they sent. */
export function chatLineView(inbox: readonly InboxEntry[], entry: FeedEntry): Html | '' {
  if (entry.kind === 'joined') return ''
  if (entry.kind === 'sent') return sentView(entry.at, entry.text)
  const received = inbox[entry.index]
  return received ? messageView(received) : ''
}

/** Text the user sent: their own bubble, on the right with its time on its left (as in LINE). */
function sentView(at: number, text: string): Html {
  return html`<div class="row row-user"><div class="msg msg-user"><div class="msg-text">${text}</div></div>${metaView(at)}</div>`
}

/**
 * One message in a simulated user's chat, with its time beside the bubble as the LINE app shows
 * it (and how it came: reply, push…); `hono/html` and `el` escape every value.
 */
export function messageView(entry: InboxEntry): Html {
  const { message } = entry
  const meta = metaView(entry.at, entry.endpoint)
  if (message.type === 'text') {
    return html`<div class="row"><div class="msg"><div class="msg-text">${String(message.text ?? '')}</div></div>${meta}</div>`
  }
  // Flex and template messages drawn as the LINE app shows them; their buttons are taps
  // (data-action, handled by TAP_SCRIPT). The JSON stays one click away.
  const shown =
    message.type === 'flex'
      ? renderFlexHtml(message.contents)
      : message.type === 'template'
        ? renderTemplateHtml(message.template)
        : message.type === 'image'
          ? imageView(message.originalContentUrl, 'max-width:240px')
          : ''
  const summary = message.type === 'flex' ? '' : `[${String(message.type)}]`
  return html`<div class="row"><div class="msg msg-rich" title="${String(message.altText ?? '')}">
  ${shown ? raw(shown) : summary}
  <details><summary>JSON</summary><pre>${JSON.stringify(message, null, 2)}</pre></details>
</div>${meta}</div>`
}

/** The time beside a bubble (hours and minutes, as LINE shows it; the full time on hover). */
function metaView(at: number, note?: string): Html {
  const when = new Date(at)
  const hhmm = [when.getHours(), when.getMinutes()].map((n) => String(n).padStart(2, '0'))
  return html`<div class="meta">${note ? html`<span>${note}</span>` : ''}<time datetime="${when.toISOString()}" title="${when.toISOString()}">${hhmm.join(':')}</time></div>`
}

/**
 * An image a message names, as Flex images are drawn: http(s) only (not `javascript:` or `data:`),
 * and fetched with no referrer (the sandbox page's address is not the image host's business).
 * '' for any other URL.
 */
function imageView(url: unknown, style?: string): string {
  const src = safeImageSrc(url)
  return src ? el('img', { src, alt: '', referrerpolicy: 'no-referrer', style }, '', true) : ''
}

/** A buttons, confirm or carousel template, roughly as LINE draws it (escaped, no script). */
function renderTemplateHtml(value: unknown): string {
  const t = asNode(value)
  if (!t) return ''
  const card = (c: Record<string, unknown>) => {
    const image = imageView(c.thumbnailImageUrl)
    const title =
      typeof c.title === 'string' ? el('div', { class: 'tpl-title' }, escapeHtml(c.title)) : ''
    const text = typeof c.text === 'string' ? escapeHtml(c.text) : ''
    const actions = (Array.isArray(c.actions) ? c.actions : []).map((a) => {
      const view = actionOf(a)
      const label = asNode(a)?.label
      return el(
        view.href ? 'a' : 'button',
        { class: view.cls.trim(), ...view.attrs, type: view.href ? undefined : 'button' },
        escapeHtml(typeof label === 'string' ? label : ''),
      )
    })
    return el(
      'div',
      { class: 'tpl' },
      `${image}${el('div', { class: 'tpl-body' }, title + text)}${actions.join('')}`,
    )
  }
  if (t.type === 'carousel' && Array.isArray(t.columns)) {
    return el(
      'div',
      { style: 'display:flex;gap:9px;overflow-x:auto' },
      t.columns.map((c) => card(asNode(c) ?? {})).join(''),
    )
  }
  return card(t)
}

/** Quick-reply actions the page can carry out; the rest (camera, location…) are only shown. */
const TAPPABLE = new Set(['postback', 'message', 'uri', 'datetimepicker'])

/**
 * The quick-reply buttons ("chips") of message `index` of a user's inbox, drawn when it is their
 * latest: the LINE app shows them at the bottom of the chat while that message is the last one,
 * and not once the user has answered (sent text or tapped a postback) after it. Postback,
 * message and datetime picker chips tap through TAP_SCRIPT like a Flex button; a uri chip is a
 * link; camera, camera roll, location and clipboard chips are shown disabled.
 */
export function quickReplyView(
  user: SimUser,
  inbox: readonly InboxEntry[],
  index = inbox.length - 1,
): string {
  const entry = inbox[index]
  const quick = asNode(entry?.message.quickReply)
  if (!quick || !Array.isArray(quick.items) || index < (user.answeredMessages ?? 0)) return ''
  return quick.items
    .map((item) => {
      const action = asNode(asNode(item)?.action)
      if (!action) return ''
      const view = actionOf(action)
      const icon = imageView(asNode(item)?.imageUrl)
      const label = icon + escapeHtml(view.label ?? String(action.type ?? ''))
      if (view.href) return el('a', { class: 'qr-chip', ...view.attrs }, label)
      const tappable = TAPPABLE.has(String(action.type))
      return el(
        'button',
        {
          type: 'button',
          class: `qr-chip${tappable ? view.cls : ''}`,
          ...(tappable ? view.attrs : {}),
          disabled: tappable ? undefined : 'disabled',
          title: tappable ? undefined : `${String(action.type)}: not available in the sandbox`,
        },
        label,
      )
    })
    .join('')
}
