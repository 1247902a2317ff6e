import type { webhook } from '@line/bot-sdk'
import { z } from 'zod'

/** Only what the inbox needs is checked here; the rest of each event is kept as LINE sent it. */
export const webhookEventSchema = z
  .object({
    type: z.string().min(1).max(64),
    webhookEventId: z.string().min(1).max(128),
    timestamp: z.number().int().nonnegative().max(253_402_300_799_000),
    mode: z.enum(['active', 'standby']),
    deliveryContext: z.object({ isRedelivery: z.boolean() }).loose().optional(),
  })
  .loose()

export const callbackRequestSchema = z.object({
  destination: z.string().min(1).max(64),
  events: z.array(webhookEventSchema),
})

export type WebhookEventEnvelope = z.infer<typeof webhookEventSchema>
/** A stored event, typed as the SDK's webhook union for dispatch. */
export type LineEvent = webhook.Event
