import { flexCss } from './flex-css.ts'
import { renderFlexHtml } from './flex-html.ts'
import { el, escapeHtml } from './flex-style.ts'
import type { MessageTemplate, RenderedMessage } from './message-template.ts'
import type { TemplateProblem } from './template-error.ts'

/**
 * One self-contained HTML page showing a rendered template: the Flex message in a LINE-like
 * chat, next to the email (subject, HTML in a sandboxed srcdoc iframe, plain text). No script;
 * a Content-Security-Policy forbids any, and the email HTML runs with no permissions.
 */
export function renderPreviewPage(input: {
  template: Pick<MessageTemplate, 'id' | 'file' | 'category' | 'description'>
  message: RenderedMessage
  problems?: TemplateProblem[]
}): string {
  const { template: t, message, problems = [] } = input
  const list = problems
    .map((p) => el('li', {}, `${el('code', {}, escapeHtml(p.path))} ${escapeHtml(p.message)}`))
    .join('')
  const problemSection = problems.length
    ? el('section', { class: 'pv-problems' }, `${el('h2', {}, 'Problems')}${el('ul', {}, list)}`)
    : ''
  const line = el(
    'section',
    { class: 'pv-line', 'aria-label': 'LINE' },
    el('h2', {}, 'LINE') +
      el(
        'div',
        { class: 'pv-phone' },
        el('div', { class: 'pv-bar' }, 'Kizuna') +
          el(
            'div',
            { class: 'pv-chat' },
            el('div', { class: 'pv-msg' }, renderFlexHtml(message.line.contents)),
          ),
      ) +
      el(
        'p',
        { class: 'pv-alt' },
        `${el('span', {}, 'altText')} ${el('span', { id: 'line-alt-text' }, escapeHtml(message.line.altText))}`,
      ),
  )
  const email = el(
    'section',
    { class: 'pv-email', 'aria-label': 'Email' },
    el('h2', {}, 'Email') +
      el(
        'p',
        { class: 'pv-subject' },
        `${el('span', {}, 'Subject')} ${el('strong', { id: 'email-subject' }, escapeHtml(message.email.subject))}`,
      ) +
      el(
        'iframe',
        {
          id: 'email-html',
          title: 'Email HTML',
          sandbox: 'allow-popups allow-popups-to-escape-sandbox',
          referrerpolicy: 'no-referrer',
          srcdoc: message.email.html,
        },
        '',
      ) +
      el('h3', {}, 'Plain text') +
      el('pre', { id: 'email-text' }, escapeHtml(message.email.text)),
  )
  const head =
    '<meta charset="utf-8">' +
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">` +
    '<meta name="viewport" content="width=device-width,initial-scale=1">' +
    el('title', {}, `${escapeHtml(t.id)} · Kizuna preview`) +
    `<style>${PAGE_CSS}${flexCss}</style>`
  const header = el(
    'header',
    { class: 'pv-head' },
    el('h1', {}, escapeHtml(t.id)) +
      el('p', {}, escapeHtml(t.description)) +
      el('p', { class: 'pv-meta' }, `${escapeHtml(t.category)} · ${escapeHtml(t.file)}`),
  )
  return `<!doctype html>\n<html lang="ja"><head>${head}</head><body>${header}${problemSection}${el('main', { class: 'pv-main' }, line + email)}</body></html>\n`
}

const CSP = [
  "default-src 'none'",
  'img-src https: http: data:',
  "style-src 'unsafe-inline'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ')

const PAGE_CSS = `
*{box-sizing:border-box}
body{margin:0;font-family:-apple-system,BlinkMacSystemFont,"Hiragino Sans","Noto Sans JP",sans-serif;
  background:#f4f5f7;color:#111111}
.pv-head{padding:16px 24px;background:#ffffff;border-bottom:1px solid #e5e5e5}
.pv-head h1{margin:0;font-size:20px}
.pv-head p{margin:4px 0 0;color:#555555}
.pv-meta{font-size:12px}
.pv-problems{margin:16px 24px 0;padding:12px 16px;background:#fdecea;border:1px solid #f5c2c0;
  border-radius:8px}
.pv-problems h2{margin:0 0 8px;font-size:16px;color:#a61b1b}
.pv-main{display:flex;flex-wrap:wrap;gap:32px;padding:24px}
.pv-main h2{margin:0 0 12px;font-size:16px}
.pv-phone{width:390px;border-radius:24px;overflow:hidden;background:#8cabd9;
  box-shadow:0 2px 12px rgba(0,0,0,.15)}
.pv-bar{background:#1f2a3c;color:#ffffff;padding:12px 16px;font-weight:bold;font-size:15px}
.pv-chat{padding:16px 12px 24px 48px;min-height:480px}
.pv-alt{max-width:390px;font-size:13px;color:#555555}
.pv-alt span:first-child,.pv-subject span{display:inline-block;margin-right:6px;padding:1px 6px;
  border-radius:4px;background:#e3e6ea;font-size:12px;color:#333333}
.pv-email{flex:1 1 480px;min-width:320px}
.pv-email iframe{width:100%;height:640px;border:1px solid #d5d9de;border-radius:8px;background:#ffffff}
.pv-email pre{white-space:pre-wrap;background:#ffffff;border:1px solid #d5d9de;border-radius:8px;
  padding:12px;font-size:13px}
`
