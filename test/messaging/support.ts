import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import { setConsent } from '../../src/consent/consent.service.ts'
import { createMailer, type Mailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createLineLimiters, messageVarsLoaders } from '../../src/main/processors.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import type { DeliveryCategory, DeliveryIntent } from '../../src/messaging/delivery.service.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createLine } from '../../src/platform/line.ts'
import type { TestKizuna } from '../support/harness.ts'
import { sparePort } from '../support/ports.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'

export const WEEK_MS = 7 * 24 * 60 * 60 * 1000
export const PUSH = '/v2/bot/message/push'
export const MULTICAST = '/v2/bot/message/multicast'
export const QUOTA_EXCEEDED = 'You have reached your monthly limit.'
export const SAMPLE = JSON.parse(
  readFileSync(
    new URL('../../flex-templates/campaign-sample.sample.json', import.meta.url),
    'utf8',
  ),
) as Record<string, string>

export type Friend = { userId: string; customerId: string; displayName: string }

/** A LINE user who added the account, once Kizuna has welcomed them (customer and identity exist). */
export async function newFriend(k: TestKizuna, displayName = `友だち ${randomUUID().slice(0, 8)}`) {
  const user = k.line.users.create({ displayName })
  expect((await k.line.users.follow(user.userId))?.status).toBe(200)
  const customerId = await eventually(async () => {
    const row = await welcomeDelivery(k.deps.db, user.userId)
    expect(row?.status).toBe('sent')
    return row!.customer_id
  })
  return { userId: user.userId, customerId, displayName } satisfies Friend
}

/** The welcome delivery of LINE user `lineUid`, once Kizuna has applied their follow. */
export function welcomeDelivery(db: Deps['db'], lineUid: string) {
  return db
    .selectFrom('delivery')
    .innerJoin('line_user', 'line_user.customer_id', 'delivery.customer_id')
    .select(['delivery.id', 'delivery.customer_id', 'delivery.status'])
    .where('line_user.line_uid', '=', lineUid)
    .where('delivery.kind', '=', 'welcome')
    .executeTakeFirst()
}

/** A campaign-sample delivery personalised for this friend (or with the same vars for all). */
export function campaign(
  to: Friend,
  opts: {
    category?: DeliveryCategory
    overCap?: 'defer' | 'skip'
    displayName?: string
    dedupeKey?: string
  } = {},
): DeliveryIntent {
  return {
    dedupeKey: opts.dedupeKey ?? `campaign-test:${randomUUID()}`,
    kind: 'campaign',
    category: opts.category ?? 'marketing',
    customerId: to.customerId,
    content: {
      templateId: 'campaign-sample',
      vars: { ...SAMPLE, displayName: opts.displayName ?? to.displayName },
    },
    ...(opts.overCap ? { overCap: opts.overCap } : {}),
  }
}

/** The deliveries' rows, in the order of `ids`. */
export function deliveryRows(k: { deps: Pick<Deps, 'db'> }, ids: string[]) {
  return k.deps.db
    .selectFrom('delivery')
    .selectAll()
    .where('id', 'in', ids)
    .execute()
    .then((rows) => ids.map((id) => rows.find((r) => r.id === id)!))
}

export async function deliveryRow(k: TestKizuna, id: string) {
  const [row] = await deliveryRows(k, [id])
  return row!
}

/** The welcome delivery Kizuna wrote for this LINE user (once it is there). */
export function welcomeId(k: TestKizuna, lineUid: string): Promise<string> {
  return eventually(async () => {
    const row = await welcomeDelivery(k.deps.db, lineUid)
    expect(row).toBeDefined()
    return row!.id
  })
}

/** The deliveries are due now (a retry's wait, or what deferred them, is over). */
export async function dueNow(k: TestKizuna, ids: string[]): Promise<void> {
  await k.deps.db
    .updateTable('delivery')
    .set({ send_after: new Date() })
    .where('id', 'in', ids)
    .execute()
}

export async function waitForStatus(
  k: TestKizuna,
  ids: string[],
  status: string,
  timeout?: number,
) {
  return eventually(async () => {
    const rows = await deliveryRows(k, ids)
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => status))
    return rows
  }, timeout)
}

export const pushesTo = (k: TestKizuna, userId: string) =>
  k.line.requestsTo('POST', PUSH).filter((r) => (r.body as { to?: string }).to === userId)

export const multicastsTo = (k: TestKizuna, userId: string) =>
  k.line
    .requestsTo('POST', MULTICAST)
    .filter((r) => ((r.body as { to?: string[] }).to ?? []).includes(userId))

/** The campaign messages the user received (the welcome came by reply). */
export const campaignInbox = (k: TestKizuna, userId: string) =>
  k.line.inbox(userId).filter((m) => String(m.message.altText).includes(SAMPLE.headline!))

