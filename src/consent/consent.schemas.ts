import { z } from 'zod'

export const CONSENT_CATEGORIES = ['transactional', 'marketing'] as const
export const CONSENT_CHANNELS = ['line', 'email'] as const
export type ConsentCategory = (typeof CONSENT_CATEGORIES)[number]
export type ConsentChannel = (typeof CONSENT_CHANNELS)[number]

/** Who changed a consent row; kept on the row and in its history (no personal data). */
export type ConsentSource =
  | 'import'
  | 'line-postback'
  | 'email-unsubscribe'
  | 'admin'
  | 'merge'
  | 'erasure'
  /** In the history only: rows copied to a LINE account's own customer keep their source. */
  | 'unlink'

/** Whether a customer may be sent each category on each channel. */
export type Consents = Record<ConsentCategory, Record<ConsentChannel, boolean>>

/**
 * What holds when a customer has no row: transactional messages on both channels; marketing on
 * LINE (following the account is an opt-in); no marketing email (Japan's opt-in rule for
 * marketing email: the person must have said yes).
 */
export const DEFAULT_CONSENTS: Readonly<Consents> = Object.freeze({
  transactional: Object.freeze({ line: true, email: true }),
  marketing: Object.freeze({ line: true, email: false }),
})

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

export type ConsentChange = ConsentUpdate & {
  source: ConsentSource
  decided?: ConsentDecided
  /** The API key that made the change (staff's), kept in the history. */
  apiKeyId?: string | null
}

/** What a history page's `before` takes. */
export const BEFORE_HINT = 'use the `next` of the page before'

/** `GET /api/customers/:id/consent/history` query: a page, newest first. */
export const consentHistoryQuerySchema = z.object({
  limit: z.coerce
    .number('use a whole number from 1 to 1000')
    .int('use a whole number from 1 to 1000')
    .min(1, 'use a whole number from 1 to 1000')
    .max(1000, 'use a whole number from 1 to 1000')
    .default(100),
  before: z.uuid(BEFORE_HINT).optional(),
})
export type ConsentHistoryPage = z.infer<typeof consentHistoryQuerySchema>
