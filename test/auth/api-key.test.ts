import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { authenticate, createApiKey, hashKey } from '../../src/auth/api-key.service.ts'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

let db: Database
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
})
afterAll(async () => {
  await db.destroy()
})

const storeCode = () => `T${randomUUID().slice(0, 8)}`

describe('kizuna stores and keys', () => {
  it('adds a store, creates a pos key printed once as the last line, and stores only its hash', async () => {
    const code = storeCode()
    const added = await cli(['stores', 'add', '--code', code, '--name', 'Shibuya'])
    expect(added.code).toBe(0)
    const created = await cli(['keys', 'create', '--store', code, '--scope', 'pos'])
    expect(created.code).toBe(0)
    const key = created.stdout.trim().split('\n').at(-1)!
    expect(key).toMatch(/^kz_[0-9a-f]{8}_/)

    const rows = await db
      .selectFrom('api_key')
      .innerJoin('store', 'store.id', 'api_key.store_id')
      .select(['api_key.key_hash', 'api_key.scopes', 'api_key.prefix'])
      .where('store.code', '=', code)
      .execute()
    expect(rows).toEqual([{ key_hash: hashKey(key), scopes: ['pos'], prefix: key.slice(3, 11) }])
    expect(JSON.stringify(rows)).not.toContain(key)
  })

  it('refuses bad input by field and changes nothing', async () => {
    const code = storeCode()
    const bad = await cli(['stores', 'add', '--code', `${code} x`, '--name', ' '])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('code: use 1-32 letters')
    expect(bad.stderr).toContain('name: a store needs a name')
    const noStore = await cli(['keys', 'create', '--scope', 'pos'])
    expect(noStore.stderr).toContain('--store: a key with scope pos must belong to a store')
    const badScope = await cli(['keys', 'create', '--store', code, '--scope', 'root'])
    expect(badScope.stderr).toContain('--scope: unknown scope root')
    const stores = await db.selectFrom('store').where('code', 'like', `${code}%`).execute()
    expect(stores).toHaveLength(0)
  })

  it('refuses a register key that could also reach every customer (pos with admin or import)', async () => {
    const code = storeCode()
    await cli(['stores', 'add', '--code', code, '--name', 'Ebisu'])
    for (const scope of ['pos,admin', 'import,pos']) {
      const mixed = await cli(['keys', 'create', '--store', code, '--scope', scope])
      expect({ scope, code: mixed.code }).toEqual({ scope, code: 1 })
      expect(mixed.stderr).toContain(
        `--scope: pos cannot go with ${scope.replace(/,?pos,?/, '')} in one key`,
      )
    }
    // What stays allowed: an import or admin key, with or without a store to show in keys list.
    const importer = await cli(['keys', 'create', '--store', code, '--scope', 'import'])
    const admin = await cli(['keys', 'create', '--scope', 'admin,import'])
    expect([importer.code, admin.code]).toEqual([0, 0])
    const rows = await db
      .selectFrom('api_key')
      .innerJoin('store', 'store.id', 'api_key.store_id')
      .select('api_key.scopes')
      .where('store.code', '=', code)
      .execute()
    expect(rows).toEqual([{ scopes: ['import'] }])
  })
})

describe('kizuna stores list and keys list with a tab or line break in a name or label', () => {
  it('stores them as one space, so each store and key stays one line of tab-separated cells', async () => {
    const code = storeCode()
    const added = await cli(['stores', 'add', '--code', code, '--name', ' Shibuya\n2F\t'])
    expect(added.code).toBe(0)
    const store = (await cli(['stores', 'list'])).stdout
      .split('\n')
      .find((l) => l.startsWith(`${code}\t`))
    expect(store?.split('\t')).toEqual([code, 'Shibuya 2F'])

    const created = await cli([
      'keys',
      'create',
      '--scope',
      'import',
      '--label',
      'R1\tnight\r\nshift',
    ])
    expect(created.code).toBe(0)
    const prefix = created.stdout.trim().split('\n').at(-1)!.slice(3, 11)
    const key = (await cli(['keys', 'list'])).stdout
      .split('\n')
      .find((l) => l.startsWith(`kz_${prefix}_`))
    expect(key?.split('\t')).toEqual([
      `kz_${prefix}_…`,
      '-',
      'import',
      'R1 night shift',
      expect.stringMatching(/^\d{4}-/),
      '-',
      'live',
    ])
  })
})

