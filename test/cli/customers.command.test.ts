import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { listCustomerTags } from '../../src/customers/customer-tag.repo.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createCustomer, mergeInto } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

let db: Database
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
})
afterAll(async () => {
  await db.destroy()
})

const tagsOf = (customerId: string) => listCustomerTags(db, customerId)

describe('kizuna customers tag / untag', () => {
  it('adds and removes several tags at once, idempotently, and prints the tags after', async () => {
    const c = await createCustomer(db)
    const tagged = await cli(['customers', 'tag', c.id, 'VIP', 'ソファ購入', 'vip'])
    expect(tagged.stderr).toBe('')
    expect(tagged.code).toBe(0)
    expect(tagged.stdout).toBe(`customer ${c.id}: tags vip, ソファ購入\n`)
    expect(await tagsOf(c.id)).toEqual(['vip', 'ソファ購入'])

    const again = await cli(['customers', 'tag', c.id, 'vip'])
    expect(again.code).toBe(0)
    expect(await tagsOf(c.id)).toEqual(['vip', 'ソファ購入'])

    const untagged = await cli(['customers', 'untag', c.id, 'Vip', 'never-there'])
    expect(untagged.code).toBe(0)
    expect(untagged.stdout).toBe(`customer ${c.id}: tags ソファ購入\n`)
    const last = await cli(['customers', 'untag', c.id, 'ソファ購入'])
    expect(last.stdout).toBe(`customer ${c.id}: no tags\n`)
    expect(await tagsOf(c.id)).toEqual([])
  })

  it('tags the survivor of a merged id and says so', async () => {
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db)
    await mergeInto(db, survivor.id, merged.id)
    const result = await cli(['customers', 'tag', merged.id, 'vip'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`customer ${merged.id} (merged into ${survivor.id}): tags vip\n`)
    expect(await tagsOf(survivor.id)).toEqual(['vip'])
  })

  it('refuses a bad tag, an unknown and an erased customer, changing nothing', async () => {
    const c = await createCustomer(db)
    const bad = await cli(['customers', 'tag', c.id, 'ok', 'a,b'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('<tag>: "a,b" contains a comma or semicolon')
    expect(await tagsOf(c.id)).toEqual([])

    const unknown = await cli(['customers', 'tag', randomUUID(), 'vip'])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('no customer')

    const erased = await createCustomer(db)
    await eraseCustomer(db, erased.id)
    const gone = await cli(['customers', 'tag', erased.id, 'vip'])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain('erased')
    expect(await tagsOf(erased.id)).toEqual([])
  })
})
