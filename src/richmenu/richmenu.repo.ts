import type { Selectable } from 'kysely'
import type { DB, Db } from '../platform/db.ts'
import { type RichMenuFile, switchAliasesOf } from './richmenu-files.ts'
import { forgottenMenu } from './richmenu-segment.repo.ts'

export type RichMenuVersion = Selectable<DB['richmenu_version']>

/**
 * The row of a folder's content: found, or inserted first so that a crash after LINE's create
 * leaves the menu's id on a row the next deploy finds.
 */
export async function findOrInsertVersion(db: Db, menu: RichMenuFile): Promise<RichMenuVersion> {
  await db
    .insertInto('richmenu_version')
    .values({
      name: menu.name,
      content_hash: menu.contentHash,
      segments: menu.segments,
      alias: menu.alias,
      is_default: menu.isDefault,
      switch_aliases: switchAliasesOf(menu),
    })
    .onConflict((oc) => oc.columns(['name', 'content_hash']).doNothing())
    .execute()
  return db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('name', '=', menu.name)
    .where('content_hash', '=', menu.contentHash)
    .executeTakeFirstOrThrow()
}

/** A retired content that came back (an edit undone): deployed again from the start. */
export async function reviveVersion(db: Db, id: string, menu: RichMenuFile): Promise<void> {
  await db
    .updateTable('richmenu_version')
    .set({
      retired_at: null,
      deployed_at: null,
      segments: menu.segments,
      alias: menu.alias,
      is_default: menu.isDefault,
      switch_aliases: switchAliasesOf(menu),
    })
    .where('id', '=', id)
    .execute()
}

/**
 * Records the aliases a version's switches open where it holds none or others: versions written
 * before they were recorded (their content, hence their switches, is the folder's).
 */
export async function recordSwitchAliases(db: Db, version: RichMenuVersion, menu: RichMenuFile) {
  const aliases = switchAliasesOf(menu)
  if (aliases.join('\n') === version.switch_aliases.join('\n')) return
  await db
    .updateTable('richmenu_version')
    .set({ switch_aliases: aliases })
    .where('id', '=', version.id)
    .execute()
}

/** Records (or forgets) the version's LINE menu; a create attempt, if any, is settled. */
export async function setLineRichMenuId(db: Db, id: string, lineRichMenuId: string | null) {
  await db
    .updateTable('richmenu_version')
    .set({ line_rich_menu_id: lineRichMenuId, line_create_attempted_at: null })
    .where('id', '=', id)
    .execute()
}

/**
 * Recorded before LINE is asked to create the version's menu: if the answer is lost, the next
 * deploy knows LINE may have made it and looks for it before creating another.
 */
export async function markCreateAttempted(db: Db, id: string, at: Date) {
  await db
    .updateTable('richmenu_version')
    .set({ line_create_attempted_at: at })
    .where('id', '=', id)
    .execute()
}

/** The LINE menu ids any version records (live, pending or retired). */
export async function listRecordedLineIds(db: Db): Promise<Set<string>> {
  const rows = await listVersionsOnLine(db)
  return new Set(rows.flatMap((r) => (r.line_rich_menu_id ? [r.line_rich_menu_id] : [])))
}

/** Unretired versions (live or pending). */
export async function listUnretiredVersions(db: Db): Promise<RichMenuVersion[]> {
  return db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('retired_at', 'is', null)
    .orderBy('created_at')
    .execute()
}

/** The version is live (goLive retires what it replaces in the same transaction). */
export async function markDeployed(db: Db, id: string, at: Date): Promise<void> {
  await db.updateTable('richmenu_version').set({ deployed_at: at }).where('id', '=', id).execute()
}

/** Retires the unretired rows of `name` other than `keepId`; returns them. */
export async function retireOthers(
  db: Db,
  name: string,
  keepId: string,
  at: Date,
): Promise<RichMenuVersion[]> {
  return db
    .updateTable('richmenu_version')
    .set({ retired_at: at })
    .where('name', '=', name)
    .where('id', '!=', keepId)
    .where('retired_at', 'is', null)
    .returningAll()
    .execute()
}

/** Retires every unretired row whose folder is gone; returns them. */
export async function retireRemovedFolders(
  db: Db,
  names: string[],
  at: Date,
): Promise<RichMenuVersion[]> {
  let query = db
    .updateTable('richmenu_version')
    .set({ retired_at: at })
    .where('retired_at', 'is', null)
  if (names.length > 0) query = query.where('name', 'not in', names)
  return query.returningAll().execute()
}

/** Live versions: deployed and not retired. */
export async function listCurrentVersions(db: Db): Promise<RichMenuVersion[]> {
  return db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('deployed_at', 'is not', null)
    .where('retired_at', 'is', null)
    .orderBy('name')
    .execute()
}

/** Every version that names a LINE menu: what a check against LINE's list compares. */
export async function listVersionsOnLine(db: Db): Promise<RichMenuVersion[]> {
  return db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('line_rich_menu_id', 'is not', null)
    .execute()
}

/**
 * LINE no longer has the version's menu: it is created again on the next deploy. LINE unlinked
 * everyone from it, so the people recorded on it are forgotten too: the relink after the deploy
 * links them to the new menu (their version id would otherwise still match the wanted one).
 */
export async function forgetLineRichMenu(db: Db, id: string): Promise<void> {
  await db
    .updateTable('line_user')
    .set(forgottenMenu)
    .where('richmenu_version_id', '=', id)
    .execute()
  await db
    .updateTable('richmenu_version')
    .set({ line_rich_menu_id: null, deployed_at: null })
    .where('id', '=', id)
    .where('retired_at', 'is', null)
    .execute()
  await db
    .updateTable('richmenu_version')
    .set({ line_rich_menu_id: null })
    .where('id', '=', id)
    .execute()
}

/** Forgets the menu recorded for the friends on these versions; returns how many. */
export async function forgetLinkedVersions(db: Db, versionIds: string[]): Promise<number> {
  if (versionIds.length === 0) return 0
  const result = await db
    .updateTable('line_user')
    .set(forgottenMenu)
    .where('richmenu_version_id', 'in', versionIds)
    .where('status', '=', 'friend')
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/**
 * Retired versions still on LINE, split by whether a person is still linked to them
 * (`line_user.richmenu_version_id`): only the unreferenced ones may be deleted. Only friends
 * count: relinks pass the blocked (and the erased, whose rows are blocked) by, a follow links
 * them afresh, and their rows would otherwise hold retired menus at LINE for good.
 */
export async function listRetiredOnLine(db: Db) {
  const rows = await db
    .selectFrom('richmenu_version as v')
    .selectAll('v')
    .select((eb) =>
      eb
        .exists(
          eb
            .selectFrom('line_user as u')
            .select('u.id')
            .whereRef('u.richmenu_version_id', '=', 'v.id')
            .where('u.status', '=', 'friend'),
        )
        .as('referenced'),
    )
    .where('v.retired_at', 'is not', null)
    .where('v.line_rich_menu_id', 'is not', null)
    .orderBy('v.retired_at')
    .execute()
  return {
    deletable: rows.filter((r) => !r.referenced),
    waiting: rows.filter((r) => r.referenced),
  }
}
