import { randomUUID } from 'node:crypto'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { loadEnv } from '../../src/config/env.ts'
import {
  copyConsents,
  loadConsent,
  loadConsents,
  mergeConsents,
  setConsent,
  setMarketingConsent,
} from '../../src/consent/consent.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { createDb, type Database, type DB } from '../../src/platform/db.ts'
import { unsubscribeByEmail } from '../../src/tracking/tracking.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { createDelivery } from '../tracking/support.ts'

let db: Database
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }), { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

const DEFAULTS = {
  transactional: { line: true, email: true },
  marketing: { line: true, email: false },
}

const rowsOf = (customerId: string) =>
  db
    .selectFrom('consent')
    .select(['category', 'channel', 'granted', 'source'])
    .where('customer_id', '=', customerId)
    .orderBy('category')
    .orderBy('channel')
    .execute()

describe('consent defaults and loadConsents', () => {
  it('gives every id (known or not) an entry: rows over the defaults', async () => {
    const plain = await createCustomer(db)
    const optedOut = await createCustomer(db, { marketingConsent: false })
    const unknown = randomUUID()
    const consents = await loadConsents(db, [plain.id, optedOut.id, unknown, plain.id])
    expect(consents.size).toBe(3)
    expect(consents.get(plain.id)).toEqual(DEFAULTS)
    expect(consents.get(unknown)).toEqual(DEFAULTS)
    expect(consents.get(optedOut.id)).toEqual({
      transactional: { line: true, email: true },
      marketing: { line: false, email: false },
    })
    expect(await loadConsents(db, [])).toEqual(new Map())
  })

  it('loads hundreds of customers in one query', async () => {
    const ids = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const c = await createCustomer(db, i % 3 === 0 ? { marketingConsent: true } : {})
        return c.id
      }),
    )
    const queries: string[] = []
    const counting = new Kysely<DB>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: TEST_DATABASE_URL }) }),
      log: (event) => {
        queries.push(event.query.sql)
      },
    })
    const consents = await loadConsents(counting, ids).finally(() => counting.destroy())
    expect(queries).toHaveLength(1)
    expect(consents.size).toBe(300)
    expect(ids.filter((id) => consents.get(id)?.marketing.email)).toHaveLength(100)
  })
})

describe('setConsent', () => {
  it('upserts one (category, channel), revokes transactional by row, and follows a merge', async () => {
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db)
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' }),
      )
    const result = await setConsent(db, merged.id, {
      category: 'transactional',
      channel: 'email',
      granted: false,
      source: 'admin',
    })
    expect(result.customerId).toBe(survivor.id)
    expect(result.consent.transactional).toEqual({ line: true, email: false })
    expect(await rowsOf(merged.id)).toEqual([])
    expect(await rowsOf(survivor.id)).toEqual([
      { category: 'transactional', channel: 'email', granted: false, source: 'admin' },
    ])

    // The same value again changes nothing (the row keeps its source).
    await setConsent(db, survivor.id, {
      category: 'transactional',
      channel: 'email',
      granted: false,
      source: 'line-postback',
    })
    expect((await rowsOf(survivor.id))[0]?.source).toBe('admin')
  })

  it('refuses an unknown customer, and a grant to an erased one', async () => {
    const change = { category: 'marketing', channel: 'email', granted: true, source: 'admin' }
    await expect(setConsent(db, randomUUID(), change as never)).rejects.toMatchObject({
      code: 'NOT_FOUND',
    })
    const erased = await createCustomer(db)
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', erased.id)
      .execute()
    await expect(setConsent(db, erased.id, change as never)).rejects.toMatchObject({
      code: 'GONE',
    })
  })
})

describe('an import never re-grants a refusal the person or staff repeated over its own', () => {
  it('a one-click unsubscribe over an import\'s "no" takes the refusal over: a later "yes" leaves it', async () => {
    const c = await createCustomer(db, { email: `${randomUUID()}@example.jp` })
    const importing = (granted: boolean) =>
      db.transaction().execute((trx) => setMarketingConsent(trx, c.id, granted, 'import'))
    await importing(true)
    await importing(false)
    // The person unsubscribes from a marketing email: the row already says no (the import's).
    await unsubscribeByEmail(db, {
      deliveryId: await createDelivery(db, c.id),
      customerId: c.id,
      category: 'marketing',
    })
    expect(await rowsOf(c.id)).toEqual([
      { category: 'marketing', channel: 'email', granted: false, source: 'email-unsubscribe' },
      { category: 'marketing', channel: 'line', granted: false, source: 'import' },
    ])
    // The shop's next file says yes: LINE (the import's own refusal) is granted, email is not.
    await importing(true)
    expect((await loadConsent(db, c.id)).marketing).toEqual({ line: true, email: false })
    const email = (await historyOf(c.id)).filter((r) => r.channel === 'email')
    expect(email.map((r) => [r.granted, r.previous, r.source])).toEqual([
      [true, false, 'import'],
      [false, true, 'import'],
      [false, false, 'email-unsubscribe'],
    ])
    // The same unsubscribe again decides nothing new.
    await setConsent(db, c.id, {
      category: 'marketing',
      channel: 'email',
      granted: false,
      source: 'email-unsubscribe',
    })
    expect((await historyOf(c.id)).filter((r) => r.channel === 'email')).toHaveLength(3)
  })
})

