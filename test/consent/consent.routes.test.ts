import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'

let k: TestKizuna
let adminKey: string
let posKey: string
beforeAll(async () => {
  k = await startTestKizuna()
  adminKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['admin'] })).key
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

  it('answers 400 naming the field and changes nothing; 404 for an unknown customer', async () => {
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
    expect((await get('not-a-uuid')).status).toBe(404)
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
  })
})
