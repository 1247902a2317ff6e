import { createHash } from 'node:crypto'
import { html, raw } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import type { SandboxPlatform } from './platform.ts'
import type { SimUser } from './state.ts'
import { chatLineView, quickReplyView } from './ui.messages.ts'
import { richMenuView } from './ui.richmenu.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/**
 * A part of the page that changes without a new chat line, and that the live stream
 * (ui.live.ts) redraws: `<div data-part="name" data-v="…">`, `v` a hash of its content, so the
 * page replaces it only when it differs.
 */
export type Part = { v: string; html: string }
export type UserParts = Record<'meta' | 'friend' | 'quick' | 'composer' | 'menu', Part>

async function part(name: string, inner: Html | ''): Promise<Part> {
  const content = String(await inner)
  const v = createHash('sha1').update(content).digest('base64url').slice(0, 16)
  return { v, html: String(html`<div data-part="${name}" data-v="${v}">${raw(content)}</div>`) }
}

/** The page's own parts: the bot, the webhook URL and how the last delivery went. */
export async function pageParts(platform: SandboxPlatform): Promise<Record<'status', Part>> {
  const last = platform.webhookDeliveries.at(-1)
  return {
    status: await part(
      'status',
      html`<p class="meta">
      Bot ${platform.botUserId} · webhook ${platform.webhookUrl ?? '(not set)'}
      ${last ? html` · last webhook: ${last.status || last.error}` : ''}
    </p>`,
    ),
  }
}

export async function userParts(platform: SandboxPlatform, user: SimUser): Promise<UserParts> {
  const base = `users/${encodeURIComponent(user.userId)}`
  return {
    meta: await part('meta', metaLine(platform, user)),
    friend: await part(
      'friend',
      user.friendship === 'friend'
        ? html`<form method="post" action="${base}/block"><button>Block</button></form>`
        : html`<form method="post" action="${base}/follow">
          <button>${user.friendship === 'blocked' ? 'Unblock' : 'Add friend'}</button>
        </form>`,
    ),
    quick: await part(
      'quick',
      html`<div class="quick-replies">${raw(quickReplyView(user, platform.inbox(user.userId)))}</div>`,
    ),
    composer: await part(
      'composer',
      user.friendship === 'blocked'
        ? html`<p class="meta">Unblock to send messages or tap postbacks.</p>`
        : html`<form method="post" action="${base}/text">
          <input name="text" placeholder="Message" required /><button>Send text</button>
        </form>
        <form method="post" action="${base}/postback">
          <input name="data" placeholder="Postback data" required /><button>Tap postback</button>
        </form>`,
    ),
    menu: await part('menu', richMenuView(platform, user)),
  }
}

/** The id of the element that ends a user's section: a post without script returns to it. */
export const chatAnchor = (userId: string) => `user-${userId}`

/**
 * A simulated user's section, laid out as the LINE app's chat screen: the chat, the latest
 * message's quick replies, the message bar and the rich menu. The chat holds the lines of the
 * feed before `upTo` (the page's feed cursor; the live stream sends the rest).
 */
export async function userSection(
  platform: SandboxPlatform,
  user: SimUser,
  upTo: number,
): Promise<Html> {
  const inbox = platform.inbox(user.userId)
  const chat = platform.context.state.feed
    .slice(0, upTo)
    .filter((entry) => entry.userId === user.userId)
  const parts = await userParts(platform, user)
  return html`<section data-user="${user.userId}">
  <h2>${user.displayName}</h2>
  ${raw(parts.meta.html)}${raw(parts.friend.html)}
  <div class="chat">${chat.map((entry) => chatLineView(inbox, entry))}</div>
  ${raw(parts.quick.html)}${raw(parts.composer.html)}${raw(parts.menu.html)}
  <div class="chat-end" id="${chatAnchor(user.userId)}"></div>
</section>`
}

/**
 * The user's id, friendship and rich menu, the menu by the name and chat bar text LINE's API
 * returns for it (its id on hover), and whether it is the default or linked to them.
 */
function metaLine(platform: SandboxPlatform, user: SimUser): Html {
  const id = platform.richMenuOf(user.userId)
  const request = id ? platform.context.state.richMenus.get(id)?.request : undefined
  const name = typeof request?.name === 'string' && request.name ? request.name : id
  const menu = id
    ? html` · rich menu <span title="${id}">${name}</span>${user.richMenuId ? '' : ' (default)'}`
    : ''
  return html`<p class="meta">${user.userId} · ${statusLabel(user)}${menu}</p>`
}

function statusLabel(user: SimUser): string {
  if (user.friendship === 'friend') return 'friend'
  if (user.friendship === 'blocked') return 'blocked'
  return 'not a friend'
}
