import { jobIds } from '../jobs.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { insertDelivery, type NewLineDelivery } from './delivery.repo.ts'

/** LINE accepts a reply token for about a minute after the webhook; keep a margin. */
export const REPLY_TOKEN_TTL_MS = 50_000

/**
 * Records a LINE message to send, inside the caller's transaction, and queues it after commit.
 * The dedupe key makes it happen once however often the cause is replayed.
 */
export async function scheduleLineMessage(
  ctx: {
    deps: Pick<Deps, 'queues'>
    trx: Db
    afterCommit: (fn: () => Promise<void>) => void
  },
  delivery: NewLineDelivery,
): Promise<string | null> {
  const id = await insertDelivery(ctx.trx, delivery)
  if (id) {
    ctx.afterCommit(() =>
      ctx.deps.queues.enqueue(
        'messaging.send-delivery',
        { deliveryId: id },
        { jobId: jobIds.delivery(id) },
      ),
    )
  }
  return id
}

export function replyTokenExpiry(receivedAt: Date): Date {
  return new Date(receivedAt.getTime() + REPLY_TOKEN_TTL_MS)
}

/** Answers a webhook event: a transactional delivery keyed on the event, by reply while fresh. */
export async function scheduleReply(
  ctx: {
    deps: Pick<Deps, 'queues'>
    trx: Db
    afterCommit: (fn: () => Promise<void>) => void
    webhookEventId: string
    receivedAt: Date
  },
  to: { customerId: string; lineUserId: string; replyToken: string | null },
  messages: unknown[],
  kind: string,
): Promise<string | null> {
  return scheduleLineMessage(ctx, {
    dedupeKey: `reply:${ctx.webhookEventId}`,
    kind,
    category: 'transactional',
    customerId: to.customerId,
    lineUserId: to.lineUserId,
    messages,
    replyToken: to.replyToken,
    replyTokenExpiresAt: replyTokenExpiry(ctx.receivedAt),
  })
}
