import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { listCustomerTags } from '../../src/customers/customer-tag.repo.ts'
import { changeCustomerTags } from '../../src/customers/customer-tag.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cardNumber, createCustomer, mergeInto } from '../customers/factories.ts'
import { printedCardNumber } from '../purchases/fixtures.ts'
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

  it('takes an id in upper case as the same customer, not one merged into it', async () => {
    const c = await createCustomer(db)
    const tagged = await cli(['customers', 'tag', c.id.toUpperCase(), 'vip'])
    expect(tagged.code).toBe(0)
    expect(tagged.stdout).toBe(`customer ${c.id}: tags vip\n`)
    const untagged = await cli(['customers', 'untag', c.id.toUpperCase(), 'vip'])
    expect(untagged.stdout).toBe(`customer ${c.id}: no tags\n`)

    const erased = await cli(['customers', 'erase', c.id.toUpperCase()])
    expect(erased.code).toBe(0)
    expect(erased.stdout).toBe(`erased customer ${c.id}\n`)
    const again = await cli(['customers', 'erase', c.id.toUpperCase()])
    expect(again.stdout).toBe(`customer ${c.id} was already erased; checked again\n`)
  })

  it('refuses a bad tag, an unknown and an erased customer, changing nothing', async () => {
    const c = await createCustomer(db)
    const bad = await cli(['customers', 'tag', c.id, 'ok', 'a,b'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('<tag>: "a,b" contains a comma or semicolon')
    expect(await tagsOf(c.id)).toEqual([])
    for (const dots of ['.', '..', '\uff0e']) {
      const refused = await cli(['customers', 'tag', c.id, dots])
      expect(refused.code, dots).toBe(1)
      expect(refused.stderr).toContain(`<tag>: ${JSON.stringify(dots)} is "." or ".."`)
    }
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

  it('removes a "." or ".." tag stored before they were refused', async () => {
    // Refused on removal too, such a tag stayed for good: untag exited 1 and the API cannot
    // name it in a URL (…/tags/. is …/tags/).
    const c = await createCustomer(db)
    await db
      .insertInto('customer_tag')
      .values(['.', '..', 'vip'].map((tag) => ({ customer_id: c.id, tag })))
      .execute()
    const dot = await cli(['customers', 'untag', c.id, '.'])
    expect(dot.stderr).toBe('')
    expect(dot.code).toBe(0)
    expect(dot.stdout).toBe(`customer ${c.id}: tags .., vip\n`)
    // However written, as a tag is read: full width, spaces around.
    const dots = await cli(['customers', 'untag', c.id, ' \uff0e\uff0e '])
    expect(dots.code).toBe(0)
    expect(await tagsOf(c.id)).toEqual(['vip'])
    // Adding one is still refused.
    expect((await cli(['customers', 'tag', c.id, '.'])).code).toBe(1)
  })
})

describe('kizuna customers find', () => {
  it('prints the id on its own line first, then name, tier, points, tags and identity kinds', async () => {
    const card = cardNumber()
    const tag = randomUUID().slice(0, 8)
    const c = await createCustomer(db, {
      line: true,
      displayName: 'Aki',
      points: 30,
      identities: [
        { kind: 'member_card', value: card },
        { kind: 'email', value: `aki.${tag}@example.com` },
      ],
    })
    await changeCustomerTags(db, c.id, { add: ['vip'] })
    const found = await cli(['customers', 'find', `member_card:${card}`])
    expect(found.stderr).toBe('')
    expect(found.code).toBe(0)
    const [first, ...summary] = found.stdout.trimEnd().split('\n')
    expect(first).toBe(c.id)
    expect(summary).toEqual([
      'name: Aki',
      'tier: regular, points: 30',
      'tags: vip',
      'identities: line, member_card, email',
    ])
    // The identities' values are not printed: the kinds say what to look up by.
    expect(found.stdout).not.toContain(card)
    expect(found.stdout).not.toContain(c.lineUid)

    // Any kind, typed as the API takes it (an email in another case, a card as printed).
    for (const identity of [
      `email:Aki.${tag}@Example.com`,
      `member_card:${printedCardNumber(card)}`,
    ]) {
      const again = await cli(['customers', 'find', identity])
      expect({ identity, code: again.code }).toEqual({ identity, code: 0 })
      expect(again.stdout.split('\n')[0]).toBe(c.id)
    }
  })

  it('says so when a customer has no name, tags or points', async () => {
    const phone = `090${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`
    const c = await createCustomer(db, { identities: [{ kind: 'phone', value: phone }] })
    const found = await cli(['customers', 'find', `phone:${phone.slice(0, 3)}-${phone.slice(3)}`])
    expect(found.code).toBe(0)
    expect(found.stdout).toBe(
      `${c.id}\nname: (none)\ntier: regular, points: 0\ntags: (none)\nidentities: phone\n`,
    )
  })

  it('finds the survivor of a merge by an identity of the customer merged into it', async () => {
    const card = cardNumber()
    const survivor = await createCustomer(db, { displayName: 'Survivor' })
    const merged = await createCustomer(db, { identities: [{ kind: 'member_card', value: card }] })
    await mergeInto(db, survivor.id, merged.id)
    const found = await cli(['customers', 'find', `member_card:${card}`])
    expect(found.code).toBe(0)
    expect(found.stdout.split('\n').slice(0, 2)).toEqual([survivor.id, 'name: Survivor'])
  })

  it('exits 1 with nothing on stdout for an unknown identity and an erased customer', async () => {
    const unknown = await cli(['customers', 'find', `member_card:${cardNumber()}`])
    expect(unknown.code).toBe(1)
    expect(unknown.stdout).toBe('')
    expect(unknown.stderr).toBe('error: no customer has this member_card\n')

    const card = cardNumber()
    const erased = await createCustomer(db, { identities: [{ kind: 'member_card', value: card }] })
    await eraseCustomer(db, erased.id)
    const gone = await cli(['customers', 'find', `member_card:${card}`])
    expect(gone.code).toBe(1)
    expect(gone.stdout).toBe('')
    expect(gone.stderr).toBe('error: this customer was erased on request\n')
  })
})
