import { isDeepStrictEqual } from 'node:util'
import type { messagingApi } from '@line/bot-sdk'
import {
  forgetLineRichMenu,
  forgetLinkedVersions,
  listRecordedLineIds,
  listUnretiredVersions,
  listVersionsOnLine,
  type RichMenuVersion,
  setLineRichMenuId,
} from './richmenu.repo.ts'
import type { RichMenuDeployDeps } from './richmenu-deploy.service.ts'
import { deleteLineRichMenu, listLineRichMenus } from './richmenu-deploy-line.ts'
import { type RichMenuFile, switchAliasesOf } from './richmenu-files.ts'

/**
 * A create whose answer was lost (a timeout, a crash before the id was recorded) may still
 * have made the menu at LINE. Such a menu is recognised by its rich menu object (size,
 * selected, name, chatBarText, areas) equal to a version's, and by no version recording it.
 * Menus that match no version are never touched: other tools may share the channel.
 */

/** Whether the menu has an area that switches to a tab (LINE links the tab when it is tapped). */
export function hasTabSwitch(menu: RichMenuFile): boolean {
  return switchAliasesOf(menu).length > 0
}

/** LINE's object without its id, keys sorted and empty values dropped: what is compared. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical)
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([key, v]) => key !== 'richMenuId' && v !== undefined && v !== null)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, v]) => [key, canonical(v)])
    return Object.fromEntries(entries)
  }
  return value
}

export function sameRichMenu(
  a: messagingApi.RichMenuRequest | messagingApi.RichMenuResponse,
  b: messagingApi.RichMenuRequest | messagingApi.RichMenuResponse,
): boolean {
  return isDeepStrictEqual(canonical(a), canonical(b))
}

/**
 * Before creating again after an attempt whose answer never came: the unrecorded LINE menu
 * equal to this one, recorded on the version (its image is uploaded next), or null.
 */
export async function adoptLostCreate(
  deps: RichMenuDeployDeps,
  version: RichMenuVersion,
  menu: RichMenuFile,
): Promise<string | null> {
  const recorded = await listRecordedLineIds(deps.db)
  const found = (await listLineRichMenus(deps.line)).find(
    (m) => !recorded.has(m.richMenuId) && sameRichMenu(m, menu.richMenu),
  )
  if (!found) return null
  await setLineRichMenuId(deps.db, version.id, found.richMenuId)
  deps.log.info({ menu: menu.name, richMenuId: found.richMenuId }, 'rich menu adopted')
  return found.richMenuId
}

/**
 * The start-up comparison with LINE's list (one call). Menus LINE lost are forgotten, so they
 * are created again (and their people re-linked). A LINE menu no version records but equal to
 * a folder's live or pending version is the orphan of a lost create: adopted by that version
 * when it has no LINE menu yet, else deleted. Returns whether LINE had lost any menu.
 */
export async function checkAgainstLine(
  deps: RichMenuDeployDeps,
  menus: RichMenuFile[],
): Promise<boolean> {
  const { db, log } = deps
  const onLine = await listLineRichMenus(deps.line)
  const onLineIds = new Set(onLine.map((m) => m.richMenuId))
  let lost = false
  let lostTab = false
  for (const v of await listVersionsOnLine(db)) {
    if (v.line_rich_menu_id && !onLineIds.has(v.line_rich_menu_id)) {
      await forgetLineRichMenu(db, v.id)
      lost = true
      // An alias target: LINE may have linked it to people on a tap (nobody else shows it so).
      if (v.retired_at === null && v.alias !== null) lostTab = true
      log.info({ menu: v.name, richMenuId: v.line_rich_menu_id }, 'rich menu gone at LINE')
    }
  }
  const recorded = await listRecordedLineIds(db)
  const unretired = await listUnretiredVersions(db)
  if (lostTab) {
    // LINE unlinked the people showing the tab (or another segment's menu an alias names), and
    // no row names them (LINE linked it on a richmenuswitch tap): the friends on a menu with a
    // tab switch are linked to theirs again.
    const withTabs = unretired.filter((v) =>
      menus.some((m) => m.name === v.name && m.contentHash === v.content_hash && hasTabSwitch(m)),
    )
    await forgetLinkedVersions(
      db,
      withTabs.map((v) => v.id),
    )
  }
  for (const lineMenu of onLine) {
    if (recorded.has(lineMenu.richMenuId)) continue
    const versions = menus
      .filter((m) => sameRichMenu(lineMenu, m.richMenu))
      .flatMap((m) =>
        unretired.filter((v) => v.name === m.name && v.content_hash === m.contentHash),
      )
    if (versions.length === 0) continue
    const { richMenuId } = lineMenu
    const pending = versions.find((v) => !v.line_rich_menu_id)
    if (pending) {
      await setLineRichMenuId(db, pending.id, richMenuId)
      pending.line_rich_menu_id = richMenuId
      log.info({ menu: pending.name, richMenuId }, 'rich menu adopted')
    } else {
      await deleteLineRichMenu(deps.line, versions[0]?.name ?? '', richMenuId)
      log.info({ menu: versions[0]?.name, richMenuId }, 'rich menu orphan deleted')
    }
  }
  return lost
}
