import { classifyLineError } from '../platform/line.ts'
import { listVersionsOnLine } from './richmenu.repo.ts'
import { type LinkDeps, type LinkOptions, linkRichMenus } from './richmenu-link.service.ts'
import { findRecordedOn, forgetUnchangedMenus, type RecordedMenu } from './richmenu-segment.repo.ts'

/** Users asked about at once; the shared limiter keeps the asking under LINE's 2,000/s. */
const ASKED_AT_ONCE = 20

export type LinkCheckCounts = {
  /** Users LINE was asked about. */
  checked: number
  /** LINE showed them no menu or another of Kizuna's (not a tab): their record was forgotten. */
  missed: number
  /** Of those, linked again (one call each). */
  linked: number
  /** LINE would not say (a 4xx other than 404: an account since deleted): left as they were. */
  unknown: number
}

/**
 * Checks back a bulk link LINE accepted (202 is no promise: LINE-API.md §4, §9.7). Each of its
 * users still recorded on the version is looked up at LINE (GET /v2/bot/user/{userId}/richmenu,
 * limited apart from the links, 2,000/s); someone who blocked, was linked again or forgotten
 * meanwhile is not this call's any more and is left out. Those LINE shows no menu, or a menu of
 * Kizuna's other than the version's and the tabs reachable from it (missedLink), are forgotten (unless their record
 * changed while LINE was asked) and linked again one call each: the per-user link is immediate,
 * so no check follows it and none loops. A 429, a 5xx or a timeout throws, and the job asks again.
 */
export async function checkBulkLink(
  deps: LinkDeps,
  job: { versionId: string; lineUserIds: string[] },
  opts: Pick<LinkOptions, 'redeployLostMenus'> = {},
): Promise<LinkCheckCounts> {
  const rows = await findRecordedOn(deps.db, job.lineUserIds, job.versionId)
  const missedLink = await missedLinkTest(deps, job.versionId)
  const missed: RecordedMenu[] = []
  let unknown = 0
  for (let i = 0; i < rows.length; i += ASKED_AT_ONCE) {
    const part = rows.slice(i, i + ASKED_AT_ONCE)
    const shown = await Promise.all(part.map((row) => menuShownTo(deps, row.line_uid)))
    part.forEach((row, k) => {
      if (shown[k] === undefined) unknown++
      else if (missedLink(shown[k], row.line_rich_menu_id)) missed.push(row)
    })
  }
  const forgotten = await forgetUnchangedMenus(deps.db, missed)
  const again = await linkRichMenus(deps, forgotten, { ...opts, perUser: true })
  return { checked: rows.length, missed: forgotten.length, linked: again.linked, unknown }
}

/**
 * Whether a user LINE shows `shown` (null: no menu of their own) missed the link of version
 * `versionId` (LINE's menu `linked`). A tab is opened by a richmenuswitch tap, which makes LINE
 * link it to the user (richmenus/README.md): someone on one was linked and moved on, and linking
 * the version again would close the tab under them. A tab is a live version a tap can reach from
 * the version linked: one whose alias its switches open, or a switch of a menu so opened (another
 * segment's menu too: a member's switch to the vip menu); or one of no segment (a version
 * recorded before its switches were: only a switch opens it). Another segment's menu that only
 * other menus open (a teaser for new friends) is a miss: the link from it, to a person whose
 * segment changed, was dropped. A menu no version records is another tool's: left alone
 * (richmenu-deploy-adopt.ts). Retired versions count as misses: a tap after the link opens the
 * live tab its alias points at.
 */
async function missedLinkTest(deps: LinkDeps, versionId: string) {
  const versions = await listVersionsOnLine(deps.db)
  const kizuna = new Set(versions.map((v) => v.line_rich_menu_id))
  const live = versions.filter((v) => v.retired_at === null)
  const tabs = new Set(live.filter((v) => v.segments.length === 0).map((v) => v.line_rich_menu_id))
  const byAlias = new Map(live.flatMap((v) => (v.alias === null ? [] : [[v.alias, v] as const])))
  const toOpen = [...(versions.find((v) => v.id === versionId)?.switch_aliases ?? [])]
  const opened = new Set<string>()
  for (let alias = toOpen.pop(); alias !== undefined; alias = toOpen.pop()) {
    const tab = byAlias.get(alias)
    if (opened.has(alias) || !tab) continue
    opened.add(alias)
    tabs.add(tab.line_rich_menu_id)
    toOpen.push(...tab.switch_aliases)
  }
  return (shown: string | null, linked: string) =>
    shown === null || (shown !== linked && kizuna.has(shown) && !tabs.has(shown))
}

/** The menu LINE links to the user (null: none, 404); undefined when LINE refuses to say. */
async function menuShownTo(deps: LinkDeps, lineUid: string): Promise<string | null | undefined> {
  try {
    const { richMenuId } = await deps.line.call('richmenu.get-user', (c) =>
      c.getRichMenuIdOfUser(lineUid),
    )
    return richMenuId
  } catch (error) {
    const failure = classifyLineError(error)
    if (failure.kind !== 'rejected' && failure.kind !== 'channel_refused') throw error
    return failure.status === 404 ? null : undefined
  }
}
