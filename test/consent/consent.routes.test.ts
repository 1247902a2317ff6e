import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { racingMerge } from '../support/locks.ts'

let k: TestKizuna
let adminKey: string
let adminKeyId: string
let posKey: string
beforeAll(async () => {
  k = await startTestKizuna()
  const admin = await createApiKey(k.deps.db, {
    storeId: null,
    scopes: ['admin'],
    label: 'back office',
  })
  adminKey = admin.key
  adminKeyId = admin.id
  posKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['import'] })).key
})
afterAll(async () => {
  await k?.stopAll()
})

const url = (id: string) => `${k.baseUrl}/api/customers/${id}/consent`
const get = (id: string, key = adminKey) =>
  fetch(url(id), { headers: { authorization: `Bearer ${key}` } })
const put = (id: string, body: unknown, key = adminKey) =>
  fetch(url(id), {
    method: 'PUT',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })

const history = (id: string, query = '', key = adminKey) =>
  fetch(`${url(id)}/history${query}`, { headers: { authorization: `Bearer ${key}` } })

type HistoryBody = {
  customerId: string
  history: Record<string, unknown>[]
  next: string | null
}

/** Two customers, the second (to merge into the first) opted out of marketing on LINE by staff. */
async function survivorAndOptedOut() {
  const survivor = await createCustomer(k.deps.db)
  const merged = await createCustomer(k.deps.db)
  await put(merged.id, { category: 'marketing', channel: 'line', granted: false })
  return { survivor, merged }
}

/** The history a survivor of `survivorAndOptedOut` answers: its merge entry, then the opt-out. */
function expectMergedHistory(body: HistoryBody, survivorId: string, mergedId: string) {
  expect(body.customerId).toBe(survivorId)
  expect(body.history.map((r) => [r.customerId, r.channel, r.granted, r.source])).toEqual([
    [survivorId, 'line', false, 'merge'],
    [mergedId, 'line', false, 'admin'],
  ])
}

