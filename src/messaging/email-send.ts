import addressparser from 'nodemailer/lib/addressparser'
import { type Mailer, messageMayHaveArrived } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { emailTracking } from '../tracking/tracking.service.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { EMAIL_OUTCOME_UNKNOWN } from './outcome-unknown.ts'

export type EmailItem = {
  id: string
  customerId: string
  category: 'transactional' | 'marketing'
  to: string
  email: { subject: string; html: string; text: string }
}

/**
 * Sends one delivery's email, given `timeoutMs` at most: links through `/r/`, an open pixel, and
 * RFC 8058 one-click unsubscribe for the delivery's category. A 5xx refusal of the recipient
 * (RCPT TO) or of this message (DATA) fails the delivery, as does a message larger than the
 * server takes. So does a message the server got whole and never answered (a timeout, a dropped
 * connection, the deadline): it may have arrived, and is failed as EMAIL_OUTCOME_UNKNOWN.
 * Anything else leaves it to be retried: a temporary failure (4xx, or a connection lost before
 * the message was sent), and a refusal of Kizuna's own setup (its login, its sender, its
 * connection, a refusal to relay), which would fail every email alike until an operator fixes
 * SMTP_URL, MAIL_FROM or the relay.
 */
export async function sendEmail(
  deps: Pick<Deps, 'db' | 'env' | 'log'>,
  mailer: Mailer,
  item: EmailItem,
  timeoutMs: number,
): Promise<DeliveryOutcome> {
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    const tracking = await emailTracking(deps, {
      deliveryId: item.id,
      customerId: item.customerId,
      category: item.category,
    })
    const message = {
      // The same Message-ID on every attempt: the relay's log tells by it whether a message whose
      // outcome is unknown arrived, and a mail system may drop a copy sent again after a worker
      // stopped before recording the outcome.
      messageId: deliveryMessageId(item.id, deps.env.MAIL_FROM),
      to: item.to,
      subject: item.email.subject,
      text: `${item.email.text}\n\n---\nUnsubscribe / 配信停止: ${tracking.unsubscribeUrl}\n`,
      html: tracking.rewriteHtml(item.email.html),
      headers: {
        'List-Unsubscribe': `<${tracking.unsubscribeUrl}>`,
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
    }
    const { messageId } = await mailer.send(message, { signal })
    return { id: item.id, status: 'sent', channel: 'email', requestId: messageId }
  } catch (error) {
    // SMTP replies can quote the address (`550 5.1.1 <a@b.jp>: Recipient address rejected`):
    // the log and the row keep their codes and our own words, never the reply's text.
    const smtp = (error ?? {}) as SmtpError
    const codes = smtpCodes(error)
    const fields = {
      deliveryId: item.id,
      code: smtp.code,
      command: smtp.command,
      responseCode: smtp.responseCode,
    }
    const timedOut = `the send took over ${timeoutMs / 1000} s`
    if (messageMayHaveArrived(error)) {
      deps.log.warn(fields, 'email outcome unknown: the server got it all and did not answer')
      const why = signal.aborted ? timedOut : `the server got it all and did not answer (${codes})`
      return { id: item.id, status: 'failed', error: `${EMAIL_OUTCOME_UNKNOWN}: ${why}` }
    }
    const setup = setupRefusal(smtp)
    if (setup) {
      // Every email fails the same way until the setting is fixed: say which one, loudly.
      deps.log.error(fields, `email not sent: ${setup}; will retry`)
      return { id: item.id, status: 'pending', error: `email: ${setup} (${codes})` }
    }
    if (tooLarge(smtp)) {
      deps.log.warn(fields, 'email refused: larger than the SMTP server takes')
      const error = `email: the message is larger than the SMTP server takes (${codes})`
      return { id: item.id, status: 'failed', error }
    }
    if (refusedForGood(smtp)) {
      deps.log.warn(fields, 'email refused')
      const what = smtp.command === 'RCPT TO' ? 'recipient' : 'message'
      return {
        id: item.id,
        status: 'failed',
        error: `email: the SMTP server refused the ${what} (${codes})`,
      }
    }
    deps.log.warn(fields, 'email not sent, will retry')
    // Our own errors (email not configured) say what to do; the rest by their codes.
    const why = signal.aborted
      ? timedOut
      : `not sent: ${error instanceof AppError ? error.message : codes}`
    return { id: item.id, status: 'pending', error: `email: ${why}` }
  }
}

/**
 * What nodemailer's SMTP errors carry: `code` (EAUTH, EENVELOPE, EMESSAGE, ECONNECTION, …), the
 * SMTP `command` answered (`AUTH PLAIN`, `MAIL FROM`, `RCPT TO`, `DATA`, `CONN`, …) and the
 * reply's `responseCode`.
 */
type SmtpError = { code?: unknown; command?: unknown; responseCode?: unknown; response?: unknown }

