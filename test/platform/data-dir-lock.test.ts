import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lockDataDir } from '../../src/platform/data-dir-lock.ts'

const lockModule = fileURLToPath(new URL('../../src/platform/data-dir-lock.ts', import.meta.url))

/**
 * A process that locks the folders it is told to ("<dir>" on stdin), one at a time, and answers
 * "locked <dir>" or "refused <dir>"; what it locked it holds until it exits.
 */
const contenderScript = `
import { createInterface } from 'node:readline'
const { lockDataDir } = await import(${JSON.stringify(lockModule)})
console.log('ready')
for await (const dir of createInterface({ input: process.stdin })) {
  const answer = await lockDataDir(dir).then(() => 'locked', () => 'refused')
  console.log(answer + ' ' + dir)
}
`

type Contender = { child: ChildProcess; answers: string[]; waiting: (() => void)[] }

function startContender(): Promise<Contender> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', contenderScript], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const contender: Contender = { child, answers: [], waiting: [] }
  return new Promise((resolve, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`a contender exited (${code}) before it was ready`)),
    )
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (line === 'ready') resolve(contender)
      else {
        contender.answers.push(line)
        contender.waiting.shift()?.()
      }
    })
  })
}

/** Tells every contender to lock `dir` at once; their answers, once all have answered. */
async function contend(contenders: Contender[], dir: string): Promise<string[]> {
  const answered = contenders.map(
    (c) => new Promise<string>((resolve) => c.waiting.push(() => resolve(c.answers.at(-1) ?? ''))),
  )
  for (const c of contenders) c.child.stdin?.write(`${dir}\n`)
  return (await Promise.all(answered)).map((answer) => answer.split(' ')[0] ?? '')
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((resolve) => child.once('exit', resolve))
  return child.pid as number
}

/** When process `pid` started (/proc/<pid>/stat field 22), as a lock records it. */
async function startTimeOf(pid: number | string): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string
}

