import { type Context, Hono } from 'hono'
import { html, raw } from 'hono/html'
import { basePath } from 'hono/route'
import type { HtmlEscapedString } from 'hono/utils/html'
import { flexCss } from '../flex/flex-css.ts'
import type { SandboxPlatform } from './platform.ts'
import { LIVE_SCRIPT, liveEvents } from './ui.live.ts'
import { RICHMENU_CSS, richMenuImage, switchRichMenu } from './ui.richmenu.ts'
import { userSection } from './ui.user.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/**
 * A minimal "phone" page for the sandbox, meant to be mounted at `/sandbox`. Forms use relative
 * actions, so the page works under any mount path. `hono/html` escapes every interpolated value.
 * (Plain `.ts` with `html` templates rather than `.tsx`: Node's type stripping doesn't do JSX.)
 */
export function createSandboxUi(platform: SandboxPlatform) {
  const app = new Hono()
  /** Where the UI is mounted, without the trailing slash (`/sandbox`, or `` at the root). */
  const mount = (c: Context) => basePath(c).replace(/\/$/, '')
  const act =
    (run: (form: Record<string, string>, userId: string) => Promise<unknown>) =>
    async (c: Context) => {
      // A page of another site must not act here as the developer's simulated users: browsers
      // send Origin on every POST (`null` from a sandboxed frame). Clients that send none are
      // not browsers a page could drive.
      const origin = c.req.header('origin')
      if (origin !== undefined && !sameHost(origin, c.req.url)) {
        return c.text('cross-origin request refused: use the sandbox page itself', 403)
      }
      const raw = await c.req.parseBody()
      const form = Object.fromEntries(
        Object.entries(raw).map(([k, v]) => [k, typeof v === 'string' ? v : '']),
      )
      try {
        await run(form, c.req.param('userId') ?? '')
      } catch (error) {
        return c.text(error instanceof Error ? error.message : String(error), 400)
      }
      return c.redirect(`${mount(c)}/`, 303)
    }

  // Stands in for LINE's account-link dialog (access.line.me/dialog/bot/accountLink): Kizuna's
  // /link page sends the shopper here with the link token and nonce; LINE would then send the
  // `accountLink` event and return to the chat.
  app.get('/dialog/bot/accountLink', async (c) => {
    const dialog = { linkToken: c.req.query('linkToken') ?? '', nonce: c.req.query('nonce') ?? '' }
    // The page has no signed-in user: the dialog is the link token's user's.
    const userId = platform.context.state.linkTokens.get(dialog.linkToken)?.userId ?? ''
    try {
      await platform.users.accountLink(userId, dialog)
    } catch (error) {
      return c.text(error instanceof Error ? error.message : String(error), 400)
    }
    return c.redirect(`${mount(c)}/`, 303)
  })

  app.get('/events', liveEvents(platform))
  app.get('/richmenus/:richMenuId/image', richMenuImage(platform))
  app.get('/*', (c) => {
    const base = mount(c)
    // Relative form actions need the trailing slash (`/sandbox` → `/sandbox/`).
    if (c.req.path === base) return c.redirect(`${base}/`, 301)
    if (c.req.path !== `${base}/`) return c.notFound()
    return c.html(page(platform))
  })

  app.post(
    '/users',
    act(async (form) => {
      const displayName = form.displayName?.trim() || undefined
      const user = platform.users.create({ displayName })
      await platform.users.follow(user.userId)
    }),
  )
  app.post(
    '/users/:userId/follow',
    act((_, userId) => platform.users.follow(userId)),
  )
  app.post(
    '/users/:userId/block',
    act((_, userId) => platform.users.block(userId)),
  )
  app.post(
    '/users/:userId/text',
    act((form, userId) => platform.users.sendText(userId, form.text ?? '')),
  )
  app.post(
    '/users/:userId/postback',
    act((form, userId) =>
      platform.users.postback(userId, form.data ?? '', pickedParams(form), form.displayText),
    ),
  )
  app.post(
    '/users/:userId/richmenuswitch',
    act((form, userId) => switchRichMenu(platform, userId, form.alias ?? '', form.data ?? '')),
  )
  return app
}

