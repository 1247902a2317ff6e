import type { Env } from '../config/env.ts'
import { jobIds } from '../jobs.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import type { EventContext } from '../webhook/event-context.ts'
import { insertErasedUnlinks } from './erased-unlink.repo.ts'
import { unlinkErasedMenus } from './erased-unlink.service.ts'
import {
  answerOf,
  type CallAnswer,
  callSplittingRefusals,
  type Refusal,
} from './richmenu-bulk-call.ts'
import {
  findErasedLineUsers,
  findWantedMenus,
  forgetLinkedMenus,
  recordLinkedMenus,
  type WantedMenu,
} from './richmenu-segment.repo.ts'
import { MAX_USERS_PER_LINK_CALL, unlinkCall } from './richmenu-unlink.ts'

/**
 * How long after a bulk link its users are checked: LINE carries one out "normally within a few
 * seconds" (LINE-API.md §4); a minute leaves room without leaving someone menuless for long.
 */
export const LINK_CHECK_DELAY_MS = 60_000

export type LinkDeps = Pick<Deps, 'db' | 'line' | 'log' | 'env' | 'queues' | 'clock'>
export type LinkCounts = { linked: number; unlinked: number; rejected: number; calls: number }

/** The vip tier: the one with the highest minSpend (null: no tiers, nobody is vip). */
export function topTierOf(env: Pick<Env, 'TIER_THRESHOLDS'>): string | null {
  const highest = [...env.TIER_THRESHOLDS].sort((a, b) => b.minSpend - a.minSpend)[0]
  return highest?.tier ?? null
}

const needsChange = (r: WantedMenu) =>
  r.status === 'friend' && r.wanted_version_id !== r.linked_version_id

/**
 * Gives each of these LINE users the menu of their segment: friends whose wanted version differs
 * from the one last linked are linked to it (one call per menu and 500 users), or unlinked when
 * no segment that fits them has a live menu (the default applies). Blocked and erased people:
 * nothing.
 * Throws when LINE did not take a call for a reason other than one user id (see send): what it
 * accepted is recorded, and the job's retry sends the rest.
 */
export async function linkRichMenus(
  deps: LinkDeps,
  lineUserIds: string[],
  opts: LinkOptions = {},
): Promise<LinkCounts> {
  const rows = await findWantedMenus(deps.db, { lineUserIds }, topTierOf(deps.env))
  const batch = createLinkBatch(deps, opts)
  for (const row of rows) if (needsChange(row)) await batch.add(row)
  return batch.finish()
}

export type LinkOptions = {
  /** How many more times people another job linked meanwhile are linked again (see send). */
  racedRetries?: number
  /** One call per user (immediate at LINE), never a bulk link (202, checked back later). */
  perUser?: boolean
  /**
   * Queue a deploy of richmenus/ when LINE lost a menu Kizuna links (404): the default. False in
   * a process whose deploys are off (StartOptions.deployRichMenus: tests with menus of their
   * own, on a database others share): the loss is logged and left.
   */
  redeployLostMenus?: boolean
}

/**
 * Users gathered per wanted version ('' = unlink); a group is sent when it reaches 500 (1 with
 * `perUser`), the rest at `finish`. Each group is recorded once LINE accepted it; a bulk link's
 * users are checked back later (queueLinkCheck).
 */
