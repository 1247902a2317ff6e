import pLimit from 'p-limit'
import { lineLoadsImageUrl } from '../cards/card-url.ts'
import { DEFAULT_CONSENTS, loadConsents } from '../consent/consent.service.ts'
import type { Mailer } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import { contentOf, renderEmail, renderLine } from './delivery-content.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { type EmailItem, sendEmail } from './email-send.ts'
import { replyTokenIfFresh, settleStoppedReplies } from './line-reply.ts'
import {
  type LineItem,
  type LineLimiters,
  type StoredRequests,
  sendLineBatch,
} from './line-send.ts'
import type { RecentMarketing } from './marketing-cap.repo.ts'
import type { MessageVarsLoaders } from './message-vars.ts'
import { applyMarketingRules, chooseChannel } from './send-rules.ts'
import type { SendWindow } from './send-window.ts'
import { type ChunkItem, storedRequestOf, unheldChunks } from './stored-requests.ts'

/**
 * Emails on their way at once per process: a few more than the SMTP pool's 5 connections, so the
 * next message is ready when one is free. Its send window is checked when it takes a slot; its
 * own time limit counts the wait for a connection too.
 */
const emailSlots = pLimit(8)

export type SendTools = {
  mailer: Mailer
  limiters: LineLimiters
  loaders: MessageVarsLoaders
  /** How long a claim holds its rows (SENDING_LEASE_SECONDS unless a test makes it short). */
  leaseSeconds?: number
}

export type BatchResult = { outcomes: DeliveryOutcome[] }

/**
 * Sends claimed deliveries. Marketing waits out quiet hours and the weekly cap; each delivery
 * gets its channel and content (template + loader, or ready LINE messages), decided now, unless
 * a request under its retry key may have reached LINE: then it goes again as the push or chunk
 * an earlier attempt stored, or not at all (storedRequestOf, heldChunks). LINE and email go
 * out together, emails while the job's send window is open (the rest are `notStarted`). Each
 * email's outcome is recorded as soon as it is decided (ClaimOutcomes.settle); returns one
 * outcome per delivery.
 */
export async function sendClaimedDeliveries(
  deps: Deps,
  tools: SendTools,
  { rows, recent }: { rows: ClaimedDelivery[]; recent: RecentMarketing },
  window: SendWindow,
  recorder: Pick<ClaimOutcomes, 'settle' | 'claim' | 'takenOver'>,
): Promise<BatchResult> {
  const now = deps.clock.now()
  const outcomes: DeliveryOutcome[] = []
  const live = settleStoppedReplies(rows, outcomes)
  const ready = applyMarketingRules(deps, live, recent, now, outcomes)
  const consents = await loadConsents(
    deps.db,
    ready.map((r) => r.customer_id),
  )
  const lineItems: LineItem[] = []
  const again: StoredRequests = { pushes: [], chunks: [] }
  const chunkItems: ChunkItem[] = []
  const emailItems: EmailItem[] = []
  // The local LINE stand-in loads http images; LINE itself only https.
  const lineOpts = { allowHttpImages: lineLoadsImageUrl(deps.env, 'http:') }
  const configured = tools.mailer.kind !== 'none'
  await inSlices(ready, async (row) => {
    const consent = consents.get(row.customer_id) ?? DEFAULT_CONSENTS
    if (row.line_key_used) {
      // The same request goes again under the same key (LINE-API.md §2.4), not one rendered
      // anew, even if its loader would now read other points or sign a new link.
      const stored = storedRequestOf(row, consent, configured)
      if ('push' in stored) again.pushes.push(stored.push)
      else if ('chunk' in stored) chunkItems.push(stored.chunk)
      else outcomes.push(stored.outcome)
      if ('outcome' in stored && stored.outcome.status === 'failed') {
        const { error } = stored.outcome
        deps.log.warn({ deliveryId: row.id, error }, 'delivery failed, not sent again')
      }
      return
    }
    const content = await contentOf(deps, tools.loaders, row)
    if ('outcome' in content) {
      outcomes.push(content.outcome)
      return
    }
    const choice = chooseChannel(row, consent, {
      hasVersion: content.templateId !== null,
      configured,
    })
    if (choice.channel === null) {
      outcomes.push({ id: row.id, status: 'skipped', reason: choice.reason })
      return
    }
    // Only the version that goes out is rendered.
    if (choice.channel === 'email') {
      const rendered = renderEmail(row, content)
      if ('outcome' in rendered) outcomes.push(rendered.outcome)
      else {
        const { category, customer_id: customerId } = row
        emailItems.push({ id: row.id, customerId, category, to: choice.to, email: rendered.email })
      }
      return
    }
    const rendered = renderLine(row, content, lineOpts)
    if ('outcome' in rendered) {
      outcomes.push(rendered.outcome)
      return
    }
    // Nothing went under its key, or LINE refused what did (a 400, a 429): a new send. A chunk
    // LINE refused is not sent again as stored: it names people whose rows other jobs hold (the
    // sweeper spreads rows over jobs of 100), who may have opted out or be waiting for room in
    // the cap; each of its rows goes like a new one, its consent and the cap checked by the job
    // that claimed it, and the old key is not used.
    const refusedChunk = row.multicast_request_id !== null
    lineItems.push({
      id: row.id,
      lineUid: choice.lineUid,
      messagesJson: JSON.stringify(rendered.line),
      contentKey: content.key,
      retryKey: row.line_retry_key,
      replyToken: replyTokenIfFresh(row, now),
      // Tried before alone (a push with its own key): a new chunk's key could send it twice.
      // One whose chunk LINE refused is a new send: it may join a new chunk.
      mayMulticast: row.attempts === 1 || refusedChunk,
    })
  })
  again.chunks = await unheldChunks(deps, chunkItems, rows, outcomes)
  const [line, emails] = await Promise.all([
    sendLineBatch(deps, tools.limiters, recorder, lineItems, again),
    Promise.all(
      emailItems.map((item) =>
        emailSlots(async (): Promise<DeliveryOutcome> => {
          const outcome: DeliveryOutcome = window.isOpen()
            ? await sendEmail(deps, tools.mailer, item, window.emailMs)
            : { id: item.id, status: 'pending', notStarted: true }
          await recorder.settle(outcome)
          return outcome
        }),
      ),
    ),
  ])
  outcomes.push(...line.outcomes, ...emails)
  return { outcomes }
}

/** Rows rendered between two turns of the event loop. */
const RENDER_SLICE = 10

/**
 * Runs `each` over the rows a slice at a time, giving the event loop a turn between slices: a
 * job renders 100 personalised messages (~25 ms of CPU here), and sends already granted by the
 * limiter must not wait behind that and then leave together (LINE counts arrivals per second).
 */
async function inSlices<T>(rows: T[], each: (row: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < rows.length; i += RENDER_SLICE) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve))
    await Promise.all(rows.slice(i, i + RENDER_SLICE).map(each))
  }
}