function page(platform: SandboxPlatform): Html {
  const users = platform.users.list()
  const last = platform.webhookDeliveries.at(-1)
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>LINE sandbox</title>
    <style>
      body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 1rem auto; padding: 0 1rem; }
      section { border: 1px solid #ccc; border-radius: 8px; padding: 0.5rem 1rem; margin: 1rem 0; }
      form { display: inline-block; margin: 0.25rem 0.5rem 0.25rem 0; }
      .msg { background: #e9f9e5; border-radius: 8px; padding: 0.4rem 0.6rem; margin: 0.3rem 0; }
      .meta { color: #777; font-size: 0.8em; }
      pre { white-space: pre-wrap; font-size: 0.8em; }
      .chat { background: #8cabd9; border-radius: 8px; padding: 0.5rem; margin: 0.5rem 0; }
      .chat .row { display: flex; align-items: flex-end; gap: 6px; margin: 0.3rem 0; }
      .chat .msg { background: #fff; max-width: 320px; margin: 0; min-width: 0; }
      .chat .msg-rich { background: transparent; padding: 0; max-width: none; }
      .chat .row-user { flex-direction: row-reverse; }
      .chat .row-user .meta { align-items: flex-end; }
      .chat .msg-user { background: #8de055; }
      /* Beside the bubble, on the chat's blue: dark enough to read (WCAG AA). */
      .chat .meta { flex: none; display: flex; flex-direction: column; color: #333;
        font-size: 0.7em; line-height: 1.3; }
      .msg-text { white-space: pre-wrap; overflow-wrap: anywhere; }
      .tpl { width: 300px; background: #fff; border-radius: 17px; overflow: hidden; }
      .tpl img { display: block; width: 100%; aspect-ratio: 1.51; object-fit: cover; }
      .tpl-body { padding: 12px 16px; white-space: pre-wrap; overflow-wrap: anywhere; }
      .tpl-title { font-weight: bold; }
      .tpl .fx-action { display: block; padding: 12px; border-top: 1px solid #e5e5e5;
        text-align: center; color: #42659a; text-decoration: none; }
      .quick-replies { display: flex; gap: 6px; overflow-x: auto; margin: -0.25rem 0 0.5rem; }
      .qr-chip { flex: 0 0 auto; display: inline-flex; align-items: center; gap: 4px;
        max-width: 12rem; padding: 6px 12px; border: 1px solid #42659a; border-radius: 16px;
        background: #fff; color: #42659a; font: inherit; font-size: 0.85em; white-space: nowrap;
        overflow: hidden; text-overflow: ellipsis; text-decoration: none; cursor: pointer; }
      .qr-chip img { width: 18px; height: 18px; object-fit: cover; border-radius: 50%; }
      .qr-chip:disabled { border-color: #bbb; color: #999; cursor: default; }
      .msg-rich details { color: #333; }
      .msg-rich pre { background: #fff; color: #111; padding: 0.4rem; border-radius: 6px; }
      ${raw(flexCss)}
      ${raw(RICHMENU_CSS)}
    </style>
  </head>
  <body data-feed="${platform.context.state.feed.length}">
    <h1>LINE sandbox</h1>
    <p class="meta">
      Bot ${platform.botUserId} · webhook ${platform.webhookUrl ?? '(not set)'}
      ${last ? html` · last webhook: ${last.status || last.error}` : ''}
    </p>
    <form method="post" action="users">
      <input name="displayName" placeholder="Display name" />
      <button>Create user and add friend</button>
    </form>
    ${users.length === 0 ? html`<p>No simulated users yet.</p>` : ''}
    ${users.map((user) => userSection(platform, user))}
    <script>${raw(TAP_SCRIPT)}</script>
    <script>${raw(LIVE_SCRIPT)}</script>
  </body>
</html>`
}

/**
 * One delegated listener: a tapped postback (with its displayText) or message action posts the
 * user's event, like the LINE app (a rich menu's richmenuswitch too); a datetimepicker opens a picker whose OK
 * posts the postback with its params; uri actions are plain links, and a tap on
 * an action that is no link (a uri of a refused scheme) follows no link around it.
 */
const TAP_SCRIPT = `
document.addEventListener('click', function (event) {
  var target = event.target.closest('[data-action]')
  var section = target && target.closest('[data-user]')
  if (!section || target.getAttribute('href')) return
  event.preventDefault()
  var action
  try { action = JSON.parse(target.getAttribute('data-action')) } catch (e) { return }
  var path, fields
  if (action.type === 'postback') {
    path = 'postback'; fields = { data: action.data, displayText: action.displayText }
  }
  else if (action.type === 'message') { path = 'text'; fields = { text: action.text } }
  else if (action.type === 'richmenuswitch') {
    path = 'richmenuswitch'; fields = { alias: action.richMenuAliasId, data: action.data }
  }
  else if (action.type === 'datetimepicker') return pick(section, action)
  else return
  var form = userForm(section, path, fields)
  document.body.appendChild(form)
  form.submit()
})

function userForm(section, path, fields) {
  var form = document.createElement('form')
  form.method = 'post'
  form.action = 'users/' + encodeURIComponent(section.getAttribute('data-user')) + '/' + path
  Object.keys(fields).forEach(function (name) {
    var input = document.createElement('input')
    input.type = 'hidden'
    input.name = name
    input.value = String(fields[name] == null ? '' : fields[name])
    form.appendChild(input)
  })
  return form
}

// The LINE app's date/time picker: one under the chat at a time; OK posts the postback with
// params.date, params.time or params.datetime, Cancel sends nothing.
function pick(section, action) {
  var types = { date: 'date', time: 'time', datetime: 'datetime-local' }
  if (!Object.prototype.hasOwnProperty.call(types, action.mode)) return
  var old = section.querySelector('.dt-picker')
  if (old) old.remove()
  var form = userForm(section, 'postback', { data: action.data })
  form.className = 'dt-picker'
  var input = document.createElement('input')
  input.type = types[action.mode]
  input.name = action.mode
  input.required = true
  ;['initial', 'min', 'max'].forEach(function (key) {
    if (typeof action[key] !== 'string') return
    if (key === 'initial') input.value = action[key]
    else input.setAttribute(key, action[key])
  })
  var ok = document.createElement('button')
  ok.textContent = 'OK'
  var cancel = document.createElement('button')
  cancel.type = 'button'
  cancel.textContent = 'Cancel'
  cancel.addEventListener('click', function () { form.remove() })
  form.append(String(action.label || action.mode) + ' ', input, ok, cancel)
  section.querySelector('.chat').insertAdjacentElement('afterend', form)
  input.focus()
}
`

/** What a datetime picker sends back, by its mode (LINE-API.md §1.6): no time zone. */
const PICKED = {
  date: /^\d{4}-\d{2}-\d{2}$/,
  time: /^\d{2}:\d{2}$/,
  datetime: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/,
} as const

/**
 * The `postback.params` of a datetimepicker tap: exactly one of `date`, `time` or `datetime`, in
 * LINE's format (the page's date, time and datetime-local inputs give those). None: a plain
 * postback. Anything else is refused.
 */
function pickedParams(form: Record<string, string>): Record<string, string> | undefined {
  const picked = Object.keys(PICKED).filter((mode) => form[mode] !== undefined)
  if (picked.length === 0) return undefined
  const mode = picked[0] as keyof typeof PICKED
  const value = form[mode] ?? ''
  if (picked.length > 1 || !PICKED[mode].test(value)) {
    throw new Error('a datetime picker sends one date (YYYY-MM-DD), time (HH:mm) or datetime')
  }
  return { [mode]: value }
}

function sameHost(origin: string, url: string): boolean {
  return URL.canParse(origin) && new URL(origin).host === new URL(url).host
}
