import { createHash } from 'node:crypto'
import { html, raw } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import type { SandboxPlatform } from './platform.ts'
import type { SimUser } from './state.ts'
import { chatLineView, quickReplyView } from './ui.messages.ts'
import { richMenuView } from './ui.richmenu.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/**
 * The parts of a user's section that change without a new chat line, and that the live stream
 * (ui.live.ts) redraws: each is `<div data-part="name" data-v="…">`, `v` a hash of its content,
 * so the page replaces one only when it differs.
 */
export type UserParts = Record<'meta' | 'menu', { v: string; html: string }>

export async function userParts(platform: SandboxPlatform, user: SimUser): Promise<UserParts> {
  const part = async (name: string, inner: Html | '') => {
    const content = String(await inner)
    const v = createHash('sha1').update(content).digest('base64url').slice(0, 16)
    return { v, html: String(html`<div data-part="${name}" data-v="${v}">${raw(content)}</div>`) }
  }
  return {
    meta: await part('meta', metaLine(platform, user)),
    menu: await part('menu', richMenuView(platform, user)),
  }
}

/** A simulated user's section of the page: who they are, their forms, chat and rich menu. */
export async function userSection(platform: SandboxPlatform, user: SimUser): Promise<Html> {
  const base = `users/${encodeURIComponent(user.userId)}`
  const inbox = platform.inbox(user.userId)
  const chat = platform.context.state.feed.filter((entry) => entry.userId === user.userId)
  const parts = await userParts(platform, user)
  return html`<section data-user="${user.userId}">
  <h2>${user.displayName}</h2>
  ${raw(parts.meta.html)}
  ${
    user.friendship === 'friend'
      ? html`<form method="post" action="${base}/block"><button>Block</button></form>`
      : html`<form method="post" action="${base}/follow">
          <button>${user.friendship === 'blocked' ? 'Unblock' : 'Add friend'}</button>
        </form>`
  }
  ${
    user.friendship === 'blocked'
      ? html`<p class="meta">Unblock to send messages or tap postbacks.</p>`
      : html`<form method="post" action="${base}/text">
          <input name="text" placeholder="Message" required /><button>Send text</button>
        </form>
        <form method="post" action="${base}/postback">
          <input name="data" placeholder="Postback data" required /><button>Tap postback</button>
        </form>`
  }
  <div class="chat">${chat.map((entry) => chatLineView(inbox, entry))}</div>
  <div class="quick-replies">${raw(quickReplyView(user, inbox))}</div>
  ${raw(parts.menu.html)}
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
