import { existsSync } from 'node:fs'
import type { Database, Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { withTaskLock } from '../platform/task-lock.ts'
import {
  findOrInsertVersion,
  forgetLinkedVersions,
  listCurrentVersions,
  listRetiredOnLine,
  markCreateAttempted,
  markDeployed,
  type RichMenuVersion,
  recordSwitchAliases,
  retireOthers,
  retireRemovedFolders,
  reviveVersion,
  setLineRichMenuId,
} from './richmenu.repo.ts'
import { adoptLostCreate, checkAgainstLine, hasTabSwitch } from './richmenu-deploy-adopt.ts'
import {
  clearDefaultRichMenu,
  createLineRichMenu,
  deleteLineRichMenu,
  deleteRichMenuAlias,
  pointRichMenuAlias,
  setDefaultRichMenu,
  uploadRichMenuImage,
  validateLineRichMenu,
} from './richmenu-deploy-line.ts'
import { loadRichMenus, type RichMenuFile, richMenusDir } from './richmenu-files.ts'
import {
  ALIAS_POINTER,
  aliasPointer,
  DEFAULT_POINTER,
  forgetPointer,
  listPointers,
  type RichMenuPointer,
  recordPointer,
  unsettlePointer,
} from './richmenu-pointer.repo.ts'
import { oweRelink, readRelinkOwed } from './richmenu-relink.repo.ts'

/** The deploy's withTaskLock: on Postgres the advisory lock earlier versions took too. */
const DEPLOY_TASK = 'kizuna.richmenu-deploy'

export type RichMenuDeployDeps = Pick<Deps, 'db' | 'line' | 'log' | 'clock'>

/** Folder names, one entry per version touched (a changed folder is both created and retired). */
export type RichMenuDeploySummary = {
  created: string[]
  unchanged: string[]
  retired: string[]
  deleted: string[]
  /** Retired versions LINE still has because someone is linked to them (deleted later). */
  waiting: string[]
  /** A menu was created or retired: people must be re-linked. */
  changed: boolean
  /**
   * A relink is owed (richmenu_relink): this deploy changed menus, or an earlier one did and no
   * relink has run to the end since (Redis did not take it, say). afterChange is called for it.
   */
  relinkOwed: boolean
}

export type RichMenuDeployOptions = {
  dir?: string
  /**
   * First compares Kizuna's records with LINE's list of menus (one call) and forgets the menus
   * LINE no longer has, so they are created again: a fresh sandbox at every start, or menus
   * deleted in the LINE Official Account Manager. Menus left by a lost create are adopted or
   * deleted (richmenu-deploy-adopt.ts).
   */
  checkLine?: boolean
  /**
   * A folder with no menus retires every menu, deletes Kizuna's aliases and default at LINE and
   * unlinks every friend: refused unless this says so (`kizuna richmenu deploy --remove-all`),
   * and refused with it when the folder has menus. The start-up job never says so: an empty
   * bind mount must not wipe the channel's menus.
   */
  removeAll?: boolean
  /**
   * Called after a deploy that changed something, or found a relink still owed from an earlier
   * one, or that left retired versions people are still linked to: re-linking them is what lets
   * a later deploy delete those versions. A relink owed stays owed until one runs to the end
   * (relinkRichMenus), so when this fails the next deploy calls it again.
   */
  afterChange?: (summary: RichMenuDeploySummary) => Promise<void>
  /**
   * Called once the folder checked out, before the first LINE call: a throw stops the deploy
   * with nothing sent (the CLI's check that the credentials are the database's LINE channel).
   */
  beforeLine?: () => Promise<void>
}

/**
 * Makes LINE's rich menus match `richmenus/` (DESIGN.md flow 6, STYLE.md §9). Idempotent: a
 * folder whose content hash has a live version makes no LINE call. A changed folder gets a new
 * menu (LINE can't replace an image); once every changed folder's menu is made, the aliases and
 * the default are pointed at the wanted menus where Kizuna's record of them (richmenu_pointer)
 * says otherwise, then the new menus go live and the versions they replace are retired in one
 * transaction (a stop before leaves every segment on the menu it had); a removed folder's
 * version is retired with them and its alias deleted. Retired
 * versions nobody is linked to are deleted at LINE. Every step is recorded as it is done, so a
 * deploy stopped by a crash or LINE's 100-an-hour limit carries on where it stopped.
 *
 * The default: set by the menu that says `"default": true`; when no menu says so any more, a
 * default Kizuna set is cleared (people without a linked menu then see none, or OA Manager's).
 *
 * Refuses (AppError UNPROCESSABLE with the problems as `details`) before any call when a
 * folder has a problem, and (NOT_FOUND) when `dir` is missing or holds no menu, which would
 * remove them all, unless `removeAll` asks for exactly that. Two deploys never run at once
 * (withTaskLock: on Postgres an advisory lock; on the embedded database, which has one
 * connection, no connection is held while LINE answers).
 */
export async function deployRichMenus(
  deps: RichMenuDeployDeps,
  opts: RichMenuDeployOptions = {},
): Promise<RichMenuDeploySummary> {
  const dir = opts.dir ?? richMenusDir
  if (!existsSync(dir)) {
    // Deploying an empty set would retire every menu: a mistyped --dir must not.
    throw new AppError('NOT_FOUND', `no rich-menu folder at ${dir}; nothing was sent to LINE`)
  }
  const { menus, problems } = loadRichMenus(dir)
  if (problems.length > 0) {
    throw new AppError(
      'UNPROCESSABLE',
      `${problems.length} problem(s) in ${dir}; nothing was sent to LINE`,
      { details: problems },
    )
  }
  checkRemoveAll(dir, menus, opts.removeAll === true)
  await opts.beforeLine?.()
  const summary: RichMenuDeploySummary = {
    created: [],
    unchanged: [],
    retired: [],
    deleted: [],
    waiting: [],
    changed: false,
    relinkOwed: false,
  }
  try {
    await withTaskLock(deps.db, DEPLOY_TASK, (db) =>
      deployLocked({ ...deps, db }, menus, opts, summary),
    )
  } catch (error) {
    // What went live before the stop still needs its people re-linked; the stop is what the
    // caller must hear about (a relink that could not be queued stays owed: the next deploy
    // queues it).
    if (summary.relinkOwed) {
      await opts.afterChange?.(summary).catch((err: unknown) => {
        deps.log.warn({ err }, 'could not queue the rich menu relink after a stopped deploy')
      })
    }
    throw error
  }
  if (summary.relinkOwed || summary.waiting.length > 0) await opts.afterChange?.(summary)
  return summary
}

/**
 * A deploy of no menus removes them all: only when told so, and told so only of a folder with
 * none (a habit of passing the flag must not turn the guard off).
 */
function checkRemoveAll(dir: string, menus: RichMenuFile[], removeAll: boolean): void {
  if (menus.length === 0 && !removeAll) {
    throw new AppError(
      'NOT_FOUND',
      `no menus in ${dir}: a deploy of none would retire every menu and unlink every friend; ` +
        'nothing was sent to LINE (`kizuna richmenu deploy --remove-all` removes them)',
    )
  }
  if (menus.length > 0 && removeAll) {
    throw new AppError(
      'BAD_REQUEST',
      `--remove-all is for a folder with no menus; ${dir} has ${menus.length} ` +
        `(${menus.map((m) => m.name).join(', ')}): nothing was sent to LINE`,
    )
  }
}

async function deployLocked(
  deps: RichMenuDeployDeps,
  menus: RichMenuFile[],
  opts: RichMenuDeployOptions,
  summary: RichMenuDeploySummary,
): Promise<void> {
  const { db } = deps
  summary.relinkOwed = (await readRelinkOwed(db)).owed
  // People LINE unlinked from a lost menu need a relink.
  if (opts.checkLine && (await checkAgainstLine(deps, menus))) await changed(db, summary)
  const current = await listCurrentVersions(db)
  // The version each folder has once this run is done: its live one, or its new content's.
  const wanted: WantedVersion[] = []
  for (const menu of menus) {
    const live = current.find((v) => v.name === menu.name && v.content_hash === menu.contentHash)
    if (live?.line_rich_menu_id) {
      await recordSwitchAliases(db, live, menu)
      wanted.push({ menu, id: live.id, richMenuId: live.line_rich_menu_id, fresh: false })
      continue
    }
    // Made at LINE (image and all) but not live yet: a stop before every folder's menu is made
    // leaves each segment on the menu it had (a relink then moves nobody).
    const version = await createVersion(deps, menu)
    wanted.push({ menu, ...version, fresh: true })
  }
  // Before anything is retired or deleted, LINE's default and aliases point at these menus,
  // whatever a stopped deploy left them on.
  const pointers = await listPointers(db)
  await pointAtWanted(deps, wanted, pointers)
  // Every folder's menu is made: all go live, and what they replace is retired, at once.
  const retired = await goLive(db, wanted, deps.clock.now())
  for (const w of wanted) {
    ;(w.fresh ? summary.created : summary.unchanged).push(w.menu.name)
  }
  summary.retired.push(...retired.map((r) => r.name))
  if (retired.length > 0 || summary.created.length > 0) {
    summary.changed = true
    summary.relinkOwed = true
  }
  for (const v of retired) deps.log.info({ menu: v.name, versionId: v.id }, 'rich menu retired')

  await deleteUnusedAliases(deps, menus, pointers)
  // Live versions with a tab switch: their people may be showing a tab at LINE.
  const withTabs = wanted.filter((w) => hasTabSwitch(w.menu)).map((w) => w.id)
  await deleteUnusedRetiredMenus(deps, summary, withTabs)
}

/** People must be re-linked: a relink is owed until one runs to the end (richmenu_relink). */
async function changed(db: Db, summary: RichMenuDeploySummary): Promise<void> {
  await oweRelink(db)
  summary.changed = true
  summary.relinkOwed = true
}

/** A folder and the version it has once the deploy is done; `fresh`: made by this run. */
type WantedVersion = {
  menu: RichMenuFile
  id: string
  richMenuId: string
  fresh: boolean
}

/**
 * In one transaction: the new versions are live, every other unretired version of their folders
 * (the one replaced, an attempt abandoned under an older content) and of removed folders is
 * retired, and if anything changed a relink is owed. Returns the retired rows.
 */
async function goLive(db: Database, wanted: WantedVersion[], at: Date) {
  return db.transaction().execute(async (trx) => {
    const retired: RichMenuVersion[] = []
    for (const w of wanted) {
      if (w.fresh) await markDeployed(trx, w.id, at)
      retired.push(...(await retireOthers(trx, w.menu.name, w.id, at)))
    }
    const names = wanted.map((w) => w.menu.name)
    retired.push(...(await retireRemovedFolders(trx, names, at)))
    if (retired.length > 0 || wanted.some((w) => w.fresh)) await oweRelink(trx)
    return retired
  })
}

/**
 * Creates (or resumes) the menu of a folder's new content at LINE, its image uploaded: ready to
 * go live (its alias and the default are pointed at it once every folder's menu is made).
 */
async function createVersion(deps: RichMenuDeployDeps, menu: RichMenuFile) {
  const { db, line, log } = deps
  let version = await findOrInsertVersion(db, menu)
  if (version.retired_at) {
    await reviveVersion(db, version.id, menu)
    version = { ...version, retired_at: null, deployed_at: null }
  }
  let richMenuId = version.line_rich_menu_id
  // A create asked before without its answer recorded: LINE may have made the menu.
  let mayExist = version.line_create_attempted_at !== null
  for (;;) {
    if (!richMenuId && mayExist) richMenuId = await adoptLostCreate(deps, version, menu)
    if (!richMenuId) {
      await validateLineRichMenu(line, menu.name, menu.richMenu)
      await markCreateAttempted(db, version.id, deps.clock.now())
      mayExist = true
      richMenuId = await createLineRichMenu(line, menu.name, menu.richMenu)
      await setLineRichMenuId(db, version.id, richMenuId)
      mayExist = false
      log.info({ menu: menu.name, richMenuId }, 'rich menu created')
    }
    const upload = await uploadRichMenuImage(line, menu.name, richMenuId, menu.image)
    if (upload === 'uploaded') return { id: version.id, richMenuId }
    if (richMenuId !== version.line_rich_menu_id) {
      throw new AppError('INTERNAL', `LINE lost the menu of ${menu.name} just created`)
    }
    log.warn({ menu: menu.name, richMenuId }, 'rich menu gone at LINE: creating it again')
    await setLineRichMenuId(db, version.id, null)
    richMenuId = null
  }
}

/**
 * Each folder's alias, and the default, point at the folder's wanted menu; with no menu the
 * default, a default Kizuna set is cleared (people without a linked menu then see none, or OA
 * Manager's). A pointer recorded (richmenu_pointer) as already there makes no call, so an
 * unchanged deploy makes none; one moved by a deploy that stopped before its menus went live, or
 * whose call's answer was lost, is set again.
 */
async function pointAtWanted(
  deps: RichMenuDeployDeps,
  wanted: WantedVersion[],
  pointers: Map<string, RichMenuPointer>,
) {
  const { line } = deps
  const point = async (key: string, target: string | null, call: () => Promise<void>) => {
    const known = pointers.get(key)
    if (known?.settled && known.lineRichMenuId === target) return
    await unsettlePointer(deps.db, key)
    await call()
    await recordPointer(deps.db, key, target)
  }
  for (const { menu, richMenuId } of wanted) {
    const { alias } = menu
    if (alias) {
      await point(aliasPointer(alias), richMenuId, () =>
        pointRichMenuAlias(line, alias, richMenuId),
      )
    }
  }
  const byDefault = wanted.find((w) => w.menu.isDefault)
  if (byDefault) {
    const { menu, richMenuId } = byDefault
    await point(DEFAULT_POINTER, richMenuId, () => setDefaultRichMenu(line, menu.name, richMenuId))
  } else if (pointers.has(DEFAULT_POINTER)) {
    await point(DEFAULT_POINTER, null, async () => {
      await clearDefaultRichMenu(line)
      deps.log.info('rich menu default cleared: no menu is the default any more')
    })
  }
}

/** An alias Kizuna made that no folder names any more is deleted at LINE. */
async function deleteUnusedAliases(
  deps: RichMenuDeployDeps,
  menus: RichMenuFile[],
  pointers: Map<string, RichMenuPointer>,
) {
  const inUse = new Set(menus.flatMap((m) => (m.alias ? [aliasPointer(m.alias)] : [])))
  for (const key of pointers.keys()) {
    if (!key.startsWith(ALIAS_POINTER) || inUse.has(key)) continue
    const alias = key.slice(ALIAS_POINTER.length)
    await deleteRichMenuAlias(deps.line, alias)
    await forgetPointer(deps.db, key)
    deps.log.info({ alias }, 'rich menu alias deleted')
  }
}

/**
 * Retired versions nobody is linked to are deleted at LINE; the others wait for a re-link.
 * An alias target (a tab, or another segment's menu a switch leads to) is linked by LINE itself
 * when someone taps a `richmenuswitch` area, so no row says who shows it: deleting it drops them
 * to the default. First, the people recorded on a live menu with a tab switch are forgotten, so
 * the relink after the deploy links them to their own menu again. A menu no alias named (its
 * folder had none: a default, a segment's menu) no switch showed: its deletion forgets nobody.
 */
async function deleteUnusedRetiredMenus(
  deps: RichMenuDeployDeps,
  summary: RichMenuDeploySummary,
  withTabs: string[],
) {
  const { deletable, waiting } = await listRetiredOnLine(deps.db)
  let tabsForgotten = false
  for (const v of deletable) {
    if (!v.line_rich_menu_id) continue
    // The version's own alias (kept on retired rows): pointed at its menu when it was made.
    if (v.alias !== null && !tabsForgotten) {
      tabsForgotten = true
      if ((await forgetLinkedVersions(deps.db, withTabs)) > 0) await changed(deps.db, summary)
    }
    await deleteLineRichMenu(deps.line, v.name, v.line_rich_menu_id)
    await setLineRichMenuId(deps.db, v.id, null)
    summary.deleted.push(v.name)
    deps.log.info({ menu: v.name, richMenuId: v.line_rich_menu_id }, 'rich menu deleted')
  }
  summary.waiting.push(...waiting.map((v) => v.name))
}
