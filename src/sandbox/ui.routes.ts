import { type Context, Hono } from 'hono'
import { html, raw } from 'hono/html'
import { basePath } from 'hono/route'
import type { HtmlEscapedString } from 'hono/utils/html'
import { flexCss } from '../flex/flex-css.ts'
import type { SandboxPlatform } from './platform.ts'
import { LIVE_SCRIPT, liveEvents } from './ui.live.ts'
import { chatAnchor, pageParts, userSection } from './ui.parts.ts'
import { RICHMENU_CSS, richMenuImage, switchRichMenu } from './ui.richmenu.ts'
import { TAP_SCRIPT } from './ui.tap.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/**
 * A minimal "phone" page for the sandbox, meant to be mounted at `/sandbox`. Forms use relative
 * actions, so the page works under any mount path. `hono/html` escapes every interpolated value.
 * A post answers 303 back to the page at the user's chat (`#user-…`), for forms posted without
 * script; the page's script posts with fetch and stays put (ui.tap.ts).
 * (Plain `.ts` with `html` templates rather than `.tsx`: Node's type stripping doesn't do JSX.)
 */
export function createSandboxUi(platform: SandboxPlatform) {
  const app = new Hono()
  /** Where the UI is mounted, without the trailing slash (`/sandbox`, or `` at the root). */
  const mount = (c: Context) => basePath(c).replace(/\/$/, '')
  /** Back to the page, at the end of that user's chat (see chatAnchor). */
  const backTo = (c: Context, userId: string) =>
    c.redirect(`${mount(c)}/${userId ? `#${encodeURIComponent(chatAnchor(userId))}` : ''}`, 303)
  /** A form's action, as the `:userId` of its path (or, creating a user, the id `run` returns). */
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
      const userId = c.req.param('userId') ?? ''
      let done: unknown
      try {
        done = await run(form, userId)
      } catch (error) {
        return c.text(error instanceof Error ? error.message : String(error), 400)
      }
      return backTo(c, userId || (typeof done === 'string' ? done : ''))
    }

  // Stands in for LINE's account-link dialog (access.line.me/dialog/bot/accountLink): Kizuna's
  // /link page sends the shopper here with the link token and nonce; LINE would then send the
  // `accountLink` event and return to the chat.
  app.get('/dialog/bot/accountLink', async (c) => {
    const dialog = { linkToken: c.req.query('linkToken') ?? '', nonce: c.req.query('nonce') ?? '' }
    // The page has no signed-in user: the dialog is the link token's user's, unless `asUser`
    // names another simulated user whose LINE opens it (LINE then sends a failed link).
    const owner = platform.context.state.linkTokens.get(dialog.linkToken)?.userId ?? ''
    const userId = c.req.query('asUser') || owner
    try {
      await platform.users.accountLink(userId, dialog)
    } catch (error) {
      return c.text(error instanceof Error ? error.message : String(error), 400)
    }
    return backTo(c, userId)
  })

  app.get('/events', liveEvents(platform))
  app.get('/richmenus/:richMenuId/image', richMenuImage(platform))
  app.get('/*', async (c) => {
    const base = mount(c)
    // Relative form actions need the trailing slash (`/sandbox` → `/sandbox/`).
    if (c.req.path === base) return c.redirect(`${base}/`, 301)
    if (c.req.path !== `${base}/`) return c.notFound()
    // Another site the developer visits must not frame the page and trick clicks on its forms
    // (acting as the simulated users). Only frame-ancestors: the page's own scripts are inline.
    return c.html(await page(platform), 200, {
      'content-security-policy': "frame-ancestors 'none'",
      'x-frame-options': 'DENY',
    })
  })

  app.post(
    '/users',
    act(async (form) => {
      const displayName = form.displayName?.trim() || undefined
      const user = platform.users.create({ displayName })
      await platform.users.follow(user.userId)
      return user.userId
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

async function page(platform: SandboxPlatform): Promise<Html> {
  // Chats hold the feed up to here; the live stream sends the rest (ui.live.ts).
  const upTo = platform.context.state.feed.length
  const users = platform.users.list()
  const { status } = await pageParts(platform)
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
      /* A post without script returns here: the end of the chat near the window's bottom. */
      .chat-end { scroll-margin-top: calc(100vh - 1rem); }
      .error { position: fixed; top: 0.5rem; left: 50%; transform: translateX(-50%); z-index: 1;
        max-width: 40rem; margin: 0; padding: 0.5rem 1rem; border: 1px solid #d99;
        border-radius: 6px; background: #fdecec; color: #8a1111; cursor: pointer; }
      ${raw(flexCss)}
      ${raw(RICHMENU_CSS)}
    </style>
  </head>
  <body data-feed="${upTo}">
    <h1>LINE sandbox</h1>
    ${raw(status.html)}
    <form method="post" action="users">
      <input name="displayName" placeholder="Display name" />
      <button>Create user and add friend</button>
    </form>
    <p id="sandbox-error" class="error" role="alert" title="Dismiss" hidden></p>
    <div class="users">
      ${users.length === 0 ? html`<p class="no-users">No simulated users yet.</p>` : ''}
      ${users.map((user) => userSection(platform, user, upTo))}
    </div>
    <script>${raw(TAP_SCRIPT)}</script>
    <script>${raw(LIVE_SCRIPT)}</script>
  </body>
</html>`
}

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
