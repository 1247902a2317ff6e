import type { messagingApi } from '@line/bot-sdk'
import { jobIds } from '../jobs.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import type { Queues } from '../platform/queues.ts'
import {
  analyzeDeliveries,
  cancelDeliveryRows,
  insertDeliveries,
  insertDelivery,
} from './delivery.repo.ts'

/** LINE accepts a reply token for about a minute after the webhook; keep a margin. */
export const REPLY_TOKEN_TTL_MS = 50_000
/**
 * Nor, even in a redelivered event, once this long has passed since the event happened
 * (LINE-API.md §2.2): a late redelivery reaching us first would try the reply for nothing (400)
 * before pushing.
 */
export const REPLY_TOKEN_MAX_AGE_MS = 20 * 60_000
/** Ids per send job: one claim, one render pass, one status update for the lot. */
export const DELIVERIES_PER_JOB = 100

export type DeliveryCategory = 'transactional' | 'marketing'

/**
 * A message to one customer. The channel is not chosen here: it is decided when the delivery is
 * sent (LINE if they follow the account and allow it there; email, with consent, only if LINE
 * cannot reach them; else skipped with a reason).
 * Content is a template from flex-templates/ (LINE and email versions; its variables are stored
 * and completed at send time by the template's loader), LINE messages built in code (LINE only),
 * or LINE messages a builder makes when it is sent (LINE only; `vars` holds the ids it reads, no
 * personal data): for messages that need a LINE call first, made by the send job, not by the
 * transaction that writes the delivery.
 */
export type DeliveryContent =
  | { templateId: string; vars?: Record<string, unknown> }
  | { messages: messagingApi.Message[] }
  | { builder: string; vars: Record<string, unknown> }

export type DeliveryIntent = {
  /** One delivery per key, however often the cause is replayed: `<kind>:<business id>`. */
  dedupeKey: string
  kind: string
  category: DeliveryCategory
  customerId: string
  content: DeliveryContent
  /** Not before this time (post-purchase delay). Quiet hours and the cap may defer it further. */
  sendAfter?: Date
  /** Marketing over the weekly cap: wait for room (default) or give up. */
  overCap?: 'defer' | 'skip'
  /** Answer by reply while the token is fresh (push otherwise). */
  reply?: { token: string | null; expiresAt: Date; lineUserId: string }
}

type TxContext = {
  deps: Pick<Deps, 'queues'>
  trx: Db
  afterCommit: (fn: () => Promise<void>) => void
}

/**
 * Records a delivery inside the caller's transaction and queues it after commit (delayed until
 * `sendAfter`). Returns its id, or null when the dedupe key already existed.
 */
export async function scheduleDelivery(
  ctx: TxContext,
  intent: DeliveryIntent,
): Promise<string | null> {
  const id = await insertDelivery(ctx.trx, intent)
  if (id) {
    const sendAfter = intent.sendAfter
    ctx.afterCommit(() => enqueueDeliveries(ctx.deps.queues, [{ id, sendAfter }]))
  }
  return id
}

/**
 * A batch this big changes what the planner should know about the table (analyzeDeliveries):
 * analyzed once this many are written, and again each time their number doubles.
 */
const ANALYZE_AFTER_ROWS = 5_000

/**
 * Deliveries scheduleDeliveries writes per statement, and queues before writing the next: the
 * first are sent while the rest are written. (20,000 on a busy 2-core machine, written and
 * queued: 1.1-1.7 s in slices of 2,000, the first queued after ~0.1 s; 1.1-1.8 s in one
 * statement; 1.2-4.5 s as multi-row VALUES of 5,000, the most one statement could carry.)
 */
const SCHEDULE_SLICE = 2_000

/**
 * Many deliveries at once (a campaign): rows in slices of SCHEDULE_SLICE, each committed and
 * queued (jobs of DELIVERIES_PER_JOB ids) before the next is written. Returns the ids created
 * (existing dedupe keys are skipped). Not one transaction: when a slice fails, the call throws
 * with the slices before it written and queued (a failed enqueue leaves its slice to the
 * sweeper) and the rest unwritten. Running the same intents again writes and queues only the
 * rest (the dedupe keys): nothing twice, and nothing lost once the caller has run it through.
 */
export async function scheduleDeliveries(
  deps: Pick<Deps, 'db' | 'queues'>,
  intents: DeliveryIntent[],
): Promise<string[]> {
  const ids: string[] = []
  let analyzeAt = ANALYZE_AFTER_ROWS
  for (let i = 0; i < intents.length; i += SCHEDULE_SLICE) {
    const rows = await insertDeliveries(deps.db, intents.slice(i, i + SCHEDULE_SLICE))
    ids.push(...rows.map((r) => r.id))
    if (ids.length >= analyzeAt) {
      await analyzeDeliveries(deps.db)
      analyzeAt = ids.length * 2
    }
    await enqueueDeliveries(deps.queues, rows)
  }
  return ids
}