export function createLinkBatch(deps: LinkDeps, opts: LinkOptions = {}) {
  const { racedRetries = 2, perUser = false, redeployLostMenus = true } = opts
  const perCall = perUser ? 1 : MAX_USERS_PER_LINK_CALL
  const groups = new Map<string, { menuId: string | null; users: WantedMenu[] }>()
  const counts: LinkCounts = { linked: 0, unlinked: 0, rejected: 0, calls: 0 }
  const send = async (versionId: string | null, menuId: string | null, users: WantedMenu[]) => {
    // One bad user id refusing a bulk call: one call each (not for a refused menu: callLine).
    const outcome = await callSplittingRefusals(users, (group) => {
      counts.calls++
      return callLine(deps, menuId, group)
    })
    counts.rejected += outcome.refused.length
    // LINE refuses such an id whatever the menu: recorded as settled for this version, so that
    // relinks do not send it (and split its call) again; a change of menu tries it once more.
    await recordLinkedMenus(deps.db, outcome.refused, versionId)
    await recordAccepted(versionId, menuId, outcome.accepted, outcome.whole)
    if (outcome.failed.length === 0) return
    // LINE lost the menu (deleted in OA Manager): a deploy, which compares Kizuna's menus with
    // LINE's list, makes it again and queues the relink that links them.
    if (menuId && outcome.failure === '404') await queueRedeploy(deps, menuId, redeployLostMenus)
    // Not a refusal of one user id (the menu's or the channel's, a 429, a 5xx, a timeout): the
    // job is retried, and a relink is not settled (what LINE accepted is recorded).
    throw outcome.error
  }
  const recordAccepted = async (
    versionId: string | null,
    menuId: string | null,
    users: WantedMenu[],
    whole: boolean,
  ) => {
    if (users.length === 0) return
    const raced = await recordLinkedMenus(deps.db, users, versionId)
    if (menuId && raced.length > 0) await unlinkErased(deps, users, raced)
    if (menuId) counts.linked += users.length - raced.length
    else counts.unlinked += users.length - raced.length
    if (versionId && whole) {
      const racedIds = new Set(raced)
      const recordedIds = users.flatMap((u) => (racedIds.has(u.id) ? [] : [u.id]))
      await queueLinkCheck(deps, versionId, recordedIds)
    }
    // Linked by another job while this call was under way (LINE shows whichever call landed
    // last), or the version was retired meanwhile (a deploy deletes its menu): they are linked
    // again to what they want now (their rows were forgotten).
    if (raced.length > 0 && racedRetries > 0) {
      const again = await linkRichMenus(deps, raced, { ...opts, racedRetries: racedRetries - 1 })
      for (const key of ['linked', 'unlinked', 'rejected', 'calls'] as const) {
        counts[key] += again[key]
      }
    }
  }
  return {
    async add(row: WantedMenu) {
      const key = row.wanted_version_id ?? ''
      let group = groups.get(key)
      if (!group) {
        group = { menuId: row.wanted_rich_menu_id, users: [] }
        groups.set(key, group)
      }
      group.users.push(row)
      if (group.users.length >= perCall) {
        groups.delete(key)
        await send(key || null, group.menuId, group.users)
      }
    },
    async finish(): Promise<LinkCounts> {
      for (const [key, group] of groups) await send(key || null, group.menuId, group.users)
      groups.clear()
      return counts
    },
  }
}

/**
 * Queues a deploy for a menu LINE no longer has: one per menu an hour, however many calls it
 * refused. The hour is in the job's id because BullMQ keeps a finished job (a day, a failed one a
 * week) and drops a job added again under its id: a deploy that finished without making the menu
 * again (it failed, or LINE's list still showed the menu) must not keep the next one out. In a
 * process whose deploys are off (`deploys` false), only logged: the deploy would send the shipped
 * richmenus/ to this process's LINE and database.
 */
async function queueRedeploy(deps: LinkDeps, richMenuId: string, deploys: boolean) {
  if (!deploys) {
    deps.log.warn(
      { richMenuId },
      'LINE no longer has a rich menu Kizuna links; rich menu deploys are off here: not deployed',
    )
    return
  }
  deps.log.warn({ richMenuId }, 'LINE no longer has a rich menu Kizuna links: deploying again')
  const hour = deps.clock.now().toISOString().slice(0, 13)
  await deps.queues.enqueue(
    'richmenu.deploy',
    {},
    { jobId: jobIds.richmenuDeploy(`lost-${richMenuId}-${hour}`) },
  )
}

/**
 * LINE carries a bulk link out later and does not promise it (202: LINE-API.md §4, §9.7), so its
 * users are checked back once it should be done (richmenu-link-check.service.ts). Never throws:
 * the link itself went through, and a check not queued leaves the record as it was before checks
 * existed.
 */
async function queueLinkCheck(deps: LinkDeps, versionId: string, lineUserIds: string[]) {
  if (lineUserIds.length === 0) return
  const sentAt = deps.clock.now().getTime()
  try {
    await deps.queues.enqueue(
      'richmenu.check-links',
      { versionId, lineUserIds },
      { jobId: jobIds.richMenuCheck(lineUserIds, versionId, sentAt), delay: LINK_CHECK_DELAY_MS },
    )
  } catch (err) {
    deps.log.warn({ err, users: lineUserIds.length }, 'could not queue the check of a bulk link')
  }
}

/**
 * One LINE call: link `menuId` (null: unlink) to the users; one user goes by the per-user
 * endpoint (immediate), more by bulk (202, asynchronous). A refusal (4xx other than 429) is
 * logged and `splittable` unless it is about the menu (LINE lost it: 404; it has no image),
 * which no user of the call can change; the answer keeps the error for the job to throw once
 * what LINE accepted is recorded.
 */