const contenders: Contender[] = []
const dirs: string[] = []
beforeAll(async () => {
  contenders.push(...(await Promise.all(Array.from({ length: 8 }, startContender))))
})
afterAll(async () => {
  for (const { child } of contenders) child.kill('SIGKILL')
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

async function folderLockedBy(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kizuna-lock-'))
  dirs.push(dir)
  await writeFile(join(dir, 'kizuna.lock'), content)
  return dir
}

/**
 * A folder whose lock reads `content` in a format earlier versions wrote, a minute old: a new
 * one may be the start of a whole lock being written, which is waited on a few seconds.
 */
async function folderLockedEarlierBy(content: string): Promise<string> {
  const dir = await folderLockedBy(content)
  const minuteAgo = new Date(Date.now() - 60_000)
  await utimes(join(dir, 'kizuna.lock'), minuteAgo, minuteAgo)
  return dir
}

describe('lockDataDir', () => {
  it('lets exactly one of many processes take over a lock left by a process that is gone', async () => {
    // `npm start` and `npx kizuna import` started together after a crash both found the lock
    // stale; each deleted it and made its own (one deleting the other's), and both wrote the
    // same database. Many rounds, as the two only cross now and then.
    const dead = await deadPid()
    for (let round = 0; round < 40; round++) {
      const dir = await folderLockedEarlierBy(String(dead))
      const answers = await contend(contenders, dir)
      expect(
        answers.filter((a) => a === 'locked'),
        `round ${round}: ${answers}`,
      ).toHaveLength(1)
      expect(answers.filter((a) => a === 'refused')).toHaveLength(contenders.length - 1)
      // The takeover leaves nothing of its own behind, only the new lock.
      expect(await readdir(dir)).toEqual(['kizuna.lock'])
    }
  }, 120_000)

  it.skipIf(!existsSync('/proc/self/stat'))(
    'takes over a lock whose pid a later process has been given, not one naming that process',
    async () => {
      // This test's process is alive; a lock naming its pid with another start time was left by
      // an earlier process with the same pid (a reboot or the pids wrapping round).
      const stat = await readFile('/proc/self/stat', 'utf8')
      const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
      const [first] = contenders as [Contender]
      const held = await folderLockedEarlierBy(`${process.pid} ${startTime}`)
      expect(await contend([first], held)).toEqual(['refused'])

      const reused = await folderLockedEarlierBy(`${process.pid} ${Number(startTime) - 1}`)
      expect(await contend([first], reused)).toEqual(['locked'])
      expect(await readFile(join(reused, 'kizuna.lock'), 'utf8')).toMatch(
        new RegExp(`^${first.child.pid} \\d+( |$)`),
      )
    },
  )

  it('refuses a lock held by a running process, with or without its start time', async () => {
    const [first, second] = contenders as [Contender, Contender]
    const dir = await folderLockedBy('')
    await rm(join(dir, 'kizuna.lock'))
    expect(await contend([first], dir)).toEqual(['locked'])
    expect(await contend([second], dir)).toEqual(['refused'])
    // As an earlier Kizuna wrote it: the pid alone.
    expect(await contend([second], await folderLockedEarlierBy(String(first.child.pid)))).toEqual([
      'refused',
    ])
  })

  describe.skipIf(!existsSync('/proc/self/ns/pid'))(
    'with the pid namespace and boot in the lock',
    () => {
      // Containers sharing a DATA_DIR volume each have their own pids: the web container's node
      // is pid 1 there, and a one-off `docker compose run … npx kizuna import` has a pid 1 of its
      // own (npm), alive, with another start time. Judged by pid and start time, the web
      // container's lock looked stale and was taken over: two writers on one PGlite folder.
      let namespace: string
      let boot: string
      beforeAll(async () => {
        namespace = await readlink('/proc/self/ns/pid')
        boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim()
      })

      /**
       * The lock `lockDataDir` left over a folder whose lock read `content` (last refreshed
       * `age` ms ago); held: the error.
       */
      async function lockOver(
        content: string,
        age = 0,
      ): Promise<{ lock: string } | { refused: string }> {
        const dir = await folderLockedBy(content)
        const refreshed = new Date(Date.now() - age)
        await utimes(join(dir, 'kizuna.lock'), refreshed, refreshed)
        try {
          const release = await lockDataDir(dir)
          const lock = await readFile(join(dir, 'kizuna.lock'), 'utf8')
          await release()
          return { lock }
        } catch (error) {
          return { refused: (error as Error).message }
        }
      }

      it('refuses a lock from another pid namespace, whatever its pid shows here', async () => {
        const [first] = contenders as [Contender]
        const live = `${first.child.pid} ${await startTimeOf(first.child.pid as number)}`
        for (const pid of [`1 ${await startTimeOf(1)}`, `1 1`, `${await deadPid()} 1`, live]) {
          expect(await lockOver(`${pid} pid:[1] ${boot}`), pid).toEqual({
            refused: expect.stringContaining(
              `in use by process ${pid.split(' ')[0]} in another pid namespace (container)`,
            ),
          })
        }
      })

      it('takes over a lock from another pid namespace once its owner stopped refreshing it', async () => {
        // A container killed (SIGKILL, out of memory) while holding the lock restarts in a new
        // pid namespace: its lock was refused for ever, until someone deleted it. A running
        // owner refreshes its lock's time (every 10 s, but not while PGlite runs a long
        // statement); one not refreshed for 2 minutes is left by a container that is gone.
        const fresh = `1 ${await startTimeOf(1)} pid:[1] ${boot}`
        const mine = `${process.pid} ${await startTimeOf('self')} ${namespace} ${boot}`
        expect(await lockOver(fresh, 90_000)).toEqual({
          refused: expect.stringContaining('in use by process 1 in another pid namespace'),
        })
        expect(await lockOver(fresh, 150_000)).toEqual({ lock: mine })
        // A time ahead of the clock (stepped back since) is not taken for a stopped refresh.
        expect(await lockOver(fresh, -60_000)).toEqual({
          refused: expect.stringContaining('in use by process 1 in another pid namespace'),
        })
      })

      it('judges a lock from another boot by its refresh, whatever its namespace and pid show', async () => {
        // A DATA_DIR on a network share mounted by two hosts: the other host's running Kizuna
        // has another boot id, and its lock was taken over at once (two writers). After a
        // reboot an unrelated process here may have the pid with the very start time.
        const [first] = contenders as [Contender]
        const live = `${first.child.pid} ${await startTimeOf(first.child.pid as number)}`
        const other = '00000000-0000-4000-8000-000000000000'
        for (const ns of [namespace, 'pid:[1]']) {
          expect(await lockOver(`${live} ${ns} ${other}`, 90_000)).toEqual({
            refused: expect.stringContaining(
              `in use by process ${first.child.pid} on another host (or before a reboot)`,
            ),
          })
          expect(await lockOver(`${live} ${ns} ${other}`, 150_000)).toEqual({
            lock: `${process.pid} ${await startTimeOf('self')} ${namespace} ${boot}`,
          })
        }
      })

      it('waits on a new lock cut off while it was read, until its owner has written it', async () => {
        // Where hard links are missing a lock is created, then written: read meanwhile, its
        // start parsed ("12" of "123 …", a boot id cut short), and the lock was judged by it.
        const [first] = contenders as [Contender]
        const whole = `${first.child.pid} ${await startTimeOf(first.child.pid as number)} ${namespace} ${boot}`
        for (const cut of [whole.length - 4, whole.indexOf(' pid:'), 1]) {
          const dir = await folderLockedBy(whole.slice(0, cut))
          let settled = false
          const attempt = lockDataDir(dir).finally(() => {
            settled = true
          })
          attempt.catch(() => {})
          await sleep(200) // long enough for a reader to have read it cut off
          expect(settled, whole.slice(0, cut)).toBe(false)
          await writeFile(join(dir, 'kizuna.lock'), whole)
          await expect(attempt).rejects.toThrow(`in use by process ${first.child.pid} (`)
        }
      })

      it('judges a lock from this namespace and boot by its pid and start time', async () => {
        const [first] = contenders as [Contender]
        const pid = first.child.pid as number
        const started = await startTimeOf(pid)
        const mine = `${process.pid} ${await startTimeOf('self')} ${namespace} ${boot}`
        expect(await lockOver(`${pid} ${started} ${namespace} ${boot}`)).toEqual({
          refused: expect.stringContaining(`in use by process ${pid} (Kizuna running?)`),
        })
        expect(await lockOver(`${pid} ${Number(started) - 1} ${namespace} ${boot}`)).toEqual({
          lock: mine,
        })
        expect(await lockOver(`${await deadPid()} ${started} ${namespace} ${boot}`)).toEqual({
          lock: mine,
        })
      })
    },
  )

  it('refreshes the time of a lock it holds, until released', async () => {
    const dir = await folderLockedBy('')
    const path = join(dir, 'kizuna.lock')
    await rm(path)
    const release = await lockDataDir(dir, { heartbeatMs: 20 })
    const lock = await readFile(path, 'utf8')
    const minuteAgo = new Date(Date.now() - 60_000)
    await utimes(path, minuteAgo, minuteAgo)
    for (let i = 0; i < 500 && (await stat(path)).mtimeMs === minuteAgo.getTime(); i++) {
      await sleep(10)
    }
    expect((await stat(path)).mtimeMs).toBeGreaterThan(minuteAgo.getTime())

    await release()
    // The same lock back with an old time, as if still this process's: nothing refreshes it.
    await writeFile(path, lock)
    await utimes(path, minuteAgo, minuteAgo)
    await sleep(200) // ten heartbeats
    expect((await stat(path)).mtimeMs).toBe(minuteAgo.getTime())
  })

  it('tells once when a heartbeat finds its lock taken over', async () => {
    // A long statement on PGlite stops the beats; another process may take the lock over
    // meanwhile. The owner said nothing and went on writing beside the new one.
    const dir = await folderLockedBy('')
    const path = join(dir, 'kizuna.lock')
    await rm(path)
    let lost = 0
    const release = await lockDataDir(dir, { heartbeatMs: 20, onLost: () => lost++ })
    const theirs = `${await deadPid()}`
    await writeFile(path, theirs)
    for (let i = 0; i < 500 && lost === 0; i++) await sleep(10)
    await sleep(200) // ten more heartbeats
    expect(lost).toBe(1)
    await release()
    expect(await readFile(path, 'utf8')).toBe(theirs) // the new owner's lock is left alone
  })

  describe('a lock with nothing readable in it', () => {
    // Where hard links are missing (FAT, some network shares) a lock is created empty and then
    // written: a process starting beside read it empty, took it for stale and replaced it, and
    // both ran.
    it('is waited on while it is new, until its owner has written it', async () => {
      const [first] = contenders as [Contender]
      for (const content of ['', '12 34 pid:[4']) {
        const dir = await folderLockedBy(content)
        let settled = false
        const attempt = lockDataDir(dir).finally(() => {
          settled = true
        })
        attempt.catch(() => {})
        await sleep(200) // long enough for a reader to have found it unreadable
        expect(settled, JSON.stringify(content)).toBe(false)
        await writeFile(join(dir, 'kizuna.lock'), String(first.child.pid))
        // As an earlier version wrote it, long ago: judged as read, not waited on as cut off.
        const minuteAgo = new Date(Date.now() - 60_000)
        await utimes(join(dir, 'kizuna.lock'), minuteAgo, minuteAgo)
        await expect(attempt).rejects.toThrow(`in use by process ${first.child.pid}`)
      }
    })

    it('is taken for stale once it is old (its owner died before writing it)', async () => {
      for (const content of ['', 'not a lock']) {
        const dir = await folderLockedBy(content)
        const minuteAgo = new Date(Date.now() - 60_000)
        await utimes(join(dir, 'kizuna.lock'), minuteAgo, minuteAgo)
        const release = await lockDataDir(dir)
        expect(await readFile(join(dir, 'kizuna.lock'), 'utf8')).toMatch(
          new RegExp(`^${process.pid}( |$)`),
        )
        await release()
      }
    })

    it('is taken for stale after a few seconds even when its time is in the future', async () => {
      // A network share's clock ahead of this one would otherwise keep it new for ever.
      const dir = await folderLockedBy('')
      const hourAhead = new Date(Date.now() + 3_600_000)
      await utimes(join(dir, 'kizuna.lock'), hourAhead, hourAhead)
      const release = await lockDataDir(dir)
      expect(await readFile(join(dir, 'kizuna.lock'), 'utf8')).toMatch(
        new RegExp(`^${process.pid}( |$)`),
      )
      await release()
    })
  })
})
