import type { webhook } from '@line/bot-sdk'
import { z } from 'zod'
import { LINE_USER_ID } from '../identity/line-user-id.ts'

/**
 * Only what the inbox's insert needs is checked here; the rest of each event is kept as LINE
 * sent it. A check failing answers 400 for the whole request, and its other events are lost
 * (LINE redelivers nothing by default): so none of a value LINE may extend (a new `mode` is
 * stored, and held back as standby is). The id's bound is the unique index's (an entry of a few
 * kB fails the insert); LINE's are 26-character ULIDs.
 */
export const webhookEventSchema = z
  .object({
    type: z.string().min(1),
    webhookEventId: z
      .string()
      .min(1)
      .max(128)
      .refine(storableAsIs, 'has a NUL or a lone surrogate (jsonb stores neither as sent)'),
    timestamp: z.number().int().nonnegative().max(253_402_300_799_000),
    mode: z.string().min(1),
    deliveryContext: z.object({ isRedelivery: z.boolean() }).loose().optional(),
  })
  .loose()

/**
 * Whether Postgres stores the id as sent. The body's NULs and lone surrogates become U+FFFD
 * (storableBody), which for an id would store another id than the request is answered by, and
 * one two ids can share (the second event dropped as a duplicate). LINE's ids are ULIDs: such an
 * id is refused, its request with it, rather than stored as another.
 */
function storableAsIs(id: string): boolean {
  return id.isWellFormed() && !id.includes('\0')
}

export const callbackRequestSchema = z.object({
  destination: z.string().min(1).max(64),
  events: z.array(webhookEventSchema),
})

/** A LINE user id (LINE-API.md §4). */
export const lineUserIdSchema = z
  .string()
  .regex(LINE_USER_ID, 'not a LINE user id (U and 32 lowercase hex digits)')

/**
 * What the worker checks of a stored event before applying it: its sender's LINE user id, which
 * every LINE call about them carries. Not the route: LINE signed the request, and a 400 would
 * cost the other events of the request (LINE does not send them again); the event is stored and
 * failed on its own.
 */
export const appliedEventSchema = z
  .object({ source: z.object({ userId: lineUserIdSchema.optional() }).loose().optional() })
  .loose()

export type WebhookEventEnvelope = z.infer<typeof webhookEventSchema>
/** A stored event, typed as the SDK's webhook union for dispatch. */
export type LineEvent = webhook.Event