describe('kizuna keys list and revoke', () => {
  it('lists keys without their secret and revokes one by prefix: it is refused from then on', async () => {
    const code = storeCode()
    await cli(['stores', 'add', '--code', code, '--name', 'Ginza'])
    const created = await cli([
      'keys',
      'create',
      '--store',
      code,
      '--scope',
      'pos',
      '--label',
      'R1',
    ])
    const key = created.stdout.trim().split('\n').at(-1)!
    const prefix = key.slice(3, 11)
    await expect(authenticate(db, `Bearer ${key}`, 'pos')).resolves.toBeDefined()

    const listed = await cli(['keys', 'list'])
    expect(listed.code).toBe(0)
    const line = listed.stdout.split('\n').find((l) => l.startsWith(`kz_${prefix}_`))
    expect(line?.split('\t')).toEqual([
      `kz_${prefix}_…`,
      code,
      'pos',
      'R1',
      expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d$/),
      expect.stringMatching(/^\d{4}-/), // used just now
      'live',
    ])
    expect(listed.stdout).not.toContain(key)

    const revoked = await cli(['keys', 'revoke', prefix])
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked kz_${prefix}_…\n` })
    await expect(authenticate(db, `Bearer ${key}`, 'pos')).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    })
    expect((await cli(['keys', 'list'])).stdout).toMatch(
      new RegExp(`kz_${prefix}_….*\trevoked \\d{4}-`),
    )
    const again = await cli(['keys', 'revoke', `kz_${prefix}`])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`no live API key starts kz_${prefix}_`)
  })

  it('refuses a malformed prefix, and a prefix two live keys share, revoking nothing', async () => {
    const bad = await cli(['keys', 'revoke', 'abcd123'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('KEY: paste the whole key, or only the 8 hex characters after kz_')
    const prefix = randomUUID().slice(0, 8)
    const ids = await db
      .insertInto('api_key')
      .values([1, 2].map((n) => ({ prefix, key_hash: `twin-${prefix}-${n}`, scopes: ['import'] })))
      .returning('id')
      .execute()
    const twin = await cli(['keys', 'revoke', prefix])
    expect(twin.code).toBe(1)
    expect(twin.stderr).toContain(
      `2 live API keys start kz_${prefix}_; none revoked. Pass the whole key to revoke one of them`,
    )
    const rows = await db
      .selectFrom('api_key')
      .select('revoked_at')
      .where(
        'id',
        'in',
        ids.map((r) => r.id),
      )
      .execute()
    expect(rows).toEqual([{ revoked_at: null }, { revoked_at: null }])
  })
})

describe('two live keys with one prefix', () => {
  /** A live key with this prefix but another secret, as a colliding randomBytes(4) would make. */
  const insertTwin = (prefix: string) =>
    db
      .insertInto('api_key')
      .values({ prefix, key_hash: `twin-${randomUUID()}`, scopes: ['import'] })
      .returning('id')
      .executeTakeFirstOrThrow()

  it('createApiKey draws another prefix while a live key has the one drawn, and gives up after 5 draws', async () => {
    const taken = randomUUID().slice(0, 8)
    const fresh = randomUUID().slice(0, 8)
    await insertTwin(taken)
    const drawn: string[] = []
    const draw = (prefixes: string[]) => () => {
      const prefix = prefixes[drawn.length] ?? taken
      drawn.push(prefix)
      return prefix
    }
    const { key } = await createApiKey(
      db,
      { storeId: null, scopes: ['import'] },
      draw([taken, taken, fresh]),
    )
    expect(drawn).toEqual([taken, taken, fresh])
    expect(key.slice(0, 12)).toBe(`kz_${fresh}_`)
    await expect(authenticate(db, `Bearer ${key}`, 'import')).resolves.toBeDefined()

    drawn.length = 0
    await expect(createApiKey(db, { storeId: null, scopes: ['import'] }, draw([]))).rejects.toThrow(
      `no prefix free after 5 draws`,
    )
    expect(drawn).toEqual([taken, taken, taken, taken, taken])
    const live = await db
      .selectFrom('api_key')
      .select('id')
      .where('prefix', '=', taken)
      .where('revoked_at', 'is', null)
      .execute()
    expect(live).toHaveLength(1)
  })

  it('keys revoke given the whole key revokes that key alone; a mistyped or cut key revokes none', async () => {
    const { key } = await createApiKey(db, { storeId: null, scopes: ['import'] })
    const prefix = key.slice(3, 11)
    const twin = await insertTwin(prefix)

    const shared = await cli(['keys', 'revoke', `kz_${prefix}_…`])
    expect(shared.code).toBe(1)
    expect(shared.stderr).toContain('Pass the whole key')
    const typo = await cli([
      'keys',
      'revoke',
      `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`,
    ])
    expect(typo.code).toBe(1)
    expect(typo.stderr).toContain(`no live API key is the kz_${prefix}_… given; none revoked`)
    const cut = await cli(['keys', 'revoke', key.slice(0, 20)])
    expect(cut.code).toBe(1)
    expect(cut.stderr).toContain('KEY: paste the whole key, or only the 8 hex characters')
    await expect(authenticate(db, `Bearer ${key}`, 'import')).resolves.toBeDefined()

    const revoked = await cli(['keys', 'revoke', key])
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked kz_${prefix}_…\n` })
    expect(revoked.stderr).not.toContain(key)
    await expect(authenticate(db, `Bearer ${key}`, 'import')).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    })
    const left = await db
      .selectFrom('api_key')
      .select('revoked_at')
      .where('id', '=', twin.id)
      .executeTakeFirstOrThrow()
    expect(left.revoked_at).toBeNull()
    // The other key is now the only live one with the prefix: the prefix alone revokes it.
    expect((await cli(['keys', 'revoke', prefix])).code).toBe(0)
  })
})