describe('admin consent API', () => {
  it('GET shows the defaults: transactional everywhere, marketing on LINE only', async () => {
    const c = await createCustomer(k.deps.db)
    const res = await get(c.id)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      customerId: c.id,
      consent: {
        transactional: { line: true, email: true },
        marketing: { line: true, email: false },
      },
    })
  })

  it('PUT grants or revokes one category on one channel and answers the new state', async () => {
    const c = await createCustomer(k.deps.db)
    const granted = await put(c.id, { category: 'marketing', channel: 'email', granted: true })
    expect(granted.status).toBe(200)
    expect(await granted.json()).toMatchObject({
      consent: { marketing: { line: true, email: true } },
    })
    const revoked = await put(c.id, { category: 'transactional', channel: 'line', granted: false })
    expect(await revoked.json()).toMatchObject({
      consent: {
        transactional: { line: false, email: true },
        marketing: { line: true, email: true },
      },
    })
    const row = await k.deps.db
      .selectFrom('consent')
      .select(['granted', 'source'])
      .where('customer_id', '=', c.id)
      .where('category', '=', 'transactional')
      .where('channel', '=', 'line')
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ granted: false, source: 'admin' })
    expect(await (await get(c.id)).json()).toMatchObject({
      consent: { transactional: { line: false } },
    })
  })

  it('follows a merged customer to the survivor', async () => {
    const survivor = await createCustomer(k.deps.db)
    const merged = await createCustomer(k.deps.db, { marketingConsent: false })
    await k.deps.db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' }),
      )
    const body = (await (await get(merged.id)).json()) as { customerId: string }
    expect(body).toMatchObject({
      customerId: survivor.id,
      consent: { marketing: { line: false, email: false } },
    })
  })

  it('answers for the survivor of a merge that commits while it looks', async () => {
    // The id was found, then a merge moved it away before its consent was read: the answer
    // named the merged-away id with the defaults (its rows deleted by the merge), marketing on
    // LINE for someone who had opted out.
    const { survivor, merged } = await survivorAndOptedOut()
    const res = await racingMerge(k.deps.db, { survivor: survivor.id, merged: merged.id }, () =>
      get(merged.id),
    )
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      customerId: survivor.id,
      consent: {
        transactional: { line: true, email: true },
        marketing: { line: false, email: false },
      },
    })
  })

  it('answers 400 naming the field (an id that is no customer id too) and changes nothing; 404 for an unknown customer', async () => {
    const c = await createCustomer(k.deps.db)
    const badChannel = await put(c.id, { category: 'marketing', channel: 'sms', granted: false })
    expect(badChannel.status).toBe(400)
    const error = await errorOf(badChannel)
    expect(error.code).toBe('BAD_REQUEST')
    expect(error.message).toMatch(/^channel: use one of line, email/)

    const noGranted = await put(c.id, { category: 'marketing', channel: 'line' })
    expect((await errorOf(noGranted)).message).toMatch(/^granted: /)
    const badCategory = await put(c.id, { category: 'ads', channel: 'line', granted: true })
    expect((await errorOf(badCategory)).message).toMatch(/^category: /)
    const notJson = await put(c.id, '{nope')
    expect(notJson.status).toBe(400)
    expect(await k.deps.db.selectFrom('consent').where('customer_id', '=', c.id).execute()).toEqual(
      [],
    )

    const unknown = await put(randomUUID(), {
      category: 'marketing',
      channel: 'line',
      granted: false,
    })
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).code).toBe('NOT_FOUND')
    expect((await get(randomUUID())).status).toBe(404)
    const malformed = await get('hanako@example.jp')
    expect(malformed.status).toBe(400)
    const text = await malformed.text()
    expect(text).not.toContain('hanako')
    expect(JSON.parse(text).error).toMatchObject({ details: [{ field: 'id' }] })
  })

  it('answers 410 for an erased customer, as the tags and the lookup do, changing nothing', async () => {
    const erased = await createCustomer(k.deps.db)
    await eraseCustomer(k.deps.db, erased.id)
    const rowsBefore = await k.deps.db
      .selectFrom('consent')
      .selectAll()
      .where('customer_id', '=', erased.id)
      .execute()
    for (const res of [
      await get(erased.id),
      await put(erased.id, { category: 'marketing', channel: 'email', granted: true }),
      await put(erased.id, { category: 'transactional', channel: 'line', granted: false }),
    ]) {
      expect(res.status).toBe(410)
      expect((await errorOf(res)).message).toContain('erased')
    }
    expect(
      await k.deps.db
        .selectFrom('consent')
        .selectAll()
        .where('customer_id', '=', erased.id)
        .execute(),
    ).toEqual(rowsBefore)
  })

  it('needs an admin key', async () => {
    const c = await createCustomer(k.deps.db)
    expect((await get(c.id, posKey)).status).toBe(403)
    expect(
      (await put(c.id, { category: 'marketing', channel: 'line', granted: false }, posKey)).status,
    ).toBe(403)
    expect((await fetch(url(c.id))).status).toBe(401)
    expect((await history(c.id, '', posKey)).status).toBe(403)
    expect((await fetch(`${url(c.id)}/history`)).status).toBe(401)
  })
})