/**
 * An SMTP error by its codes alone (`reply 550, to RCPT TO, EENVELOPE`), for the delivery row;
 * the error's name when it has none.
 */
function smtpCodes(error: unknown): string {
  const e = (error ?? {}) as SmtpError
  const parts = [
    typeof e.responseCode === 'number' ? `reply ${e.responseCode}` : null,
    typeof e.command === 'string' && /^[A-Z][A-Z ]{0,19}$/.test(e.command)
      ? `to ${e.command}`
      : null,
    typeof e.code === 'string' && /^[A-Z0-9_]{1,30}$/.test(e.code) ? e.code : null,
  ].filter((p) => p !== null)
  if (parts.length > 0) return parts.join(', ')
  return error instanceof Error ? error.name : 'unknown error'
}

/**
 * Replies about logging in (RFC 4954), whatever command they answer: 530 authentication
 * required, 534 mechanism too weak, 535 credentials invalid, 538 encryption required.
 */
const LOGIN_REPLIES = new Set([530, 534, 535, 538])

const permanentReply = (e: SmtpError): e is SmtpError & { responseCode: number } =>
  typeof e.responseCode === 'number' && e.responseCode >= 500

/**
 * A relay declining to pass mail on for this client, as Postfix (`554 5.7.1 <a@b.jp>: Relay access
 * denied`), Sendmail (`550 5.7.1 <a@b.jp>... Relaying denied`), Exim (`550 relay not permitted`)
 * and Exchange (`550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain`) word it.
 */
const RELAY_REFUSED =
  /\b(relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)|unable to relay)\b/i

/**
 * A permanent refusal of Kizuna's own setup rather than of this email, as an operator should read
 * it; null otherwise. Decided on nodemailer's codes and the command answered, not the reply text,
 * except for a refusal to relay: it answers RCPT TO with a code a bad address gets too.
 */
function setupRefusal(e: SmtpError): string | null {
  // A 4xx (454 during AUTH too) is temporary whatever it answered.
  if (typeof e.responseCode === 'number' && e.responseCode < 500) return null
  if (e.code === 'EAUTH' || (permanentReply(e) && LOGIN_REPLIES.has(e.responseCode))) {
    return 'the SMTP server refused the login (check the user and password in SMTP_URL)'
  }
  // No reply at all (a connection refused, a timeout) is an outage: retried as such.
  if (!permanentReply(e)) return null
  if (e.command === 'MAIL FROM') {
    return 'the SMTP server refused the sender (check that MAIL_FROM may send through SMTP_URL)'
  }
  // Every email is refused alike until the relay takes Kizuna's login (or address) for sending
  // on: not the recipient's fault. The reply (it quotes the address) is only read here.
  if (e.command === 'RCPT TO' && typeof e.response === 'string' && RELAY_REFUSED.test(e.response)) {
    return 'the SMTP server refused to relay the email (check the login in SMTP_URL, and that the relay may send for MAIL_FROM)'
  }
  if (e.command === 'RCPT TO' || e.command === 'DATA') return null
  // The greeting, EHLO, STARTTLS: the server turned the connection away.
  return 'the SMTP server refused the connection (check SMTP_URL)'
}

/**
 * Larger than the server takes: nodemailer's own check against the SIZE the server announced
 * (EMESSAGE before MAIL FROM, no reply; when a size is given in the envelope), or the server's
 * 552 to the message saying so (RFC 3463: 5.3.4 message too big, 5.2.3 over the administrative
 * limit; a 552 5.2.2 is a full mailbox). Sending it again cannot help.
 */
function tooLarge(e: SmtpError): boolean {
  if (e.code === 'EMESSAGE' && e.command === 'MAIL FROM') return typeof e.responseCode !== 'number'
  const reply = typeof e.response === 'string' ? e.response : ''
  return e.command === 'DATA' && /^552[ -]5\.(3\.4|2\.3)\b/.test(reply)
}

/** A 5xx reply to this email's recipient (RCPT TO) or content (DATA): retrying cannot help. */
function refusedForGood(e: SmtpError): boolean {
  return permanentReply(e) && (e.command === 'RCPT TO' || e.command === 'DATA')
}

/**
 * `<kizuna.delivery.<id>@<the sender's domain>>`: one per delivery, whatever the attempt. The
 * domain is the address's, as nodemailer reads MAIL_FROM for the envelope (its address parser): a
 * display name may hold an `@` (`渋谷店@Kizuna <shop@shop.jp>`, `"a@b" <shop@shop.jp>`).
 */
export function deliveryMessageId(deliveryId: string, mailFrom: string): string {
  const [sender] = addressparser(mailFrom, { flatten: true })
  const address = sender?.address ?? ''
  const domain = address.includes('@') ? address.slice(address.lastIndexOf('@') + 1) : ''
  return `<kizuna.delivery.${deliveryId}@${domain || 'kizuna.local'}>`
}