describe('authenticate', () => {
  it('accepts a key with the scope and refuses missing, unknown, revoked or out-of-scope keys', async () => {
    const { id, key } = await createApiKey(db, { storeId: null, scopes: ['import'] })
    await expect(authenticate(db, `Bearer ${key}`, 'import')).resolves.toMatchObject({ keyId: id })
    const used = await db
      .selectFrom('api_key')
      .select('last_used_at')
      .where('id', '=', id)
      .executeTakeFirstOrThrow()
    expect(used.last_used_at).not.toBeNull()
    await expect(authenticate(db, undefined, 'import')).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    })
    await expect(authenticate(db, `Bearer ${key}x`, 'import')).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    })
    await expect(authenticate(db, `Bearer ${key}`, 'admin')).rejects.toMatchObject({
      code: 'FORBIDDEN',
    })
    await db.updateTable('api_key').set({ revoked_at: new Date() }).where('id', '=', id).execute()
    await expect(authenticate(db, `Bearer ${key}`, 'import')).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    })
  })
})

describe("authenticate's last-used time, on a server whose clock is off the database's", () => {
  const TEN_MINUTES_MS = 10 * 60_000

  /** A key whose last_used_at is `ago` before the database's now(). */
  async function keyUsed(ago: string) {
    const { id, key } = await createApiKey(db, { storeId: null, scopes: ['import'] })
    await db
      .updateTable('api_key')
      .set({ last_used_at: sql`now() - ${ago}::interval` })
      .where('id', '=', id)
      .execute()
    const lastUsed = async () =>
      (
        await db
          .selectFrom('api_key')
          .select('last_used_at')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).last_used_at
    return { key, lastUsed }
  }

  /** Runs `fn` with this process's Date `ms` off the machine's clock (the database's). */
  async function withClockOff<T>(ms: number, fn: () => Promise<T>): Promise<T> {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + ms)
    try {
      return await fn()
    } finally {
      vi.useRealTimers()
    }
  }

  it('refreshes a time the database counts as over a minute old, though the server is behind', async () => {
    const { key, lastUsed } = await keyUsed('2 minutes')
    const before = await lastUsed()
    await withClockOff(-TEN_MINUTES_MS, () => authenticate(db, `Bearer ${key}`, 'import'))
    expect((await lastUsed())!.getTime()).toBeGreaterThan(before!.getTime())
  })

  it('neither writes nor tries to for a time the database counts as fresh, though the server is ahead', async () => {
    const { key, lastUsed } = await keyUsed('10 seconds')
    const before = await lastUsed()
    // The server's connections, named so that a wait of theirs can be told from other tests'.
    const name = `kizuna-skew-${randomUUID().slice(0, 8)}`
    const url = new URL(TEST_DATABASE_URL)
    url.searchParams.set('application_name', name)
    const server = await createDb(loadEnv({ DATABASE_URL: url.toString() }), { poolSize: 1 })
    // While this holds api_key in SHARE mode, every UPDATE of it waits (a read does not).
    const locker = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await locker.connect()
    await locker.query('begin')
    await locker.query('lock table api_key in share mode')
    let answered = false
    try {
      const request = withClockOff(TEN_MINUTES_MS, () =>
        authenticate(server, `Bearer ${key}`, 'import'),
      )
      const updating = (async () => {
        while (!answered) {
          // Not on the locker's connection: within its transaction the view would not change.
          const { rows } = await sql`select 1 from pg_stat_activity
            where application_name = ${name} and wait_event_type = 'Lock'`.execute(db)
          if (rows.length > 0) return 'waited to update api_key'
          await new Promise((r) => setTimeout(r, 20))
        }
        return 'answered'
      })()
      await Promise.race([request.then(() => (answered = true)), updating])
      expect(await updating).toBe('answered')
    } finally {
      answered = true
      await locker.query('rollback')
      await locker.end()
      await server.destroy()
    }
    expect(await lastUsed()).toEqual(before)
  })
})
