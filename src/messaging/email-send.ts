import type { Mailer } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import { emailTracking } from '../tracking/tracking.service.ts'
import type { DeliveryOutcome } from './delivery.repo.ts'

export type EmailItem = {
  id: string
  customerId: string
  category: 'transactional' | 'marketing'
  to: string
  email: { subject: string; html: string; text: string }
}

/**
 * Sends one delivery's email: links through `/r/`, an open pixel, and RFC 8058 one-click
 * unsubscribe for the delivery's category. A temporary SMTP failure (4xx, connection) leaves the
 * delivery to be retried; a permanent one (5xx) fails it.
 */
export async function sendEmail(
  deps: Pick<Deps, 'db' | 'env' | 'log'>,
  mailer: Mailer,
  item: EmailItem,
): Promise<DeliveryOutcome> {
  try {
    const tracking = await emailTracking(deps, {
      deliveryId: item.id,
      customerId: item.customerId,
      category: item.category,
    })
    const { messageId } = await mailer.send({
      // The same Message-ID on every attempt: when an SMTP answer is lost after the server took
      // the message, the retry is a duplicate that mail systems recognise and drop.
      messageId: deliveryMessageId(item.id, deps.env.MAIL_FROM),
      to: item.to,
      subject: item.email.subject,
      text: `${item.email.text}\n\n---\nUnsubscribe / 配信停止: ${tracking.unsubscribeUrl}\n`,
      html: tracking.rewriteHtml(item.email.html),
      headers: {
        'List-Unsubscribe': `<${tracking.unsubscribeUrl}>`,
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
    })
    return { id: item.id, status: 'sent', channel: 'email', requestId: messageId }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    // SMTP replies can quote the address: log codes only.
    const { code, responseCode } = (error ?? {}) as { code?: string; responseCode?: number }
    // A 5xx reply is permanent (unknown mailbox, refused): retrying cannot help.
    if (responseCode !== undefined && responseCode >= 500) {
      deps.log.warn({ deliveryId: item.id, code, responseCode }, 'email refused')
      return { id: item.id, status: 'failed', error: `email: ${message}` }
    }
    deps.log.warn({ deliveryId: item.id, code, responseCode }, 'email not sent, will retry')
    return { id: item.id, status: 'pending', error: `email: ${message}` }
  }
}

/** `<kizuna.delivery.<id>@<the sender's domain>>`: one per delivery, whatever the attempt. */
export function deliveryMessageId(deliveryId: string, mailFrom: string): string {
  const domain = /@([^\s>]+)/.exec(mailFrom)?.[1] ?? 'kizuna.local'
  return `<kizuna.delivery.${deliveryId}@${domain}>`
}