describe('GET /api/customers/:id/consent/history', () => {
  it('lists who changed what and when, newest first: the key that made a PUT, and re-affirmed opt-outs', async () => {
    const c = await createCustomer(k.deps.db)
    const body = (granted: boolean) => ({ category: 'marketing', channel: 'email', granted })
    // Each twice: a grant repeated leaves the standing one (and records nothing), an opt-out
    // repeated is decided again (and recorded).
    for (const granted of [true, true, false, false]) {
      expect((await put(c.id, body(granted))).status).toBe(200)
    }
    const res = await history(c.id)
    expect(res.status).toBe(200)
    const { customerId, history: rows, next } = (await res.json()) as HistoryBody
    expect(customerId).toBe(c.id)
    expect(next).toBeNull()
    const prefix = (
      await k.deps.db
        .selectFrom('api_key')
        .select('prefix')
        .where('id', '=', adminKeyId)
        .executeTakeFirstOrThrow()
    ).prefix
    const entry = (granted: boolean, previous: boolean) => ({
      id: expect.any(String),
      customerId: c.id,
      category: 'marketing',
      channel: 'email',
      granted,
      previous,
      source: 'admin',
      apiKey: { id: adminKeyId, prefix, label: 'back office' },
      decidedAt: null,
      recordedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    // The re-affirmed opt-out first (newest), the opt-out, then the grant over the default (no
    // marketing email).
    expect(rows).toEqual([entry(false, false), entry(false, true), entry(true, false)])
    const times = rows.map((r) => Date.parse(r.recordedAt as string))
    expect(times).toEqual([...times].sort((a, b) => b - a))
  })

  it('pages with limit and next, and answers 400 for a bad limit or cursor', async () => {
    const c = await createCustomer(k.deps.db)
    for (const granted of [true, false, true]) {
      await put(c.id, { category: 'marketing', channel: 'email', granted })
    }
    const first = (await (await history(c.id, '?limit=2')).json()) as HistoryBody
    expect(first.history.map((r) => r.granted)).toEqual([true, false])
    expect(first.next).toBe(first.history[1]?.id)
    const second = (await (
      await history(c.id, `?limit=2&before=${first.next}`)
    ).json()) as HistoryBody
    expect(second.history.map((r) => [r.granted, r.previous])).toEqual([[true, false]])
    expect(second.next).toBeNull()
    for (const query of [
      '?limit=0',
      '?limit=1001',
      '?limit=x',
      '?before=nope',
      '?limit=%E0%A4%A',
    ]) {
      const res = await history(c.id, query)
      expect(res.status).toBe(400)
      expect((await errorOf(res)).message).toMatch(/^(limit|before): /)
    }
  })

  it("answers 400 naming before for a cursor that is no entry of this customer's history", async () => {
    const c = await createCustomer(k.deps.db)
    const other = await createCustomer(k.deps.db)
    await put(other.id, { category: 'marketing', channel: 'email', granted: true })
    const othersEntry = ((await (await history(other.id)).json()) as HistoryBody).history[0]?.id
    expect(othersEntry).toEqual(expect.any(String))
    for (const before of [randomUUID(), othersEntry]) {
      const res = await history(c.id, `?before=${before}`)
      expect(res.status).toBe(400)
      expect((await errorOf(res)).message).toMatch(/^before: /)
    }
  })

  it('pages on from an entry of a customer merged into this one', async () => {
    const { survivor, merged } = await survivorAndOptedOut()
    const mergedEntry = ((await (await history(merged.id)).json()) as HistoryBody).history[0]?.id
    await k.deps.db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' }),
      )
    const res = await history(survivor.id, `?before=${mergedEntry}`)
    expect(res.status).toBe(200)
    expect(((await res.json()) as HistoryBody).history).toEqual([])
  })

  it("follows a merged id to the survivor, whose history includes the merged customer's", async () => {
    const { survivor, merged } = await survivorAndOptedOut()
    await k.deps.db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' }),
      )
    expectMergedHistory(
      (await (await history(merged.id)).json()) as HistoryBody,
      survivor.id,
      merged.id,
    )
  })

  it('answers for the survivor of a merge that commits while it looks, with both histories', async () => {
    // Read apart, the answer named the merged-away id with its own entries only.
    const { survivor, merged } = await survivorAndOptedOut()
    const res = await racingMerge(k.deps.db, { survivor: survivor.id, merged: merged.id }, () =>
      history(merged.id),
    )
    expect(res.status).toBe(200)
    expectMergedHistory((await res.json()) as HistoryBody, survivor.id, merged.id)
  })

  it('still answers for an erased customer: the record of consent outlives the erasure', async () => {
    const c = await createCustomer(k.deps.db)
    await put(c.id, { category: 'marketing', channel: 'email', granted: true })
    await eraseCustomer(k.deps.db, c.id)
    const res = await history(c.id)
    expect(res.status).toBe(200)
    const rows = ((await res.json()) as HistoryBody).history
    expect(rows.map((r) => r.source).sort()).toEqual(['admin', 'erasure', 'erasure'])
    expect((await history(randomUUID())).status).toBe(404)
  })
})
