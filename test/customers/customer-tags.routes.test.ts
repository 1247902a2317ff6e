import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { listCustomerTags } from '../../src/customers/customer-tag.repo.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { racingMerge } from '../support/locks.ts'
import { cardNumber, createCustomer, mergeInto } from './factories.ts'

let k: TestKizuna
let adminKey: string
let posKey: string
beforeAll(async () => {
  k = await startTestKizuna()
  adminKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['admin'] })).key
  posKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['pos'] })).key
})
afterAll(async () => {
  await k?.stopAll()
})

const url = (id: string, tag?: string) =>
  `${k.baseUrl}/api/customers/${id}/tags${tag === undefined ? '' : `/${encodeURIComponent(tag)}`}`
const call = (method: string, id: string, tag?: string, key = adminKey) =>
  fetch(url(id, tag), { method, headers: { authorization: `Bearer ${key}` } })
const list = (id: string, key?: string) => call('GET', id, undefined, key)
const add = (id: string, tag: string, key?: string) => call('PUT', id, tag, key)
const remove = (id: string, tag: string, key?: string) => call('DELETE', id, tag, key)

const storedTags = (customerId: string) => listCustomerTags(k.deps.db, customerId)

describe('admin tags API', () => {
  it('adds, lists (sorted) and removes tags, Japanese ones included, normalised', async () => {
    const c = await createCustomer(k.deps.db)
    expect(await (await list(c.id)).json()).toEqual({ customerId: c.id, tags: [] })

    const first = await add(c.id, 'ソファ購入')
    expect(first.status).toBe(200)
    expect(await first.json()).toEqual({ customerId: c.id, tags: ['ソファ購入'] })
    // Full-width letters, upper case and spaces around: the same tag as "vip".
    const second = await add(c.id, ' ＶＩＰ ')
    expect(await second.json()).toEqual({ customerId: c.id, tags: ['vip', 'ソファ購入'] })
    await add(c.id, 'garden/outdoor')
    const listed = await list(c.id)
    expect(listed.status).toBe(200)
    expect(await listed.json()).toEqual({
      customerId: c.id,
      tags: ['garden/outdoor', 'vip', 'ソファ購入'],
    })

    const removed = await remove(c.id, 'VIP')
    expect(removed.status).toBe(200)
    expect(await removed.json()).toEqual({
      customerId: c.id,
      tags: ['garden/outdoor', 'ソファ購入'],
    })
    expect(await storedTags(c.id)).toEqual(['garden/outdoor', 'ソファ購入'])
  })

  it('is idempotent: adding a tag twice keeps one, removing an absent tag is fine', async () => {
    const c = await createCustomer(k.deps.db)
    expect((await add(c.id, 'vip')).status).toBe(200)
    const again = await add(c.id, 'Vip')
    expect(again.status).toBe(200)
    expect(await again.json()).toEqual({ customerId: c.id, tags: ['vip'] })
    expect(await storedTags(c.id)).toEqual(['vip'])

    expect((await remove(c.id, 'vip')).status).toBe(200)
    const absent = await remove(c.id, 'vip')
    expect(absent.status).toBe(200)
    expect(await absent.json()).toEqual({ customerId: c.id, tags: [] })
  })

  it('refuses a bad tag with 400 naming the field and the rule, and changes nothing', async () => {
    const c = await createCustomer(k.deps.db)
    await add(c.id, 'vip')
    const cases: [string, RegExp, string[]?][] = [
      ['x'.repeat(51), /^tag: too long \(51 characters\): at most 50/],
      ['   ', /^tag: empty/],
      ['a,b', /^tag: contains a comma or semicolon/],
      ['a；b', /^tag: contains a comma or semicolon/],
      ['line\nbreak', /^tag: contains a control character/],
      // Read as "." and ".." (NFKC, trimmed): a path cannot carry those, so one stored could
      // never be removed again (DELETE …/tags/%2E is …/tags/ to a URL). Added only: removing
      // one is fine (one stored before they were refused is removed so).
      ['\uff0e', /^tag: is "\." or "\.\."/, ['PUT']],
      [' .. ', /^tag: is "\." or "\.\."/, ['PUT']],
    ]
    for (const [tag, message, methods = ['PUT', 'DELETE']] of cases) {
      for (const method of methods) {
        const res = await call(method, c.id, tag)
        expect(res.status, `${method} ${JSON.stringify(tag)}`).toBe(400)
        const error = await errorOf(res)
        expect(error.code).toBe('BAD_REQUEST')
        expect(error.message).toMatch(message)
      }
    }
    // 50 characters (code points, not UTF-16 units) are fine.
    expect((await add(c.id, '𠮷'.repeat(50))).status).toBe(200)
    expect(await storedTags(c.id)).toEqual(['vip', '𠮷'.repeat(50)])
  })

  it('refuses a tag holding an invisible formatting character (400 naming tag), changing nothing', async () => {
    const c = await createCustomer(k.deps.db)
    await add(c.id, 'vip')
    // Each looks like "vip" (or "pi v" turned around) and is another tag.
    for (const tag of [
      'vip\u200b',
      'v\u00adip',
      '\u202epiv',
      'vi\u2060p',
      'v\ufeffip',
      'vip\u200d',
    ]) {
      const res = await add(c.id, tag)
      expect(res.status, JSON.stringify(tag)).toBe(400)
      const error = await errorOf(res)
      expect(error).toMatchObject({ code: 'BAD_REQUEST', details: [{ field: 'tag' }] })
      expect(error.message).toBe('tag: contains an invisible formatting character')
    }
    expect(await storedTags(c.id)).toEqual(['vip'])
    // The joiner inside an emoji (a family, a heart on fire) is part of it.
    expect((await add(c.id, '👨‍👩‍👧')).status).toBe(200)
    expect((await add(c.id, '❤️‍🔥')).status).toBe(200)
    // One stored before they were refused is still removed.
    await k.deps.db
      .insertInto('customer_tag')
      .values({ customer_id: c.id, tag: 'vip\u200b' })
      .execute()
    expect((await remove(c.id, 'vip\u200b')).status).toBe(200)
    expect((await storedTags(c.id)).sort()).toEqual(['vip', '❤️‍🔥', '👨‍👩‍👧'].sort())
  })

  it('removes a "." or ".." stored before they were refused, named as a path can name it', async () => {
    const c = await createCustomer(k.deps.db)
    await k.deps.db
      .insertInto('customer_tag')
      .values(['.', '..', 'vip'].map((tag) => ({ customer_id: c.id, tag })))
      .execute()
    // "．" (full width) and " .. " are no dot segments to a URL, and read as "." and "..".
    const dot = await remove(c.id, '\uff0e')
    expect(dot.status).toBe(200)
    expect(await dot.json()).toEqual({ customerId: c.id, tags: ['..', 'vip'] })
    expect((await remove(c.id, ' .. ')).status).toBe(200)
    expect(await storedTags(c.id)).toEqual(['vip'])
  })

  it('refuses a tag whose percent-encoding does not decode (400 naming tag), changing nothing', async () => {
    const c = await createCustomer(k.deps.db)
    await add(c.id, 'vip')
    // A cut-off UTF-8 sequence, a lone continuation byte, a lone %: the path keeps them undecoded.
    for (const raw of ['%E0%A4%A', '%80', 'vip%', '%E3%81']) {
      for (const method of ['PUT', 'DELETE']) {
        const res = await fetch(`${url(c.id)}/${raw}`, {
          method,
          headers: { authorization: `Bearer ${adminKey}` },
        })
        expect(res.status, `${method} ${raw}`).toBe(400)
        const error = await errorOf(res)
        expect(error).toMatchObject({ code: 'BAD_REQUEST', details: [{ field: 'tag' }] })
        expect(error.message).toMatch(/^tag: /)
      }
    }
    expect(await storedTags(c.id)).toEqual(['vip'])
    // A % sent as %25 is a tag like any other.
    expect(await (await add(c.id, '100%')).json()).toMatchObject({ tags: ['100%', 'vip'] })
  })

  it('follows a merged id to the surviving customer, whose tags it shows and changes', async () => {
    const survivor = await createCustomer(k.deps.db)
    const merged = await createCustomer(k.deps.db)
    await add(survivor.id, 'vip')
    await mergeInto(k.deps.db, survivor.id, merged.id)
    expect(await (await list(merged.id)).json()).toEqual({
      customerId: survivor.id,
      tags: ['vip'],
    })
    expect(await (await add(merged.id, 'sofa')).json()).toEqual({
      customerId: survivor.id,
      tags: ['sofa', 'vip'],
    })
    expect(await storedTags(survivor.id)).toEqual(['sofa', 'vip'])
    expect(await storedTags(merged.id)).toEqual([])
    expect(await (await remove(merged.id, 'vip')).json()).toEqual({
      customerId: survivor.id,
      tags: ['sofa'],
    })
  })

  it('lists the tags of the survivor of a merge that commits while it looks', async () => {
    // The id led to a customer that a merge then moved away from before its tags were read:
    // the answer named the merged-away id, with no tags.
    const survivor = await createCustomer(k.deps.db)
    const merged = await createCustomer(k.deps.db)
    await add(survivor.id, 'vip')
    await add(merged.id, 'sofa')
    const listing = racingMerge(k.deps.db, { survivor: survivor.id, merged: merged.id }, () =>
      list(merged.id),
    )
    const res = await listing
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ customerId: survivor.id, tags: ['sofa', 'vip'] })
  })

  it('answers 410 for an erased customer and 404 for an unknown one, changing nothing', async () => {
    const erased = await createCustomer(k.deps.db)
    await eraseCustomer(k.deps.db, erased.id)
    for (const res of [
      await list(erased.id),
      await add(erased.id, 'vip'),
      await remove(erased.id, 'vip'),
    ]) {
      expect(res.status).toBe(410)
      expect((await errorOf(res)).message).toContain('erased')
    }
    expect(await storedTags(erased.id)).toEqual([])

    const id = randomUUID()
    for (const res of [await list(id), await add(id, 'vip'), await remove(id, 'vip')]) {
      expect(res.status).toBe(404)
    }
  })

  it('answers 400 naming id for one that is no customer id, without echoing it', async () => {
    // Pasted in the wrong field: it may be personal data, which the answer does not repeat.
    for (const id of ['not-a-uuid', 'hanako@example.jp', '090-1234-5678']) {
      for (const res of [await list(id), await add(id, 'vip'), await remove(id, 'vip')]) {
        expect(res.status, id).toBe(400)
        const text = await res.text()
        expect(text, id).not.toContain(id)
        expect(JSON.parse(text).error, id).toMatchObject({
          code: 'BAD_REQUEST',
          message: 'id: not a customer id (a UUID)',
          details: [{ field: 'id' }],
        })
      }
    }
  })

  it('needs an admin key: a pos key gets 403 and changes nothing', async () => {
    const c = await createCustomer(k.deps.db)
    expect((await list(c.id, posKey)).status).toBe(403)
    expect((await add(c.id, 'vip', posKey)).status).toBe(403)
    expect(await storedTags(c.id)).toEqual([])
    await add(c.id, 'vip')
    expect((await remove(c.id, 'vip', posKey)).status).toBe(403)
    expect(await storedTags(c.id)).toEqual(['vip'])
  })
})

describe('GET /api/customers?identity= (profile)', () => {
  it('includes the tags, sorted', async () => {
    const card = cardNumber()
    const c = await createCustomer(k.deps.db, {
      identities: [{ kind: 'member_card', value: card }],
    })
    await add(c.id, 'ソファ購入')
    await add(c.id, 'vip')
    const res = await fetch(`${k.baseUrl}/api/customers?identity=member_card:${card}`, {
      headers: { authorization: `Bearer ${adminKey}` },
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ id: c.id, tags: ['vip', 'ソファ購入'] })
  })
})