describe('mergeConsents', () => {
  it('keeps the most restrictive value per category and channel, defaults counting', async () => {
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db)
    // Survivor granted marketing email; merged has the default (not granted) → not granted.
    await setConsent(db, survivor.id, {
      category: 'marketing',
      channel: 'email',
      granted: true,
      source: 'admin',
    })
    // Merged revoked transactional LINE; survivor has the default (granted) → revoked.
    await setConsent(db, merged.id, {
      category: 'transactional',
      channel: 'line',
      granted: false,
      source: 'line-postback',
    })
    await db.transaction().execute((trx) => mergeConsents(trx, survivor.id, merged.id))
    expect(await loadConsent(db, survivor.id)).toEqual({
      transactional: { line: false, email: true },
      marketing: { line: true, email: false },
    })
    expect(await rowsOf(merged.id)).toEqual([])
  })

  it('runs as part of mergeCustomers', async () => {
    const survivor = await createCustomer(db, { marketingConsent: true })
    const merged = await createCustomer(db)
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' }),
      )
    // The merged customer had the default: marketing by LINE yes, by email no.
    expect((await loadConsent(db, survivor.id)).marketing).toEqual({ line: true, email: false })
  })

  /** Every column of the customer's consent rows that decides what a later write does. */
  const decisionsOf = (customerId: string) =>
    db
      .selectFrom('consent')
      .select(['category', 'channel', 'granted', 'source', 'decided_at', 'updated_at'])
      .where('customer_id', '=', customerId)
      .orderBy('category')
      .orderBy('channel')
      .execute()

  const merge = (survivorId: string, mergedId: string) =>
    db.transaction().execute((trx) => mergeConsents(trx, survivorId, mergedId))

  const importing = (customerId: string, granted: boolean) =>
    db.transaction().execute((trx) => setMarketingConsent(trx, customerId, granted, 'import'))

  /** Backdates a customer's consent rows (their last change) by `ms`. */
  const changedAgo = (customerId: string, ms: number) =>
    db
      .updateTable('consent')
      .set({ updated_at: new Date(Date.now() - ms) })
      .where('customer_id', '=', customerId)
      .execute()

  it("between two refusals keeps the person's or staff's over an import's or the default, whichever survives", async () => {
    const email = { category: 'marketing', channel: 'email' } as const
    for (const unsubscribedSurvives of [false, true]) {
      // One customer with an import's "no", the other with the person's unsubscribe.
      const imported = await createCustomer(db, { marketingConsent: false })
      const unsubscribed = await createCustomer(db)
      await setConsent(db, unsubscribed.id, {
        ...email,
        granted: false,
        source: 'email-unsubscribe',
      })
      const [survivor, merged] = unsubscribedSurvives
        ? [unsubscribed, imported]
        : [imported, unsubscribed]
      const before = (await decisionsOf(unsubscribed.id))[0]
      await merge(survivor.id, merged.id)
      const rows = await decisionsOf(survivor.id)
      expect(rows.find((r) => r.channel === 'email')).toEqual(before)
      // The next file saying yes grants what the import itself refused, not the unsubscribe.
      await importing(survivor.id, true)
      expect((await loadConsent(db, survivor.id)).marketing).toEqual({ line: true, email: false })
    }

    // The default (no marketing email) is no decision: the merged customer's refusal is kept.
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db)
    await setConsent(db, merged.id, { ...email, granted: false, source: 'admin' })
    await merge(survivor.id, merged.id)
    expect(await rowsOf(survivor.id)).toEqual([{ ...email, granted: false, source: 'admin' }])
    expect((await historyOf(survivor.id)).map((r) => [r.granted, r.previous, r.source])).toEqual([
      [false, false, 'merge'],
    ])
    await importing(survivor.id, true)
    expect((await loadConsent(db, survivor.id)).marketing.email).toBe(false)
  })

  it('between two refusals keeps the later, so an opt-in tapped between them stays overtaken', async () => {
    const line = { category: 'marketing', channel: 'line' } as const
    const hour = 3_600_000
    const tapped = (ago: number) => {
      const at = new Date(Date.now() - ago)
      return { at, receivedAt: at }
    }
    for (const laterSurvives of [false, true]) {
      // The person opted out on LINE three hours ago; staff opted the other record out an hour ago.
      const tappedOut = await createCustomer(db)
      await setConsent(db, tappedOut.id, {
        ...line,
        granted: false,
        source: 'line-postback',
        decided: tapped(3 * hour),
      })
      const staffOut = await createCustomer(db)
      await setConsent(db, staffOut.id, { ...line, granted: false, source: 'admin' })
      await changedAgo(staffOut.id, hour)
      const later = (await decisionsOf(staffOut.id))[0]
      const [survivor, merged] = laterSurvives ? [staffOut, tappedOut] : [tappedOut, staffOut]
      await merge(survivor.id, merged.id)
      expect(await decisionsOf(survivor.id)).toEqual([later])
      // An opt-in tapped two hours ago (after the person's opt-out, before staff's), processed
      // only now, does not undo staff's later opt-out.
      await setConsent(db, survivor.id, {
        ...line,
        granted: true,
        source: 'line-postback',
        decided: tapped(2 * hour),
      })
      expect((await loadConsent(db, survivor.id)).marketing.line).toBe(false)
    }
  })

  it("takes the merged customer's refusal over the survivor's grant as it was decided", async () => {
    // The survivor has the default (marketing on LINE); the merged customer's import said no.
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db, { marketingConsent: false })
    // (By email both refuse; the import's refusal is a decision, the default is none.)
    const refusals = await decisionsOf(merged.id)
    await merge(survivor.id, merged.id)
    expect(await decisionsOf(survivor.id)).toEqual(refusals)
    const history = await historyOf(survivor.id)
    expect(history.map((r) => [r.channel, r.granted, r.previous, r.source]).sort()).toEqual([
      ['email', false, false, 'merge'],
      ['line', false, true, 'merge'],
    ])
    // As the other way round (the import's customer surviving), the next file saying yes grants
    // what only an import refused.
    await importing(survivor.id, true)
    expect((await loadConsent(db, survivor.id)).marketing).toEqual({ line: true, email: true })
    expect(await rowsOf(merged.id)).toEqual([])
    // A grant over the survivor's grant changes nothing: its row stays as it was.
    const other = await createCustomer(db, { marketingConsent: true })
    const kept = await decisionsOf(survivor.id)
    await merge(survivor.id, other.id)
    expect(await decisionsOf(survivor.id)).toEqual(kept)
  })
})

