import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { setConsent } from '../../src/consent/consent.service.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { createLineLimiters, messageVarsLoaders } from '../../src/main/processors.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import type { DeliveryIntent } from '../../src/messaging/delivery.service.ts'
import { SENDING_LEASE_SECONDS } from '../../src/messaging/delivery-claim.repo.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import { REPLY_OUTCOME_UNKNOWN } from '../../src/messaging/outcome-unknown.ts'
import type { Deps } from '../../src/platform/deps.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { insertFriend } from '../richmenu/richmenu-link-fixtures.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'
import { deliveryRows, MULTICAST, PUSH, QUOTA_EXCEEDED, SAMPLE } from './support.ts'

const REPLY = '/v2/bot/message/reply'
/**
 * How long the stand-in keeps job A's reply waiting (job B claims meanwhile), and job B's call
 * (A ends meanwhile, while B holds its rows).
 */
const A_HELD_MS = 3_000
const B_HELD_MS = 6_000

const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let line: LinePlatform
beforeAll(async () => {
  // Its own database and no workers: the test plays them.
  const started = await startPrivateDeps(cleanups, { QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '0' })
  deps = started.deps
  line = started.line
})
beforeEach(() => {
  line.clearFailures()
})
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** Each worker has its own tools; the real lease (A's claim is moved back past it). */
function sendTools(): SendTools {
  return {
    // No SMTP_URL: LINE only.
    mailer: createMailer(deps.env, deps.db, { sandbox: false }),
    limiters: createLineLimiters(deps),
    loaders: messageVarsLoaders(deps.env),
  }
}

/** The send job run as a worker runs it, to its end (a job leaving rows for a retry throws). */
function sendJob(ids: string[]): Promise<unknown> {
  const job = createSendDeliveries(sendTools())
  const ctx = { job: {} as never, worker: {} as never, token: 't' }
  return job.run(deps, { deliveryIds: ids }, ctx).catch((error: unknown) => error)
}

type Person = { userId: string; customerId: string; lineUserId: string }

async function friend(): Promise<Person> {
  const user = line.users.create()
  await line.users.follow(user.userId)
  const { customerId, lineUserId } = await insertFriend(deps, { lineUid: user.userId })
  return { userId: user.userId, customerId, lineUserId }
}

/** Deliveries of the same campaign-sample message, one to each person (a multicast's content). */
async function sameMessage(
  to: Person[],
  opts: { kind?: string; category?: 'transactional' | 'marketing' } = {},
): Promise<string[]> {
  const intents: DeliveryIntent[] = to.map((p) => ({
    dedupeKey: `lease-test:${randomUUID()}`,
    kind: opts.kind ?? 'notice',
    category: opts.category ?? 'transactional',
    customerId: p.customerId,
    content: { templateId: 'campaign-sample', vars: SAMPLE },
  }))
  return (await insertDeliveries(deps.db, intents)).map((r) => r.id)
}

/** An answer to the person's message, by reply with this token while it is fresh. */
async function answer(to: Person, token = randomUUID().replaceAll('-', '')): Promise<string> {
  const [row] = await insertDeliveries(deps.db, [
    {
      dedupeKey: `lease-test:${randomUUID()}`,
      kind: 'answer',
      category: 'transactional',
      customerId: to.customerId,
      content: { messages: [{ type: 'text', text: 'ご連絡ありがとうございます' }] },
      reply: { token, expiresAt: new Date(Date.now() + 60_000), lineUserId: to.lineUserId },
    },
  ])
  return row!.id
}

/**
 * An answer whose reply the stand-in keeps waiting, then refuses the token (nothing sent: the
 * job pushes it instead).
 */
async function heldReply(to: Person, heldMs = A_HELD_MS): Promise<string> {
  line.failNext({
    method: 'POST',
    path: REPLY,
    timeoutMs: heldMs,
    status: 400,
    body: { message: 'Invalid reply token' },
  })
  return answer(to)
}

/**
 * Job A, holding these rows, waits for LINE's answer to its reply; meanwhile its lease runs
 * out on `takenOver` (their claim is moved back past it), `meanwhile` happens, and job B claims
 * `bRows` with an answer of its own, whose reply LINE keeps waiting longer: A ends while B
 * still holds its rows. Returns once B has ended too.
 */
async function outlivedLease(
  aRows: string[],
  takenOver: string[],
  { bRows = takenOver, meanwhile = async () => {} } = {},
) {
  const repliesBefore = line.requestsTo('POST', REPLY).length
  const a = sendJob(aRows)
  const replyOf = (job: number) =>
    eventually(() => {
      const r = line.requestsTo('POST', REPLY)[repliesBefore + job]
      expect(r).toBeDefined()
      return r!
    })
  const aReply = await replyOf(0)
  const lapsed = SENDING_LEASE_SECONDS + 60
  await sql`update delivery set updated_at = now() - make_interval(secs => ${lapsed})
    where id = any(${takenOver}::uuid[])`.execute(deps.db)
  await meanwhile()
  const b = sendJob([...bRows, await heldReply(await friend(), B_HELD_MS)])
  const bReply = await replyOf(1)
  // B claimed while A still waited for its reply, and still holds its rows when A ends.
  expect(aReply.status).toBe(0)
  await a
  expect(bReply.status).toBe(0)
  await b
}

const rowsOf = (ids: string[]) => deliveryRows({ deps }, ids)
const pushesTo = (userId: string) =>
  line.requestsTo('POST', PUSH).filter((r) => (r.body as { to?: string }).to === userId)
const multicastsTo = (userId: string) =>
  line
    .requestsTo('POST', MULTICAST)
    .filter((r) => ((r.body as { to?: string[] }).to ?? []).includes(userId))

/**
 * Job A claims the marketing delivery `id` for its retry (its earlier request goes again); its
 * lease runs out, `to` opts out of marketing on LINE, and job B, taking the row over, skips it:
 * nothing reaches them.
 */
async function retriedThenSkipped(to: Person, id: string) {
  const answerId = await heldReply(await friend())
  const optOut = async () => {
    await setConsent(deps.db, to.customerId, {
      category: 'marketing',
      channel: 'line',
      granted: false,
      source: 'line-postback',
    })
  }
  await outlivedLease([answerId, id], [id], { meanwhile: optOut })
  expect(line.inbox(to.userId)).toHaveLength(0)
  expect((await rowsOf([id]))[0]).toMatchObject({ status: 'skipped', attempts: 3 })
}

describe('LINE deliveries and the sending lease', () => {
  it('does not multicast rows another job took over while it waited for a reply', async () => {
    const [asked, y, z] = [await friend(), await friend(), await friend()]
    const answer = await heldReply(asked)
    const ids = await sameMessage([y, z])

    await outlivedLease([answer, ...ids], ids)

    // A, ending meanwhile, made no chunk of them and sent them nothing; B sent them its own
    // (nothing had gone to LINE under their keys: a new send, whatever the attempt).
    const rows = await rowsOf(ids)
    const chunks = await deps.db
      .selectFrom('multicast_request')
      .select(['id', 'line_retry_key'])
      .where('body', 'like', `%${y.userId}%`)
      .execute()
    expect(chunks).toHaveLength(1)
    for (const p of [y, z]) {
      expect(line.inbox(p.userId)).toHaveLength(1)
      expect(pushesTo(p.userId)).toHaveLength(0)
      const [multicast, ...more] = multicastsTo(p.userId)
      expect(more).toHaveLength(0)
      expect(multicast!.headers['x-line-retry-key']).toBe(chunks[0]!.line_retry_key)
    }
    for (const row of rows) {
      expect(row).toMatchObject({
        status: 'sent',
        attempts: 2,
        multicast_request_id: chunks[0]!.id,
      })
    }
    // A's own row: the refused reply became a push.
    expect((await rowsOf([answer]))[0]).toMatchObject({ status: 'sent', attempts: 1 })
    expect(line.inbox(asked.userId).map((m) => m.endpoint)).toEqual(['push'])
  })

  it('does not push a row another job took over and sends in a chunk of its own', async () => {
    const [asked, y, z] = [await friend(), await friend(), await friend()]
    // A chunk LINE refused (the month's quota), requeued: each row is sent like a new one.
    const kind = `lease-${randomUUID().slice(0, 8)}`
    const ids = await sameMessage([y, z], { kind })
    line.failNext({
      method: 'POST',
      path: MULTICAST,
      status: 429,
      body: { message: QUOTA_EXCEEDED },
    })
    await sendJob(ids)
    expect(await requeueDeliveries(deps.db, { status: 'quota_exceeded', kind })).toMatchObject({
      requeued: 2,
    })
    const [yId] = ids as [string, string]
    const answer = await heldReply(asked)

    // A holds y alone (a push under y's key); B takes y over with z (a new chunk).
    await outlivedLease([answer, yId], [yId], { bRows: ids })

    for (const p of [y, z]) {
      expect(line.inbox(p.userId).map((m) => m.endpoint)).toEqual(['multicast'])
    }
    expect(pushesTo(y.userId)).toHaveLength(0)
    const [yRow, zRow] = await rowsOf(ids)
    expect(yRow).toMatchObject({ status: 'sent', push_body: null })
    expect(yRow!.multicast_request_id).toBe(zRow!.multicast_request_id)
  })

  it('neither marks nor pushes a reply another job took over and failed', async () => {
    const asked = await friend()
    const answer = await heldReply(asked)

    // B finds A's reply under way: it may arrive, so B fails the row. A's reply is then
    // refused, and A, no longer holding the row, pushes nothing.
    await outlivedLease([answer], [answer])

    expect(pushesTo(asked.userId)).toHaveLength(0)
    expect(line.inbox(asked.userId)).toHaveLength(0)
    const [row] = await rowsOf([answer])
    expect(row).toMatchObject({ status: 'failed', attempts: 2, push_body: null })
    expect(row!.last_error).toMatch(REPLY_OUTCOME_UNKNOWN)
    expect(row!.reply_state).toBe('trying')
  })

  it('does not reply to a row another job took over before it marked the reply', async () => {
    const [asked, bought] = [await friend(), await friend()]
    const event = line.buildEvent('text', asked.userId, { text: 'こんにちは' })
    const token = (event as { replyToken: string }).replyToken
    const answerId = await answer(asked, token)
    // A follow-up of a purchase: its loader reads the purchases, locked meanwhile (a migration).
    const [followUp] = await insertDeliveries(deps.db, [
      {
        dedupeKey: `lease-test:${randomUUID()}`,
        kind: 'purchase-follow-up',
        category: 'marketing',
        customerId: bought.customerId,
        content: { templateId: 'purchase-follow-up', vars: { purchaseId: randomUUID() } },
      },
    ])
    const lock = await heldTransaction(deps.db, async (trx) => {
      await sql`lock table purchase in access exclusive mode`.execute(trx)
    })
    const [other] = await sameMessage([await friend()])
    // Job A claims both and waits to render the follow-up; its lease runs out on the answer,
    // and job B claims it and replies, and holds it while LINE keeps B's push of another
    // delivery waiting.
    const a = sendJob([answerId, followUp!.id])
    await lockWaitOn(deps.db, 'purchase')
    const lapsed = SENDING_LEASE_SECONDS + 60
    await sql`update delivery set updated_at = now() - make_interval(secs => ${lapsed})
      where id = ${answerId}`.execute(deps.db)
    const pushesBefore = line.requestsTo('POST', PUSH).length
    line.failNext({ method: 'POST', path: PUSH, timeoutMs: B_HELD_MS, status: 500 })
    const b = sendJob([answerId, other!])
    const withToken = () =>
      line
        .requestsTo('POST', REPLY)
        .filter((r) => (r.body as { replyToken: string }).replyToken === token)
    await eventually(() => expect(withToken().map((r) => r.status)).toEqual([200]))
    lock.commit()
    await lock.committed
    await a
    const bHeld = await eventually(() => {
      const held = line.requestsTo('POST', PUSH)[pushesBefore]
      expect(held).toBeDefined()
      return held!
    })
    expect(bHeld.status).toBe(0)
    await b

    // B replied; A neither replied too (LINE would refuse the spent token) nor pushed after.
    expect(withToken().map((r) => r.status)).toEqual([200])
    expect(pushesTo(asked.userId)).toHaveLength(0)
    expect(line.inbox(asked.userId).map((m) => m.endpoint)).toEqual(['reply'])
    expect((await rowsOf([answerId]))[0]).toMatchObject({ status: 'sent', attempts: 2 })
    expect((await rowsOf([followUp!.id]))[0]).toMatchObject({
      status: 'skipped',
      skip_reason: 'nothing_to_send',
    })
  })

  it('does not push a stored request again for a row another job took over and skipped', async () => {
    const y = await friend()
    const [yId] = (await sameMessage([y], { category: 'marketing' })) as [string]
    // y's first push got LINE's 500: its request is stored for the retry.
    line.failNext({ method: 'POST', path: PUSH, status: 500 })
    await sendJob([yId])
    expect((await rowsOf([yId]))[0]).toMatchObject({ status: 'pending' })

    await retriedThenSkipped(y, yId)
    expect(pushesTo(y.userId).map((p) => p.status)).toEqual([500])
  })

  it('does not repeat a chunk for a row another job took over and skipped', async () => {
    const [y, z] = [await friend(), await friend()]
    const ids = await sameMessage([y, z], { category: 'marketing' })
    // The chunk got LINE's 500: it goes again under its key with the rows' retry.
    line.failNext({ method: 'POST', path: MULTICAST, status: 500 })
    await sendJob(ids)

    await retriedThenSkipped(y, ids[0]!)
    expect(multicastsTo(y.userId).map((m) => m.status)).toEqual([500])
  })
})