/** The single-delivery job scheduleDeliveries made, once it has finished. */
export async function finishedJob(k: TestKizuna, deliveryId: string) {
  return eventually(async () => {
    const job = await k.deps.queues.byName.delivery.getJob(jobIds.deliveries([deliveryId]))
    expect(await job?.getState()).toBe('completed')
    return job!
  })
}

export async function metricValue(k: TestKizuna, series: string): Promise<number> {
  const text = await (await fetch(`${k.baseUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** HH:MM on the store's clock (Asia/Tokyo). */
export function tokyoHhMm(at: Date): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Asia/Tokyo',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(at)
}

/**
 * What a send job sends with (sendTools, or `mailer`), `duringRender` run as it renders a
 * `campaign-sample` delivery, with the delivery's customer: after its claim, before it goes.
 */
export function toolsRendering(
  k: TestKizuna,
  duringRender: (customerId: string) => Promise<void>,
  mailer?: Mailer,
): SendTools {
  const tools = sendTools(k)
  return {
    ...tools,
    mailer: mailer ?? tools.mailer,
    loaders: {
      ...tools.loaders,
      'campaign-sample': async (_deps, delivery) => {
        await duringRender(delivery.customerId)
        return delivery.vars
      },
    },
  }
}

/** What a delivery worker sends with: the real mailer (no sandbox), limiters and loaders. */
export function sendTools(k: TestKizuna): SendTools {
  return {
    mailer: createMailer(k.deps.env, k.deps.db, { sandbox: false }),
    limiters: createLineLimiters(k.deps),
    loaders: messageVarsLoaders(k.deps.env),
  }
}

/** The settings of a Kizuna that sends its email through this SMTP server, at any hour. */
export function emailSettings(smtpUrl: string): Record<string, string> {
  return {
    SMTP_URL: smtpUrl,
    MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>',
    PUBLIC_BASE_URL: 'https://crm.kizuna.test',
    QUIET_HOURS: '',
  }
}

/**
 * Kizuna's deps on a database of their own (the sweeper takes every unfinished row it sees)
 * with a real SMTP server to send email to, for tests that play the workers.
 */
export async function startEmailDeps(cleanups: (() => Promise<void>)[]) {
  const smtp = await startSmtp()
  cleanups.push(() => smtp.close())
  return { ...(await startPrivateDeps(cleanups, emailSettings(smtp.url))), smtp }
}

/**
 * What one worker process sends with, on a lease of `leaseSeconds` (tests shorten it): a mailer
 * of its own (closed by `cleanups`), limiters and loaders.
 */
export function leasedSendTools(
  deps: Deps,
  cleanups: (() => Promise<void>)[],
  leaseSeconds: number,
): SendTools {
  const mailer = createMailer(deps.env, deps.db, { sandbox: false })
  cleanups.push(async () => mailer.close())
  return {
    mailer,
    limiters: createLineLimiters(deps),
    loaders: messageVarsLoaders(deps.env),
    leaseSeconds,
  }
}

/**
 * The send job run on these delivery ids as a worker runs it (the test plays the workers), to
 * its end: the error a try ends with (deliveries left for a retry, Postgres away) is returned.
 */
export function sendJobToEnd(deps: Deps, tools: SendTools, ids: string[]): Promise<unknown> {
  const job = createSendDeliveries(tools)
  const ctx = { job: {} as never, worker: {} as never, token: 't' }
  return job.run(deps, { deliveryIds: ids }, ctx).catch((error: unknown) => error)
}

/**
 * The send job run on these delivery ids as a worker would run it (the test plays the workers),
 * with k's deps or others (a logger the test reads).
 */
export function sendJob(k: TestKizuna, tools: SendTools = sendTools(k), deps: Deps = k.deps) {
  const job = createSendDeliveries(tools)
  return (ids: string[]) =>
    job.run(deps, { deliveryIds: ids }, { job: {} as never, worker: {} as never, token: 'test' })
}

/**
 * Runs `test` with the delivery queue paused: the test plays the workers, with `send` running
 * the send job on the ids it is given.
 */
export async function playingWorkers(
  k: TestKizuna,
  test: (send: ReturnType<typeof sendJob>) => Promise<void>,
): Promise<void> {
  const queue = k.deps.queues.byName.delivery
  await queue.pause()
  try {
    await test(sendJob(k))
  } finally {
    await queue.resume()
  }
}

/**
 * These deps with LINE out of reach: their LINE base URL names a local port nothing listens on,
 * so every call is refused as it connects and no request reaches the stand-in. `close` ends
 * the client.
 */
export async function withLineUnreachable(
  deps: Deps,
): Promise<{ deps: Deps; close(): Promise<void> }> {
  const closed = `http://127.0.0.1:${await sparePort()}`
  const env = { ...deps.env, LINE_API_BASE_URL: closed, LINE_DATA_API_BASE_URL: closed }
  const line = createLine(env, deps.metrics)
  return { deps: { ...deps, env, line }, close: () => line.close() }
}

/**
 * These deps with a channel access token LINE does not take (one reissued in the LINE console
 * since): the stand-in answers every call 401. `close` ends the client.
 */
export function withWrongLineToken(deps: Deps): { deps: Deps; close(): Promise<void> } {
  const env = { ...deps.env, LINE_CHANNEL_ACCESS_TOKEN: 'a-token-reissued-since' }
  const line = createLine(env, deps.metrics)
  return { deps: { ...deps, env, line }, close: () => line.close() }
}

/** The friend blocks the account, and Kizuna has applied the unfollow. */
export async function blockAccount(k: TestKizuna, userId: string): Promise<void> {
  expect((await k.line.users.block(userId))?.status).toBe(200)
  await lineStatusIs(k, userId, 'blocked')
}

/** The person who blocked the account adds it back, and Kizuna has applied the follow. */
export async function unblockAccount(k: TestKizuna, userId: string): Promise<void> {
  expect((await k.line.users.follow(userId))?.status).toBe(200)
  await lineStatusIs(k, userId, 'friend')
}

function lineStatusIs(k: TestKizuna, userId: string, status: 'friend' | 'blocked') {
  return eventually(async () => {
    const lu = await k.deps.db
      .selectFrom('line_user')
      .select('status')
      .where('line_uid', '=', userId)
      .executeTakeFirst()
    expect(lu?.status).toBe(status)
  })
}

/** The customer opts out of marketing on LINE (the postback). */
export const optOutOfLineMarketing = (k: TestKizuna, customerId: string) =>
  setConsent(k.deps.db, customerId, {
    category: 'marketing',
    channel: 'line',
    granted: false,
    source: 'line-postback',
  })

/** The stand-in answers the next push with LINE's 400 for a bad message (LINE took nothing). */
export function refuseNextPush(k: TestKizuna): void {
  k.line.failNext({
    method: 'POST',
    path: PUSH,
    status: 400,
    count: 1,
    body: {
      message: 'The request body has 1 error(s)',
      details: [{ message: 'invalid uri', property: 'messages[0].contents' }],
    },
  })
}

/** The stand-in answers the next multicast with LINE's monthly-quota 429 (LINE took nothing). */
export function quotaOnNextMulticast(k: TestKizuna): void {
  k.line.failNext({
    method: 'POST',
    path: MULTICAST,
    status: 429,
    count: 1,
    body: { message: QUOTA_EXCEEDED },
  })
}

/** A transactional notice to each customer, written, not queued (the test runs the jobs). */
export async function notices(deps: Pick<Deps, 'db'>, customerIds: string[]): Promise<string[]> {
  const rows = await insertDeliveries(
    deps.db,
    customerIds.map((customerId) => ({
      dedupeKey: `notice-test:${randomUUID()}`,
      kind: 'notice',
      category: 'transactional' as const,
      customerId,
      content: { templateId: 'campaign-sample', vars: SAMPLE },
    })),
  )
  return rows.map((r) => r.id)
}

/** A customer without LINE; with `marketingEmail`, marketing email consent given at the desk. */
export async function emailCustomer(
  deps: Pick<Deps, 'db'>,
  opts: { marketingEmail?: boolean; email?: string | null } = {},
) {
  const email = opts.email === undefined ? `c-${randomUUID()}@example.com` : opts.email
  const { id } = await deps.db
    .insertInto('customer')
    .values({ display_name: 'Yamada Hanako', email })
    .returning('id')
    .executeTakeFirstOrThrow()
  if (opts.marketingEmail) await grantMarketingEmail(deps, id)
  return { id, email: email ?? '' }
}

/** The customer turns transactional email off (an email's unsubscribe page). */
export const revokeTransactionalEmail = (deps: Pick<Deps, 'db'>, customerId: string) =>
  setConsent(deps.db, customerId, {
    category: 'transactional',
    channel: 'email',
    granted: false,
    source: 'email-unsubscribe',
  })

export const grantMarketingEmail = (deps: Pick<Deps, 'db'>, customerId: string) =>
  setConsent(deps.db, customerId, {
    category: 'marketing',
    channel: 'email',
    granted: true,
    source: 'admin',
  })

/** Notices by email to customers without LINE, one each: their addresses and delivery ids. */
export async function emailNotices(deps: Pick<Deps, 'db'>, count: number) {
  const addresses = Array.from({ length: count }, () => `c-${randomUUID()}@example.com`)
  const customers = await deps.db
    .insertInto('customer')
    .values(addresses.map((email) => ({ display_name: 'Yamada Hanako', email })))
    .returning('id')
    .execute()
  return {
    addresses,
    ids: await notices(
      deps,
      customers.map((c) => c.id),
    ),
  }
}