/** The customer's consent history rows, oldest first, without their ids and record times. */
const historyOf = async (customerId: string) =>
  (
    await db
      .selectFrom('consent_history')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('recorded_at')
      .orderBy('id')
      .execute()
  ).map(({ id, customer_id, recorded_at, ...row }) => {
    expect([id, customer_id, recorded_at]).toEqual([
      expect.any(String),
      customerId,
      expect.any(Date),
    ])
    return row
  })

describe('consent history', () => {
  it('records each write with the value before it, its source and key; none for a write that changes nothing', async () => {
    const c = await createCustomer(db)
    const key = await createApiKey(db, { storeId: null, scopes: ['admin'] })
    const email = { category: 'marketing', channel: 'email' } as const
    await setConsent(db, c.id, { ...email, granted: true, source: 'admin', apiKeyId: key.id })
    // Staff saying yes again change nothing and record nothing: the grant stands as first made.
    await setConsent(db, c.id, { ...email, granted: true, source: 'admin', apiKeyId: key.id })
    await setConsent(db, c.id, { ...email, granted: false, source: 'email-unsubscribe' })
    // Staff saying no where the row says no decide it again: a row, the value unchanged.
    await setConsent(db, c.id, { ...email, granted: false, source: 'admin', apiKeyId: key.id })
    // An import withdrawing marketing: LINE changes (from the default), email already holds it.
    await db.transaction().execute((trx) => setMarketingConsent(trx, c.id, false, 'import'))
    // Run again, it changes nothing and records nothing.
    await db.transaction().execute((trx) => setMarketingConsent(trx, c.id, false, 'import'))
    const row = (channel: string, granted: boolean, previous: boolean, source: string) => ({
      category: 'marketing',
      channel,
      granted,
      previous,
      source,
      api_key_id: source === 'admin' ? key.id : null,
      decided_at: null,
    })
    expect(await historyOf(c.id)).toEqual([
      row('email', true, false, 'admin'),
      row('email', false, true, 'email-unsubscribe'),
      row('email', false, false, 'admin'),
      row('line', false, true, 'import'),
    ])
  })

  it('chains the values of writes made at once: each row replaced the one before it', async () => {
    const c = await createCustomer(db)
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        setConsent(db, c.id, {
          category: 'marketing',
          channel: 'email',
          granted: i % 2 === 0,
          source: 'admin',
        }),
      ),
    )
    const history = await historyOf(c.id)
    // Each staff withdrawal is recorded (decided again over a withdrawal too); a grant only
    // where it changed the value (a grant over a grant leaves the row alone).
    expect(history.filter((r) => !r.granted)).toHaveLength(6)
    expect(history.filter((r) => r.granted).every((r) => r.previous === false)).toBe(true)
    expect(history.map((r) => r.previous)).toEqual([
      false,
      ...history.slice(0, -1).map((r) => r.granted),
    ])
    expect((await loadConsent(db, c.id)).marketing.email).toBe(history.at(-1)?.granted)
  })

  it('merges: the survivor records the restrictive values as merge; each keeps its own rows', async () => {
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db)
    await setConsent(db, merged.id, {
      category: 'transactional',
      channel: 'line',
      granted: false,
      source: 'admin',
    })
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' }),
      )
    expect(await historyOf(survivor.id)).toEqual([
      {
        category: 'transactional',
        channel: 'line',
        granted: false,
        previous: true,
        source: 'merge',
        api_key_id: null,
        decided_at: null,
      },
    ])
    // The merged customer's rows are gone, its history stays (shown with the survivor's).
    expect(await rowsOf(merged.id)).toEqual([])
    expect(await historyOf(merged.id)).toHaveLength(1)
  })

  it('records the rows an unlink copies to the new customer as unlink, with their decision time', async () => {
    const from = await createCustomer(db)
    const tappedAt = new Date('2026-12-01T10:00:00Z')
    await setConsent(db, from.id, {
      category: 'marketing',
      channel: 'line',
      granted: false,
      source: 'line-postback',
      decided: { at: tappedAt, receivedAt: new Date() },
    })
    const to = await createCustomer(db)
    await db.transaction().execute((trx) => copyConsents(trx, from.id, to.id))
    expect(await rowsOf(to.id)).toEqual([
      { category: 'marketing', channel: 'line', granted: false, source: 'line-postback' },
    ])
    expect(await historyOf(to.id)).toEqual([
      {
        category: 'marketing',
        channel: 'line',
        granted: false,
        previous: true,
        source: 'unlink',
        api_key_id: null,
        decided_at: tappedAt,
      },
    ])
  })

  it("an unlink's copies keep the time of the change they copy: an opt-out tapped since still applies", async () => {
    const from = await createCustomer(db)
    const line = { category: 'marketing', channel: 'line' } as const
    // Staff granted marketing on LINE an hour ago.
    await setConsent(db, from.id, { ...line, granted: false, source: 'admin' })
    await setConsent(db, from.id, { ...line, granted: true, source: 'admin' })
    const grantedAt = new Date(Date.now() - 3_600_000)
    await db
      .updateTable('consent')
      .set({ updated_at: grantedAt })
      .where('customer_id', '=', from.id)
      .execute()
    const to = await createCustomer(db)
    await db.transaction().execute((trx) => copyConsents(trx, from.id, to.id))
    const copied = await db
      .selectFrom('consent')
      .select('updated_at')
      .where('customer_id', '=', to.id)
      .executeTakeFirstOrThrow()
    expect(copied.updated_at).toEqual(grantedAt)
    // The person opted out on LINE a minute before the unlink; the postback is processed after.
    const tapped = new Date(Date.now() - 60_000)
    await setConsent(db, to.id, {
      ...line,
      granted: false,
      source: 'line-postback',
      decided: { at: tapped, receivedAt: tapped },
    })
    expect((await loadConsent(db, to.id)).marketing.line).toBe(false)
  })

  it('an erasure records its revoke and keeps the history (it holds no personal data)', async () => {
    const c = await createCustomer(db, { email: `${randomUUID()}@example.jp` })
    await setConsent(db, c.id, {
      category: 'marketing',
      channel: 'email',
      granted: true,
      source: 'admin',
    })
    await eraseCustomer(db, c.id)
    const [granted, ...erased] = await historyOf(c.id)
    expect(granted).toMatchObject({ channel: 'email', granted: true, source: 'admin' })
    expect(erased.map((r) => [r.channel, r.granted, r.previous, r.source]).sort()).toEqual([
      ['email', false, true, 'erasure'],
      ['line', false, true, 'erasure'],
    ])
  })
})
