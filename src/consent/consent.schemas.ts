import { z } from 'zod'

export const CONSENT_CATEGORIES = ['transactional', 'marketing'] as const
export const CONSENT_CHANNELS = ['line', 'email'] as const
export type ConsentCategory = (typeof CONSENT_CATEGORIES)[number]
export type ConsentChannel = (typeof CONSENT_CHANNELS)[number]

/** Who changed a consent row; kept on the row (no personal data). */
export type ConsentSource =
  | 'import'
  | 'line-postback'
  | 'email-unsubscribe'
  | 'admin'
  | 'merge'
  | 'erasure'

/** Whether a customer may be sent each category on each channel. */
export type Consents = Record<ConsentCategory, Record<ConsentChannel, boolean>>

export const consentCategorySchema = z.enum(CONSENT_CATEGORIES, {
  error: `use one of ${CONSENT_CATEGORIES.join(', ')}`,
})
export const consentChannelSchema = z.enum(CONSENT_CHANNELS, {
  error: `use one of ${CONSENT_CHANNELS.join(', ')}`,
})

/** `PUT /api/customers/:id/consent` body. */
export const consentUpdateSchema = z.strictObject({
  category: consentCategorySchema,
  channel: consentChannelSchema,
  granted: z.boolean('use true or false'),
})
export type ConsentUpdate = z.infer<typeof consentUpdateSchema>

/**
 * When the person chose, for a choice that may be processed late (a LINE postback): `at` by
 * LINE's clock (the event's time), `receivedAt` by the database's (when the event was stored).
 */
export type ConsentDecided = { at: Date; receivedAt: Date }

export type ConsentChange = ConsentUpdate & { source: ConsentSource; decided?: ConsentDecided }
