import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createPrivateDatabase } from '../support/private-database.ts'
import { spawnKizuna } from '../support/spawned.ts'
import { eventually } from '../support/wait.ts'

const migrationCount = readdirSync(
  fileURLToPath(new URL('../../migrations', import.meta.url)),
).length
const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** `npm start` (sandbox LINE) on an empty database of its own, which it migrates at start. */
async function startOnEmptyDatabase() {
  const database = await createPrivateDatabase()
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  const spawned = await spawnKizuna({
    DATABASE_URL: database.url,
    QUEUE_PREFIX: `test-${randomUUID()}`,
    LOG_LEVEL: 'info',
    LINE_CHANNEL_SECRET: '',
    LINE_CHANNEL_ACCESS_TOKEN: '',
  })
  cleanups.push(async () => {
    if (spawned.child.exitCode === null) spawned.child.kill('SIGKILL')
    await client.end()
    await database.drop()
  })
  const exited = once(spawned.child, 'exit') as Promise<[number | null, string | null]>
  /** Migrations recorded as applied; -1 before the migrator made its table. */
  const migrationsApplied = async () => {
    const table = await client.query(`select to_regclass('kysely_migration') as t`)
    if (table.rows[0]?.t === null) return -1
    const { rows } = await client.query<{ n: number }>(
      'select count(*)::int as n from kysely_migration',
    )
    return rows[0]?.n ?? -1
  }
  return { ...spawned, exited, migrationsApplied }
}

describe('a signal while npm start is starting up', () => {
  it('stops once the migrations are applied, closes everything and exits 0', async () => {
    const kizuna = await startOnEmptyDatabase()
    // The migrator has made its tables: the migrations' transaction is under way.
    await eventually(async () => expect(await kizuna.migrationsApplied()).toBe(0), 20_000)
    kizuna.child.kill('SIGTERM')
    const [code, signal] = await kizuna.exited
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    expect(kizuna.output()).toContain('shutting down: start-up stops at its next safe point')
    expect(kizuna.output()).toContain('"msg":"stopped"')
    expect(kizuna.output()).not.toContain('Kizuna started')
    // The migrations' transaction ran to its end: none is half applied.
    expect(await kizuna.migrationsApplied()).toBe(migrationCount)
  }, 60_000)

  it('exits 0 for a SIGTERM 1.5 s after the start, wherever start-up was', async () => {
    const kizuna = await startOnEmptyDatabase()
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    kizuna.child.kill('SIGTERM')
    const [code, signal] = await kizuna.exited
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    expect(kizuna.output()).toContain('"msg":"stopped"')
    expect([-1, migrationCount]).toContain(await kizuna.migrationsApplied())
  }, 60_000)

  it('exits 1 at once on a second signal, saying what start-up was doing', async () => {
    const kizuna = await startOnEmptyDatabase()
    await eventually(async () => expect(await kizuna.migrationsApplied()).toBe(0), 20_000)
    kizuna.child.kill('SIGTERM')
    await eventually(() => expect(kizuna.output()).toContain('start-up stops at its next'))
    kizuna.child.kill('SIGINT')
    const [code] = await kizuna.exited
    expect(code).toBe(1)
    expect(kizuna.output()).toMatch(
      /second SIGINT: exiting now, still waiting for start-up \(applying migrations\)/,
    )
  }, 60_000)
})
