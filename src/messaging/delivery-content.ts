import type { messagingApi } from '@line/bot-sdk'
import { renderEmailMessage, renderLineMessage, TemplateError } from '../flex/message-template.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import { type DeliveryOutcome, erasedOutcome } from './delivery-outcomes.repo.ts'
import type { EmailItem } from './email-send.ts'
import type { MessageBuilders, MessageVarsLoaders } from './message-vars.ts'

/**
 * How a delivery whose template or variables could not be rendered is failed. No request went
 * out in that attempt, but an earlier one may have (a chunk or push that timed out, rendered again
 * on its retry): that is told by `line_first_call_at`, not by this.
 */
export const TEMPLATE_FAILED = 'template:'

type Content =
  | { templateId: string; vars: Record<string, unknown>; key: string }
  | { templateId: null; messages: messagingApi.Message[]; key: string }
  /** Not built yet: only once LINE is its channel (buildLine). */
  | { templateId: null; builder: string; vars: Record<string, unknown> }
  | { outcome: DeliveryOutcome }

/**
 * What one delivery says: its stored LINE messages, its template with the variables its loader
 * completes now, or the builder that makes its LINE messages (buildLine, once LINE is chosen).
 * The key is equal for equal messages (rendering is deterministic).
 */
export async function contentOf(
  deps: Deps,
  loaders: MessageVarsLoaders,
  row: ClaimedDelivery,
): Promise<Content> {
  if (row.builder) return { templateId: null, builder: row.builder, vars: row.vars }
  if (!row.template_id) {
    const messages = (row.messages ?? []) as messagingApi.Message[]
    return { templateId: null, messages, key: JSON.stringify(messages) }
  }
  try {
    const loader = loaders[row.template_id]
    const vars = loader
      ? await loader(deps, { customerId: row.customer_id, vars: row.vars })
      : row.vars
    if (vars === null) {
      return { outcome: { id: row.id, status: 'skipped', reason: 'nothing_to_send' } }
    }
    const key = `${row.template_id}\0${JSON.stringify(vars)}`
    return { templateId: row.template_id, vars, key }
  } catch (error) {
    // A loader's database error is worth another try; bad variables are not; a customer erased
    // (since the claim, or before a claim that took over a stopped worker's row) gets nothing.
    if (error instanceof TemplateError) return { outcome: failed(row, error) }
    if (error instanceof AppError && error.code === 'GONE')
      return { outcome: erasedOutcome(row.id) }
    const message = error instanceof Error ? error.message : String(error)
    return { outcome: { id: row.id, status: 'pending', error: `loader: ${message}` } }
  }
}

/**
 * How a delivery chosen for email is failed when it has no email version: its content is LINE
 * messages only (chooseChannel does not pick email for one; this keeps it from staying in
 * `sending` until the lease ends if it ever did).
 */
const NO_EMAIL_VERSION = 'no email version: the delivery holds LINE messages only'

type Ready = Exclude<Content, { outcome: DeliveryOutcome }>
type Built = Exclude<Ready, { builder: string }>

/**
 * The LINE messages of a delivery built at send time, made now by its builder (which may call
 * LINE, and write what its messages point to); other content as it is. Each call builds anew:
 * a send job calls it once per attempt, and a request that may have reached LINE goes again as
 * stored, not built again (storedRequestOf). A builder's error is worth another try (a LINE 5xx,
 * a database error); a customer erased gets nothing.
 */
export async function buildLine(
  deps: Deps,
  builders: MessageBuilders,
  row: ClaimedDelivery,
  content: Ready,
): Promise<Built | { outcome: DeliveryOutcome }> {
  if (!('builder' in content)) return content
  const builder = builders[content.builder]
  if (!builder) {
    return { outcome: failed(row, new Error(`no builder ${content.builder}`)) }
  }
  try {
    const messages = await builder(deps, {
      id: row.id,
      customerId: row.customer_id,
      vars: row.vars,
    })
    return { templateId: null, messages, key: JSON.stringify(messages) }
  } catch (error) {
    if (error instanceof AppError && error.code === 'GONE')
      return { outcome: erasedOutcome(row.id) }
    const message = error instanceof Error ? error.message : String(error)
    return { outcome: { id: row.id, status: 'pending', error: `builder: ${message}` } }
  }
}

/** The LINE version of the delivery: its stored or built messages, or its template rendered. */
export function renderLine(
  row: ClaimedDelivery,
  content: Built,
  lineOpts: { allowHttpImages: boolean },
): { line: messagingApi.Message[] } | { outcome: DeliveryOutcome } {
  if (content.templateId === null) return { line: content.messages }
  try {
    return { line: [renderLineMessage(content.templateId, content.vars, lineOpts)] }
  } catch (error) {
    return { outcome: failed(row, error) }
  }
}

/** The email version of the delivery's template. */
export function renderEmail(
  row: ClaimedDelivery,
  content: Ready,
): { email: EmailItem['email'] } | { outcome: DeliveryOutcome } {
  if (content.templateId === null) {
    return { outcome: { id: row.id, status: 'failed', error: NO_EMAIL_VERSION } }
  }
  try {
    return { email: renderEmailMessage(content.templateId, content.vars) }
  } catch (error) {
    return { outcome: failed(row, error) }
  }
}

function failed(row: ClaimedDelivery, error: unknown): DeliveryOutcome {
  const message = error instanceof Error ? error.message : String(error)
  return { id: row.id, status: 'failed', error: `${TEMPLATE_FAILED} ${message}` }
}
