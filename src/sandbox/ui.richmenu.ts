import type { Context } from 'hono'
import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import { safeHref } from '../flex/flex-style.ts'
import type { SandboxPlatform } from './platform.ts'
import type { RichMenuState, SimUser } from './state.ts'

type Area = { bounds?: Partial<Record<'x' | 'y' | 'width' | 'height', number>>; action?: unknown }
type MenuRequest = {
  size?: { width?: number; height?: number }
  selected?: boolean
  chatBarText?: string
  areas?: Area[]
}

/**
 * The rich menu a simulated user sees under the chat, as the LINE app draws it: the menu's image
 * with each area a transparent button over it, placed in % of the menu's size (so it scales with
 * the page), and the chat bar that opens and closes it. Taps go through the page's one click
 * listener (TAP_SCRIPT) like a Flex button's. Friends only: LINE shows no menu to someone who
 * blocked the account, and the sandbox has no "not a friend yet" chat screen.
 */
export function richMenuView(
  platform: SandboxPlatform,
  user: SimUser,
): HtmlEscapedString | Promise<HtmlEscapedString> | '' {
  if (user.friendship !== 'friend') return ''
  const id = platform.richMenuOf(user.userId)
  const menu = id ? platform.context.state.richMenus.get(id) : undefined
  if (!menu?.image) return ''
  const request = menu.request as MenuRequest
  const width = request.size?.width ?? 2500
  const height = request.size?.height ?? 843
  const pct = (value: number | undefined, of: number) =>
    `${(((value ?? 0) / of) * 100).toFixed(3)}%`
  return html`<details class="richmenu" data-richmenu="${menu.richMenuId}" ${request.selected ? 'open' : ''}>
  <summary>${request.chatBarText ?? 'Menu'}</summary>
  <div class="richmenu-board" style="aspect-ratio: ${width} / ${height}">
    <img src="richmenus/${encodeURIComponent(menu.richMenuId)}/image" alt="" />
    ${(request.areas ?? []).map((area) => {
      const action = (area.action ?? {}) as Record<string, unknown>
      const b = area.bounds ?? {}
      const style =
        `left:${pct(b.x, width)};top:${pct(b.y, height)};` +
        `width:${pct(b.width, width)};height:${pct(b.height, height)}`
      const label = typeof action.label === 'string' ? action.label : String(action.type ?? '')
      // Only LINE's uri schemes become links (a `javascript:` uri would run in the page).
      const href = action.type === 'uri' ? safeHref(action.uri) : undefined
      return href
        ? html`<a class="richmenu-area" style="${style}" href="${href}" target="_blank" rel="noopener" title="${label}">${label}</a>`
        : html`<button type="button" class="richmenu-area" style="${style}" title="${label}" data-action="${JSON.stringify(action)}">${label}</button>`
    })}
  </div>
</details>`
}

/** `GET richmenus/:id/image`: a menu's uploaded image, for the page. */
export function richMenuImage(platform: SandboxPlatform) {
  return (c: Context) => {
    const image = platform.context.state.richMenus.get(c.req.param('richMenuId') ?? '')?.image
    if (!image) return c.notFound()
    return c.body(image.bytes.slice().buffer, 200, {
      'content-type': image.contentType,
      'cache-control': 'no-store',
    })
  }
}

/**
 * A tapped `richmenuswitch` area: the LINE app shows the alias's menu to this user and sends a
 * `postback` with `params.newRichMenuAliasId` and `params.status` (RICHMENU_ALIAS_ID_NOTFOUND
 * when the alias is unknown, RICHMENU_NOTFOUND when its menu is gone).
 */
export async function switchRichMenu(
  platform: SandboxPlatform,
  userId: string,
  alias: string,
  data: string,
): Promise<void> {
  const { state } = platform.context
  const user = state.users.get(userId)
  if (!user) throw new Error('no such user')
  const target = state.aliases.get(alias)
  const menu: RichMenuState | undefined = target ? state.richMenus.get(target) : undefined
  const status = !target ? 'RICHMENU_ALIAS_ID_NOTFOUND' : !menu ? 'RICHMENU_NOTFOUND' : 'SUCCESS'
  if (menu) user.richMenuId = menu.richMenuId
  await platform.users.postback(userId, data, { newRichMenuAliasId: alias, status })
}

export const RICHMENU_CSS = `
.richmenu { margin: 0.5rem 0; max-width: 420px; }
.richmenu summary { cursor: pointer; text-align: center; background: #fff; border: 1px solid #ddd;
  border-radius: 6px; padding: 0.3rem; }
.richmenu-board { position: relative; width: 100%; background: #eee; }
.richmenu-board img { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.richmenu-area { position: absolute; box-sizing: border-box; background: transparent;
  border: 1px dashed rgba(0, 0, 0, 0.15); color: transparent; font-size: 0; cursor: pointer;
  padding: 0; overflow: hidden; }
.richmenu-area:hover, .richmenu-area:focus { background: rgba(255, 255, 255, 0.25); }
`
