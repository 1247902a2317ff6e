import { html, raw } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import { renderFlexHtml } from '../flex/flex-html.ts'
import { actionOf, asNode } from '../flex/flex-html-parts.ts'
import { el, escapeHtml } from '../flex/flex-style.ts'
import type { InboxEntry } from './state.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/** One message in a simulated user's chat; `hono/html` and `el` escape every value. */
export function messageView(entry: InboxEntry): Html {
  const { message } = entry
  const meta = html`<div class="meta">
    ${new Date(entry.at).toISOString()} · ${entry.endpoint}
  </div>`
  if (message.type === 'text') {
    return html`<div class="msg">${meta}<div class="msg-text">${String(message.text ?? '')}</div></div>`
  }
  // Flex and template messages drawn as the LINE app shows them; their buttons are taps
  // (data-action, handled by TAP_SCRIPT). The JSON stays one click away.
  const shown =
    message.type === 'flex'
      ? renderFlexHtml(message.contents)
      : message.type === 'template'
        ? renderTemplateHtml(message.template)
        : message.type === 'image' && typeof message.originalContentUrl === 'string'
          ? el(
              'img',
              { src: message.originalContentUrl, alt: '', style: 'max-width:240px' },
              '',
              true,
            )
          : ''
  const summary = message.type === 'flex' ? '' : `[${String(message.type)}]`
  return html`<div class="msg msg-rich" title="${String(message.altText ?? '')}">
  ${meta}${shown ? raw(shown) : summary}
  <details><summary>JSON</summary><pre>${JSON.stringify(message, null, 2)}</pre></details>
</div>`
}

/** A buttons, confirm or carousel template, roughly as LINE draws it (escaped, no script). */
function renderTemplateHtml(value: unknown): string {
  const t = asNode(value)
  if (!t) return ''
  const card = (c: Record<string, unknown>) => {
    const image =
      typeof c.thumbnailImageUrl === 'string'
        ? el('img', { src: c.thumbnailImageUrl, alt: '' }, '', true)
        : ''
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
