import { createHash, randomUUID } from 'node:crypto'
import { link, readFile, readlink, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * One process at a time on an embedded database: PGlite lets several open the same folder, and
 * two writers (`npm start` and a `kizuna` command beside it) corrupted it (an index and its table
 * disagreeing, rows lost). The lock file holds the owner's pid and, where /proc tells them, the
 * time that process started (so a pid given to another process since is not taken for the
 * owner), its pid namespace and the boot. A lock whose process is gone (a crash) is taken over.
 * The owner refreshes the lock's time every `heartbeatMs` while it holds it: a lock from another
 * pid namespace (a container) or another boot (another host mounting the same share), whose pid
 * tells nothing here, is held while it was refreshed in the last `foreignStaleMs` (a container
 * killed while holding it restarts in a new namespace, and would otherwise be refused for ever).
 * That is minutes, not a few beats: PGlite runs on the main thread, and a long statement stops
 * the beats meanwhile. `onLost` is called once if a beat finds the lock taken over all the same.
 * Returns the release.
 */
export async function lockDataDir(
  dir: string,
  options: { heartbeatMs?: number; foreignStaleMs?: number; onLost?: () => void } = {},
): Promise<() => Promise<void>> {
  const heartbeatMs = options.heartbeatMs ?? LOCK_HEARTBEAT_MS
  const lease = { foreignStaleMs: options.foreignStaleMs ?? FOREIGN_STALE_MS }
  const path = join(dir, 'kizuna.lock')
  const mine = await ownerOf(process.pid)
  const owner = await take(path, mine, lease)
  if (owner !== undefined) {
    // Its pid names some other process here, if any: it can only be told to stop.
    const { pidNamespace, bootId } = await here()
    const otherBoot = owner.bootId !== undefined && bootId !== undefined && owner.bootId !== bootId
    const elsewhere =
      otherBoot || (owner.pidNamespace !== undefined && owner.pidNamespace !== pidNamespace)
    const where = otherBoot
      ? ' on another host (or before a reboot)'
      : elsewhere
        ? ' in another pid namespace (container)'
        : ''
    const stale = `${lease.foreignStaleMs / 1000} s`
    const orWait = elsewhere
      ? `; a lock a killed container or host left is taken over ${stale} after its last refresh`
      : ''
    throw new Error(
      `the embedded database in ${dir} is in use by process ${owner.pid}${where} (Kizuna ` +
        'running?): stop it first, or set DATABASE_URL to a PostgreSQL server that both can use' +
        orWait,
    )
  }
  let lost = false
  const heartbeat = setInterval(async () => {
    if ((await refresh(path, mine)) || lost) return
    lost = true
    clearInterval(heartbeat)
    options.onLost?.()
  }, heartbeatMs)
  heartbeat.unref()
  return async () => {
    clearInterval(heartbeat)
    if ((await readLock(path).catch(() => undefined)) === mine) await unlink(path).catch(() => {})
  }
}

const LOCK_HEARTBEAT_MS = 10_000
const FOREIGN_STALE_MS = 120_000

type Lease = { foreignStaleMs: number }

/**
 * Sets the time of the lock at `path` to now, while it reads `mine` (not one that took it over
 * since: that keeps its own); false when it reads another's or is gone. A failure to read or set
 * it is left for the next beat.
 */
async function refresh(path: string, mine: string): Promise<boolean> {
  let held: string | undefined
  try {
    held = await readLock(path)
  } catch {
    return true
  }
  if (held !== mine) return false
  const now = new Date()
  await utimes(path, now, now).catch(() => {})
  return true
}

/**
 * Makes the lock at `path` read `content` when it is free or its owner is gone; otherwise the
 * running owner. Every change is one atomic step that fails when another process got
 * there first: a lock appears whole (link), and a stale one is replaced (rename over it, never
 * deleted first) only by the process that claimed its takeover. Deleting a stale lock and then
 * creating one let two processes that both saw it stale each delete and create, both winning.
 */
async function take(path: string, content: string, lease: Lease): Promise<Owner | undefined> {
  let unreadableSince: number | undefined
  for (let attempt = 0; attempt < 200; ) {
    if (await create(path, content)) return undefined
    const held = await readLock(path)
    if (held !== undefined) {
      const owner = parseOwner(held)
      if (owner === undefined || (await mayBeCutOff(owner))) {
        unreadableSince ??= Date.now()
        if (await beingWritten(path, unreadableSince)) {
          await sleep(20)
          continue
        }
      }
      if (owner !== undefined && (await isRunning(owner, path, lease))) return owner
      if (await replaceStale(path, held, content, lease)) return undefined
    }
    attempt++ // released meanwhile, or another process is taking over a stale lock
    await sleep(5)
  }
  throw new Error(`could not lock ${path}: other processes kept taking it over`)
}

/**
 * Whether the unreadable (empty, or not whole) lock at `path` may still be being written: a
 * lock is created and then written where hard links are missing. It is while it is younger than
 * a few seconds and this process has waited less than that on it (the file's time comes from
 * a share's clock, which may run ahead); after that its owner died before writing it.
 */
async function beingWritten(path: string, unreadableSince: number): Promise<boolean> {
  const modified = await stat(path).then(
    (s) => s.mtimeMs,
    () => undefined,
  )
  const now = Date.now()
  return modified !== undefined && now - modified < WRITING_MS && now - unreadableSince < WRITING_MS
}

const WRITING_MS = 5_000

/**
 * Replaces the stale lock `stale` at `path` with `content`, if this process claims its takeover:
 * the claim is a lock of its own (`<path>.<digest of stale>`), so one process replaces it and
 * the others, finding the claim held, wait to read the new owner. A claim left by a process
 * that died taking over is itself stale and taken over the same way.
 */
async function replaceStale(
  path: string,
  stale: string,
  content: string,
  lease: Lease,
): Promise<boolean> {
  const claim = `${path}.${createHash('sha256').update(stale).digest('hex').slice(0, 16)}`
  if ((await take(claim, content, lease)) !== undefined) return false
  try {
    if ((await readLock(path)) !== stale) return false // replaced already
    const temp = await written(path, content)
    await rename(temp, path)
    return true
  } finally {
    await unlink(claim).catch(() => {})
  }
}

/**
 * Creates `path` holding `content`, whole, unless it exists (then false). On a file system
 * without hard links (FAT, some network shares) it is created, then written (a process
 * reading it empty meanwhile waits: see beingWritten).
 */
async function create(path: string, content: string): Promise<boolean> {
  const temp = await written(path, content)
  try {
    await link(temp, path)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (!NO_HARD_LINKS.has(code ?? '')) throw error
  } finally {
    await unlink(temp).catch(() => {})
  }
  try {
    await writeFile(path, content, { flag: 'wx' })
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'])

/** A new file beside `path` holding `content`. */
async function written(path: string, content: string): Promise<string> {
  const temp = `${path}.${randomUUID()}.tmp`
  await writeFile(temp, content, { flag: 'wx' })
  return temp
}

async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

type Owner = { pid: number; startedAt?: string; pidNamespace?: string; bootId?: string }

/**
 * "<pid> <start time> <pid namespace> <boot id>", where /proc tells them all; else
 * "<pid> <start time>" or "<pid>" (as earlier versions wrote).
 */
async function ownerOf(pid: number): Promise<string> {
  const startedAt = await startTime(pid)
  if (startedAt === undefined) return String(pid)
  const { pidNamespace, bootId } = await here()
  if (pidNamespace === undefined || bootId === undefined) return `${pid} ${startedAt}`
  return `${pid} ${startedAt} ${pidNamespace} ${bootId}`
}

/** The owner a lock names; undefined when it is not a lock Kizuna wrote whole (yet: see beingWritten). */
function parseOwner(text: string): Owner | undefined {
  const full =
    /^(\d+) (\d+) (pid:\[\d+\]) ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(
      text,
    )
  if (full)
    return { pid: Number(full[1]), startedAt: full[2], pidNamespace: full[3], bootId: full[4] }
  const old = /^(\d+)(?: (\d+))?$/.exec(text)
  return old ? { pid: Number(old[1]), startedAt: old[2] } : undefined
}

/**
 * Whether `owner`, read in one of the shorter formats, may be the start of a whole lock read
 * while it was written ("12" of "123 …"): where this process writes the full format, so does a
 * Kizuna beside it. Such a lock is waited on while new (see beingWritten), then judged as read.
 */
async function mayBeCutOff(owner: Owner): Promise<boolean> {
  const { pidNamespace, bootId } = await here()
  return owner.bootId === undefined && pidNamespace !== undefined && bootId !== undefined
}

/**
 * Whether the lock at `path` naming `owner` is still its owner's. One from another boot (another
 * host mounting the same DATA_DIR share, or this host before a reboot) or another pid namespace
 * (another container on the same DATA_DIR volume) is while its owner refreshes it: its pid names
 * some other process here (each container has a pid 1), so nothing else here tells whether it
 * runs. A time ahead of the clock (the clock stepped back) counts as refreshed: taking over a
 * running owner's lock corrupts the database.
 */
async function isRunning(owner: Owner, path: string, lease: Lease): Promise<boolean> {
  if (owner.bootId !== undefined) {
    const { pidNamespace, bootId } = await here()
    if (owner.bootId !== bootId || owner.pidNamespace !== pidNamespace) {
      const refreshed = await stat(path).then(
        (s) => s.mtimeMs,
        () => undefined,
      )
      // Gone: released meanwhile; the caller finds that out and tries again.
      return refreshed !== undefined && Date.now() - refreshed < lease.foreignStaleMs
    }
  }
  if (owner.pid === process.pid) return false // left by this process (its database reopened)
  try {
    process.kill(owner.pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  if (owner.startedAt === undefined) return true
  const startedAt = await startTime(owner.pid)
  return startedAt === undefined || startedAt === owner.startedAt
}

/** When process `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22), on Linux. */
async function startTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  // The command name (field 2) is in parentheses and may hold spaces; field 3 follows it.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

/** This process's pid namespace ("pid:[4026531836]") and the boot's id, on Linux. */
function here(): Promise<{ pidNamespace?: string; bootId?: string }> {
  hereRead ??= Promise.all([
    readlink('/proc/self/ns/pid').catch(() => undefined),
    readFile('/proc/sys/kernel/random/boot_id', 'utf8').then(
      (id) => id.trim() || undefined,
      () => undefined,
    ),
  ]).then(([pidNamespace, bootId]) => ({ pidNamespace, bootId }))
  return hereRead
}

let hereRead: Promise<{ pidNamespace?: string; bootId?: string }> | undefined