/**
 * Queues deliveries by id, in groups of DELIVERIES_PER_JOB: due ones together, later ones by due
 * time (so the deliveries of a multicast LINE rate-limited, which share their wait, go again in
 * one job and one call). Repeats are harmless: the row's status decides what happens.
 * `soon`: together with other callers' jobs (queues.enqueueSoon), for callers nobody waits on.
 * `deferred`: the send job moved them to a new time (quiet hours, the cap, a rate-limit wait):
 * they get a job for that time, however near. Grouped as due, they would get the id of the job
 * deferring them (the same ids), which BullMQ drops while that job exists; `attempts` (the
 * deferring claim's) keeps a job deferred again to its own due time from its own id.
 * `first`: the due ones ahead of the jobs waiting (queues.enqueueBulk), in the same order.
 */
export async function enqueueDeliveries(
  queues: Queues,
  deliveries: { id: string; sendAfter?: Date | null; attempts?: number }[],
  opts: { now?: number; cause?: string; soon?: boolean; deferred?: boolean; first?: boolean } = {},
): Promise<void> {
  const now = opts.now ?? Date.now()
  // A cause (the sweeper) gives new job ids: the first job of a delivery may still be kept.
  const suffix = opts.cause ? `-${opts.cause}` : ''
  const due: string[] = []
  const later = new Map<number, string[]>()
  const attempts = new Map(deliveries.map((d) => [d.id, d.attempts ?? 0]))
  for (const d of deliveries) {
    const delay = d.sendAfter ? d.sendAfter.getTime() - now : 0
    // Within the claim's tolerance (250 ms: a delayed job may fire a moment early) it is due.
    if (delay > 250 || opts.deferred) {
      const delayMs = Math.max(delay, 0)
      later.set(delayMs, [...(later.get(delayMs) ?? []), d.id])
    } else due.push(d.id)
  }
  const jobs: { data: { deliveryIds: string[] }; jobId: string; delay?: number; first?: true }[] =
    []
  for (let i = 0; i < due.length; i += DELIVERIES_PER_JOB) {
    const ids = due.slice(i, i + DELIVERIES_PER_JOB)
    jobs.push({ data: { deliveryIds: ids }, jobId: jobIds.deliveries(ids) + suffix })
  }
  if (opts.first) {
    // Each job put first goes ahead of the one before: the first group last.
    jobs.reverse()
    for (const job of jobs) job.first = true
  }
  for (const [delay, all] of later) {
    for (let i = 0; i < all.length; i += DELIVERIES_PER_JOB) {
      const ids = all.slice(i, i + DELIVERIES_PER_JOB)
      // Its own id per due time and claim: a deferred delivery's earlier job may still exist,
      // even the one deferring it again (fired a moment early, deferred to the same time).
      const claimed = Math.max(...ids.map((id) => attempts.get(id) ?? 0))
      const jobId = jobIds.deliveriesAt(ids, now + delay, claimed) + suffix
      jobs.push({ data: { deliveryIds: ids }, jobId, delay })
    }
  }
  if (opts.soon) await queues.enqueueSoon('messaging.send-deliveries', jobs)
  else await queues.enqueueBulk('messaging.send-deliveries', jobs)
}

/** Cancels deliveries not yet sent (a voided receipt); returns how many were cancelled. */
export async function cancelDeliveries(
  db: Db,
  dedupeKeys: string[],
  reason: string,
): Promise<number> {
  return cancelDeliveryRows(db, dedupeKeys, reason)
}

/** Until when an event's reply token may be used: shortly after it reached us, if still young. */
export function replyTokenExpiry(event: { receivedAt: Date; occurredAt: Date }): Date {
  return new Date(
    Math.min(
      event.receivedAt.getTime() + REPLY_TOKEN_TTL_MS,
      event.occurredAt.getTime() + REPLY_TOKEN_MAX_AGE_MS,
    ),
  )
}

/** What answers a webhook event: LINE messages, or a template or builder with its vars. */
export type ReplyContent = messagingApi.Message[] | Exclude<DeliveryContent, { messages: unknown }>

/** Answers a webhook event: a transactional delivery keyed on the event, by reply while fresh. */
export async function scheduleReply(
  ctx: TxContext & { webhookEventId: string; receivedAt: Date; occurredAt: Date },
  to: { customerId: string; lineUserId: string; replyToken: string | null },
  content: ReplyContent,
  kind: string,
): Promise<string | null> {
  return scheduleDelivery(ctx, {
    dedupeKey: `reply:${ctx.webhookEventId}`,
    kind,
    category: 'transactional',
    customerId: to.customerId,
    content: Array.isArray(content) ? { messages: content } : content,
    reply: {
      token: to.replyToken,
      expiresAt: replyTokenExpiry(ctx),
      lineUserId: to.lineUserId,
    },
  })
}
