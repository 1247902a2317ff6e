import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { tryWithTaskLock } from '../../src/platform/task-lock.ts'
import { heldTask } from '../support/locks.ts'
import { testDb } from '../support/test-db.ts'

const postgres = testDb()
let embedded: Database
let dataDir: string
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kizuna-task-lock-'))
  embedded = await createDb(loadEnv({ DATABASE_URL: '', DATA_DIR: dataDir }))
})
afterAll(async () => {
  await embedded?.destroy()
  await rm(dataDir, { recursive: true, force: true })
})

describe.each([
  ['Postgres', () => postgres()],
  ['the embedded database', () => embedded],
])('tryWithTaskLock on %s', (_, db) => {
  const name = () => `test-task-${crypto.randomUUID()}`

  it('returns at once without running while another run of the task goes on', async () => {
    const task = name()
    const first = await heldTask(db(), task)
    let ran = false
    try {
      const tried = await tryWithTaskLock(db(), task, async () => {
        ran = true
      })
      expect(tried).toEqual({ ran: false })
      expect(ran).toBe(false)
      // Another task is not held up.
      expect(await tryWithTaskLock(db(), name(), async () => 'other')).toEqual({
        ran: true,
        value: 'other',
      })
    } finally {
      first.release()
    }
    await first.ended
    expect(await tryWithTaskLock(db(), task, async () => 'second')).toEqual({
      ran: true,
      value: 'second',
    })
  })

  it('lets the task go when its run throws', async () => {
    const task = name()
    await expect(
      tryWithTaskLock(db(), task, async () => {
        throw new Error('stopped')
      }),
    ).rejects.toThrow('stopped')
    expect(await tryWithTaskLock(db(), task, async () => 'after')).toEqual({
      ran: true,
      value: 'after',
    })
  })
})