function callLine(deps: LinkDeps, menuId: string | null, users: WantedMenu[]): Promise<CallAnswer> {
  const userIds = users.map((u) => u.line_uid)
  const [one] = userIds
  const onRefusal = (refusal: Refusal) => {
    // LINE user ids stay out of logs: our row ids name the people.
    deps.log.warn(
      {
        status: refusal.status,
        message: refusal.message,
        richMenuId: menuId,
        users: users.length,
        lineUserIds: users.slice(0, 5).map((u) => u.id),
      },
      menuId ? 'LINE refused to link a rich menu' : 'LINE refused to unlink a rich menu',
    )
    const aboutMenu =
      menuId !== null && (refusal.status === 404 || /richmenu image/i.test(refusal.message))
    return !aboutMenu
  }
  if (!menuId) return unlinkCall(deps.line, userIds, onRefusal)
  return answerOf(
    () =>
      deps.line.call('richmenu.link', (c) =>
        userIds.length === 1 && one
          ? c.linkRichMenuIdToUser(one, menuId)
          : c.linkRichMenuIdToUsers({ richMenuId: menuId, userIds }),
      ),
    onRefusal,
  )
}

/**
 * Takes back at LINE a link that landed after the erasure of some of its users: the job read them
 * before, the erasure unlinked their menus and tombstoned their rows (so the record failed), and
 * nothing else knows their LINE user ids any more. Only erased rows: another job's link or a
 * follow (the record moved for them too) leaves LINE as it is. A LINE user id a live row holds
 * now (the person followed again after the erasure, a new row) is unlinked too, its menu then
 * linked again (unlinkErasedMenus): this call may have landed after that friend's own link. The
 * unlink is recorded first (erased_menu_unlink), as the erasure's is: one LINE does not confirm
 * is retried by the sweeper, as the job's own retry would not find them again. Never throws for
 * LINE.
 */
async function unlinkErased(deps: LinkDeps, users: WantedMenu[], raced: string[]) {
  const erased = new Set(await findErasedLineUsers(deps.db, raced))
  const gone = users.filter((u) => erased.has(u.id)).map((u) => u.line_uid)
  if (gone.length === 0) return
  await unlinkErasedMenus(deps, await insertErasedUnlinks(deps.db, gone))
}

/**
 * After a follow (new friend, or back after a block): LINE links nothing to someone who has
 * blocked the account, so what was recorded before the block no longer counts.
 */
export async function forgetRichMenuOf(trx: Db, lineUserId: string): Promise<void> {
  await forgetLinkedMenus(trx, [lineUserId])
}

/** Queues the menu link of one LINE user once `ctx` commits (follow, account link, unlink). */
export function linkRichMenuAfterCommit(
  ctx: Pick<EventContext, 'deps' | 'afterCommit'>,
  lineUserId: string,
  cause: string,
): void {
  ctx.afterCommit(() =>
    ctx.deps.queues.enqueue(
      'richmenu.link-users',
      { lineUserIds: [lineUserId] },
      { jobId: jobIds.richMenuLink([lineUserId], cause) },
    ),
  )
}

/**
 * After a purchase (or its void) was committed: queues the link of the customer's friends whose
 * menu no longer fits (a first purchase, a new tier). Never throws and is not awaited by the
 * register: a lost one is caught by the nightly relink.
 */
export async function relinkCustomersSoon(
  deps: Pick<Deps, 'db' | 'queues' | 'log' | 'env'>,
  customerIds: string[],
  cause: string,
): Promise<void> {
  try {
    const rows = await findWantedMenus(deps.db, { customerIds }, topTierOf(deps.env))
    const ids = rows.filter(needsChange).map((r) => r.id)
    if (ids.length === 0) return
    await deps.queues.enqueueSoon('richmenu.link-users', [
      { data: { lineUserIds: ids }, jobId: jobIds.richMenuLink(ids, cause) },
    ])
  } catch (err) {
    deps.log.warn({ err }, 'could not queue the rich menu link after a purchase')
  }
}

/**
 * Queues a relink of every friend whose menu differs (after bulk changes: an order import, the
 * nightly tier refresh, a deploy). `cause` dedupes: one relink per cause.
 */
export async function enqueueRelink(deps: Pick<Deps, 'queues'>, cause: string): Promise<void> {
  await deps.queues.enqueue('richmenu.relink', {}, { jobId: jobIds.richMenuRelink(cause) })
}
