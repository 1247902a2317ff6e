import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFromStdin, copyRow } from '../../src/platform/copy.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { newTimeOrderedId } from '../../src/platform/ids.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// Values COPY's text format and array literals must escape, and ones they must leave alone.
const awkward = [
  'plain',
  'tab\there',
  'new\nline',
  'carriage\rreturn',
  'back\\slash',
  '\\N',
  'NULL',
  'null',
  '',
  ' padded ',
  'comma, and "quotes"',
  '{braces}',
  '会員証 😀',
]

type Row = { id: number; label: string | null; tags: (string | null)[]; counts: number[] }

const rows: Row[] = awkward.map((label, id) => ({
  id,
  label,
  tags: [label, null, 'x'],
  counts: [id, -id - 1],
}))
rows.push({ id: 99, label: null, tags: [], counts: [] })

async function roundTrip(db: Database): Promise<Row[]> {
  return db.transaction().execute(async (trx) => {
    await sql`create temporary table copy_probe (id int, label text, tags text[], counts int[])
      on commit drop`.execute(trx)
    const copied = await copyFromStdin(
      trx,
      'copy copy_probe (id, label, tags, counts) from stdin',
      rows.map((r) => copyRow([r.id, r.label, r.tags, r.counts])).join(''),
    )
    expect(copied).toBe(rows.length)
    const { rows: back } = await sql<Row>`select * from copy_probe order by id`.execute(trx)
    return back
  })
}

describe('copyFromStdin and copyRow', () => {
  let db: Database
  let dataDir: string
  let embedded: Database
  beforeAll(async () => {
    db = await createDb({ DATABASE_URL: TEST_DATABASE_URL, DATA_DIR: '' }, { poolSize: 2 })
    dataDir = await mkdtemp(join(tmpdir(), 'kizuna-copy-'))
    embedded = await createDb({ DATABASE_URL: undefined, DATA_DIR: dataDir })
  })
  afterAll(async () => {
    await db.destroy()
    await embedded.destroy()
    await rm(dataDir, { recursive: true, force: true })
  })

  it('brings every value back as it was, on Postgres and on embedded PGlite', async () => {
    expect(await roundTrip(db)).toEqual(rows)
    expect(await roundTrip(embedded)).toEqual(rows)
  })

  it('refuses a statement that is not a COPY from stdin', async () => {
    await expect(copyFromStdin(db, 'delete from customer', 'x')).rejects.toThrow(
      /copy … from stdin/,
    )
  })
})

describe('newTimeOrderedId', () => {
  it('gives distinct version 7 ids, increasing in the order they were made', () => {
    const ids = Array.from({ length: 5000 }, () => newTimeOrderedId())
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    }
    expect([...ids].sort()).toEqual(ids)
    expect(new Set(ids).size).toBe(ids.length)
    const ms = Number.parseInt(ids[0]?.replaceAll('-', '').slice(0, 12) ?? '', 16)
    expect(Math.abs(ms - Date.now())).toBeLessThan(60_000)
  })
})
