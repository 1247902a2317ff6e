import type { messagingApi } from '@line/bot-sdk'
import { UnrecoverableError, Worker } from 'bullmq'
import { findLineUserById } from '../identity/identity.repo.ts'
import { classifyLineError } from '../platform/line.ts'
import type { Processor } from '../platform/worker-types.ts'
import {
  claimDelivery,
  finishDelivery,
  markDeliverySent,
  recordDeliveryError,
} from './delivery.repo.ts'

const RATE_LIMIT_BACKOFF_MS = 1_000

/**
 * Sends one delivery. A fresh reply token is tried once; otherwise (or if it was refused) a push
 * with the row's retry key, which every retry reuses, so LINE's 409 means "already sent".
 */
export const sendDelivery: Processor<'messaging.send-delivery'> = {
  async run(deps, { deliveryId }, { worker, token }) {
    const delivery = await claimDelivery(deps.db, deliveryId)
    if (!delivery) return
    const lineUser = delivery.line_user_id
      ? await findLineUserById(deps.db, delivery.line_user_id)
      : undefined
    if (lineUser?.status !== 'friend') {
      await finishDelivery(deps.db, deliveryId, 'skipped', lineUser ? 'line_blocked' : 'no_line')
      return
    }
    const messages = delivery.messages as unknown as messagingApi.Message[]

    const replyFresh =
      delivery.reply_token !== null &&
      delivery.attempts === 1 &&
      (delivery.reply_token_expires_at?.getTime() ?? 0) > deps.clock.now().getTime()
    if (replyFresh && delivery.reply_token) {
      try {
        const res = await deps.line.call('reply', (c) =>
          c.replyMessageWithHttpInfo({ replyToken: delivery.reply_token!, messages }),
        )
        await markDeliverySent(deps.db, deliveryId, {
          channel: 'line',
          lineRequestId: res.httpResponse.headers.get('x-line-request-id'),
        })
        return
      } catch (error) {
        // A reply that failed sent nothing; the push below carries the retry key.
        deps.log.info({ deliveryId, why: classifyLineError(error).kind }, 'reply failed, pushing')
      }
    }

    try {
      const res = await deps.line.call('push', (c) =>
        c.pushMessageWithHttpInfo({ to: lineUser.line_uid, messages }, delivery.line_retry_key),
      )
      await markDeliverySent(deps.db, deliveryId, {
        channel: 'line',
        lineRequestId: res.httpResponse.headers.get('x-line-request-id'),
      })
    } catch (error) {
      const failure = classifyLineError(error)
      switch (failure.kind) {
        case 'already_accepted':
          await markDeliverySent(deps.db, deliveryId, {
            channel: 'line',
            lineRequestId: failure.acceptedRequestId,
          })
          return
        case 'rate_limited':
          await recordDeliveryError(deps.db, deliveryId, failure.message)
          await worker.rateLimit(RATE_LIMIT_BACKOFF_MS)
          if (token === undefined) throw new Error('rate limited')
          throw Worker.RateLimitError()
        case 'quota_exceeded':
          await finishDelivery(deps.db, deliveryId, 'quota_exceeded', failure.message)
          deps.metrics.lineCalls.inc({ endpoint: 'push', status: 'quota_exceeded' })
          return
        case 'invalid_reply_token':
        case 'rejected':
          await finishDelivery(
            deps.db,
            deliveryId,
            'failed',
            `LINE ${failure.status}: ${failure.message} ${JSON.stringify('details' in failure ? failure.details : null)}`,
          )
          throw new UnrecoverableError(`LINE rejected the message (${failure.status})`)
        case 'transient':
          await recordDeliveryError(deps.db, deliveryId, failure.message)
          throw error instanceof Error ? error : new Error(failure.message)
      }
    }
  },
  async onFinalFailure(deps, { deliveryId }, error) {
    await finishDelivery(deps.db, deliveryId, 'failed', error.message)
  },
}
