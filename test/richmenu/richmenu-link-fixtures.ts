import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, beforeEach } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import type { Segment } from '../../src/richmenu/richmenu.schemas.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { image } from './menu-folder.ts'

/** The menu's image: a PNG of its size, as LINE (and the stand-in) checks. */
const IMAGE = image(2500, 843)

export type LiveMenu = { versionId: string; richMenuId: string }

/**
 * A menu created on the LINE stand-in (with its image unless `image: false`) and a live
 * richmenu_version row for `segments`, as a deploy leaves them.
 */
export async function createLiveMenu(
  deps: Pick<Deps, 'db' | 'line'>,
  segments: Segment[],
  opts: { image?: boolean } = {},
): Promise<LiveMenu> {
  const { richMenuId } = await deps.line.client.createRichMenu({
    size: { width: 2500, height: 843 },
    selected: false,
    name: `test ${segments.join(' ')}`,
    chatBarText: 'Menu',
    areas: [
      {
        bounds: { x: 0, y: 0, width: 2500, height: 843 },
        action: { type: 'message', label: 'Hi', text: 'hi' },
      },
    ],
  })
  if (opts.image !== false) {
    await deps.line.client.setRichMenuImage(richMenuId, new Blob([IMAGE], { type: 'image/png' }))
  }
  const row = await deps.db
    .insertInto('richmenu_version')
    .values({
      name: `test-${segments.join('-')}-${randomUUID().slice(0, 8)}`,
      content_hash: randomUUID(),
      segments,
      line_rich_menu_id: richMenuId,
      deployed_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return { versionId: row.id, richMenuId }
}

/** Retires menu versions (none live is left behind for other test files). */
export async function retireMenus(deps: Pick<Deps, 'db'>, versionIds: string[]): Promise<void> {
  if (versionIds.length === 0) return
  await deps.db
    .updateTable('richmenu_version')
    .set({ retired_at: new Date() })
    .where('id', 'in', versionIds)
    .execute()
}

/** A customer with a LINE user row (no webhook): a friend unless told otherwise. */
export async function insertFriend(
  deps: Pick<Deps, 'db'>,
  opts: {
    lineUid?: string
    status?: 'friend' | 'blocked'
    customer?: { purchase_count?: number; tier?: string; merged_into_id?: string; erased?: boolean }
    customerId?: string
  } = {},
) {
  const customerId =
    opts.customerId ??
    (
      await deps.db
        .insertInto('customer')
        .values({
          purchase_count: opts.customer?.purchase_count ?? 0,
          tier: opts.customer?.tier ?? 'regular',
          merged_into_id: opts.customer?.merged_into_id ?? null,
          erased_at: opts.customer?.erased ? new Date() : null,
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id
  const lineUid = opts.lineUid ?? `U${randomUUID().replaceAll('-', '')}`
  const status = opts.status ?? 'friend'
  const lineUser = await deps.db
    .insertInto('line_user')
    .values({
      customer_id: customerId,
      line_uid: lineUid,
      status,
      status_changed_at: new Date(),
      followed_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return { lineUserId: lineUser.id, customerId, lineUid }
}

export type LinkWorld = {
  deps: Deps
  line: LinePlatform
  menus: Record<'new_friend' | 'member' | 'linked' | 'vip', LiveMenu>
}

/**
 * Private deps and the LINE stand-in for a test file, with a live menu for each segment; LINE's
 * recorded requests and scripted failures are cleared before each test.
 */
export function useLinkWorld(): LinkWorld {
  const cleanups: (() => Promise<void>)[] = []
  const world = { menus: {} } as LinkWorld
  beforeAll(async () => {
    Object.assign(world, await startPrivateDeps(cleanups))
    for (const segment of ['new_friend', 'member', 'linked', 'vip'] as const) {
      world.menus[segment] = await createLiveMenu(world.deps, [segment])
    }
  })
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
  beforeEach(() => {
    world.line.clearRequests()
    world.line.clearFailures()
  })
  return world
}

/** A friend on the stand-in too, so that its per-user link shows there. */
export async function simFriend(
  world: LinkWorld,
  customer: NonNullable<Parameters<typeof insertFriend>[1]>['customer'] = {},
) {
  const user = world.line.users.create()
  user.friendship = 'friend'
  return insertFriend(world.deps, { lineUid: user.userId, customer })
}

/** Brings every friend's menu in line, so that each test starts from no mismatch. */
export async function settle(world: LinkWorld) {
  await relinkRichMenus(world.deps)
  world.line.clearRequests()
}

/** The bulk link calls the stand-in received. */
export const bulkLinks = (line: LinePlatform) =>
  line
    .requestsTo('POST', '/v2/bot/richmenu/bulk/link')
    .map((r) => r.body as { richMenuId: string; userIds: string[] })

/** The menu version recorded for a LINE user. */
export const recorded = async (deps: Pick<Deps, 'db'>, lineUserId: string) =>
  (
    await deps.db
      .selectFrom('line_user')
      .select('richmenu_version_id')
      .where('id', '=', lineUserId)
      .executeTakeFirstOrThrow()
  ).richmenu_version_id
