import { sql } from 'kysely'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { customerWithLegacyCard, databaseMigratedTo } from '../support/migrated-database.ts'

describe('kizuna migrate', () => {
  it('says the database cannot be reached when nothing listens at DATABASE_URL', async () => {
    const res = await cli(['migrate'], {
      DATABASE_URL: 'postgres://postgres:hunter2secret@127.0.0.1:1/kizuna',
    })
    expect(res.code).not.toBe(0)
    expect(res.stderr).toContain('cannot reach the database (DATABASE_URL): ')
    expect(res.stderr).not.toContain('migration (unknown) failed')
    expect(res.stderr + res.stdout).not.toContain('hunter2secret')
  })

  it('says the database cannot be reached when the database does not exist', async () => {
    const missing = new URL(TEST_DATABASE_URL)
    missing.pathname = '/kizuna_no_such_database'
    missing.password = 'hunter2secret'
    const res = await cli(['migrate'], { DATABASE_URL: missing.toString() })
    expect(res.code).not.toBe(0)
    expect(res.stderr).toMatch(/cannot reach the database \(DATABASE_URL\): .*does not exist/)
    expect(res.stderr + res.stdout).not.toContain('hunter2secret')
  })

  it('refuses a database that is not UTF8, and creates nothing in it', async () => {
    const name = `kizuna_ascii_${process.pid}_${Date.now()}`
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    try {
      await admin.query(
        `create database ${name} encoding 'SQL_ASCII' template template0 lc_collate 'C' lc_ctype 'C'`,
      )
      const url = new URL(TEST_DATABASE_URL)
      url.pathname = `/${name}`
      const res = await cli(['migrate'], { DATABASE_URL: url.toString() })
      expect(res.code).toBe(1)
      expect(res.stderr).toContain(
        'the database (DATABASE_URL) is encoded SQL_ASCII; Kizuna stores Japanese text and needs UTF8',
      )
      const db = new pg.Client({ connectionString: url.toString() })
      await db.connect()
      const { rows } = await db.query(
        "select count(*)::int as n from information_schema.tables where table_schema = 'public'",
      )
      await db.end()
      expect(rows[0].n).toBe(0)
    } finally {
      await admin.query(`drop database if exists ${name} with (force)`)
      await admin.end()
    }
  })

  it('does the same for --down', async () => {
    const res = await cli(['migrate', '--down'], {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/kizuna',
    })
    expect(res.code).not.toBe(0)
    expect(res.stderr).toContain('cannot reach the database (DATABASE_URL): ')
  })
})

describe('kizuna migrate when a migration fails', () => {
  it('prints what failed (message, code, table, constraint), never the row Postgres quotes', async () => {
    // The legacy-card migration rewrites a full-width card number into a row that a constraint of
    // this database (one an operator added) refuses: Postgres's detail quotes the whole row.
    const migrated = await databaseMigratedTo('20261211T100000-create-customer-tag')
    try {
      const { db } = migrated
      const id = await customerWithLegacyCard(db, 'Ｌ８８１２３４')
      await sql`alter table identity add constraint identity_no_l881234
        check (value <> 'L881234')`.execute(db)

      const res = await cli(['migrate'], { DATABASE_URL: migrated.url })
      expect(res.code).toBe(1)
      expect(res.stderr).toContain('migration 20261212T101500-normalise-legacy-card-width failed')
      expect(res.stderr).toContain('violates check constraint')
      expect(res.stderr).toMatch(/code: 23514/)
      expect(res.stderr).toMatch(/table: identity/)
      expect(res.stderr).toMatch(/constraint: identity_no_l881234/)
      expect(res.stderr).not.toContain('L881234')
      expect(res.stderr).not.toContain(id)
    } finally {
      await migrated.close()
    }
  })
})

describe('a bad variable', () => {
  it('is reported with the others, without a stack, and exits 1', async () => {
    for (const args of [['migrate'], ['stores', 'list']]) {
      const res = await cli(args, { PORT: 'abc', QUIET_HOURS: 'late' })
      expect(res.code, args.join(' ')).toBe(1)
      expect(res.stderr).toContain('Invalid configuration')
      expect(res.stderr).toMatch(/→ at PORT/)
      expect(res.stderr).toMatch(/→ at QUIET_HOURS/)
      expect(res.stderr).not.toMatch(/\n\s+at /)
    }
  })
})
