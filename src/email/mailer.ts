import nodemailer from 'nodemailer'
import { type Env, type MailKind, mailKind } from '../config/env.ts'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { insertSandboxMail } from './sandbox-mailbox.ts'

export type Mail = {
  to: string
  subject: string
  text: string
  html?: string
  headers?: Record<string, string>
  /** The Message-ID to send with (`<…@…>`); nodemailer makes one up without it. */
  messageId?: string
}

export type Mailer = {
  /** `smtp`: SMTP_URL; `sandbox`: the sandbox mailbox table; `none`: email is not configured. */
  kind: MailKind
  /**
   * Resolves with the Message-ID the message went out with (null in the sandbox mailbox).
   * `signal` gives up on it (EABORT), waiting for a connection or under way: its connection is
   * closed. See messageMayHaveArrived for what such an error, or any, says about the message.
   */
  send(mail: Mail, opts?: { signal?: AbortSignal }): Promise<{ messageId: string | null }>
  /** Closes pooled SMTP connections (shutdown). */
  close(): void
}

/** Connecting and the server's greeting. */
const SMTP_TIMEOUT_MS = 10_000
/**
 * Silence from the server while it owes an answer. RFC 5321 §4.5.3.2.6 asks a client to wait
 * up to 10 minutes for the answer to a whole message: relays that scan what they receive often
 * take more than 10 s, and an email given up on there may have arrived (it is then neither sent
 * again nor called sent). Two minutes, inside the quarter of the sending lease a delivery's email
 * may take (send-window.ts); a caller that cannot wait that long passes a signal (the link code).
 */
export const SMTP_SOCKET_TIMEOUT_MS = 120_000

/** Errors of sends that failed with the whole message written out and no answer to it. */
const unanswered = new WeakSet<object>()

/**
 * The send failed after the whole message had been written to the SMTP server, and no answer
 * came (a timeout, a dropped connection, the caller's signal): the server may have taken it (RFC
 * 5321 §4.5.3.2.6: a client giving up while the server answers "would typically result in
 * delivery of multiple copies"). Before that point, or with an answer (a 4xx or 5xx), it did not.
 */
export function messageMayHaveArrived(error: unknown): boolean {
  return typeof error === 'object' && error !== null && unanswered.has(error)
}

/**
 * Sends through `SMTP_URL` when it is set. Without it, a sandbox run (no LINE credentials)
 * writes mail to the `sandbox_mail` table (shown at /sandbox/mail); a run against the real LINE
 * platform refuses to send rather than keep codes where anyone could read them.
 */
export function createMailer(
  env: Pick<Env, 'SMTP_URL' | 'MAIL_FROM'>,
  db: Db,
  opts: { sandbox: boolean },
): Mailer {
  const kind = mailKind(env, opts)
  if (kind === 'smtp') {
    const transport = nodemailer.createTransport({
      url: env.SMTP_URL,
      // One pool of SMTP connections per process: a campaign doesn't reconnect per message.
      pool: true,
      connectionTimeout: SMTP_TIMEOUT_MS,
      greetingTimeout: SMTP_TIMEOUT_MS,
      socketTimeout: SMTP_SOCKET_TIMEOUT_MS,
    })
    // Each send's signal (nodemailer passes it along as given) to what notes that its message
    // was read to its end. The SMTP connection reads it only once the server said go ahead
    // (354 to DATA), and writes the final dot after its end; the stream's end comes after its
    // consumer read it all (it is the last stage: no DKIM, no newline conversion).
    const written = new WeakMap<AbortSignal, () => void>()
    transport.use('stream', (message, done) => {
      const onEnd = message.data.signal ? written.get(message.data.signal) : undefined
      // Applied to each reading: a message sent again over another connection is read again.
      if (onEnd) message.message?.processFunc((output) => output.once('end', onEnd))
      done()
    })
    return {
      kind: 'smtp',
      async send(mail, opts = {}) {
        // A signal of its own for each send, even without the caller's.
        const signal = AbortSignal.any(opts.signal ? [opts.signal] : [])
        let whole = false
        written.set(signal, () => {
          whole = true
        })
        try {
          const info = await transport.sendMail({ from: env.MAIL_FROM, ...mail, signal })
          return { messageId: info.messageId ?? null }
        } catch (error) {
          const answered = typeof (error as { responseCode?: unknown })?.responseCode === 'number'
          if (whole && !answered && typeof error === 'object' && error !== null) {
            unanswered.add(error)
          }
          throw error
        }
      },
      close: () => transport.close(),
    }
  }
  if (kind === 'sandbox') {
    return {
      kind: 'sandbox',
      async send(mail) {
        await insertSandboxMail(db, { from: env.MAIL_FROM, ...mail })
        return { messageId: null }
      },
      close() {},
    }
  }
  return {
    kind: 'none',
    async send() {
      throw new AppError('UNAVAILABLE', 'email is not configured on this server (SMTP_URL)')
    },
    close() {},
  }
}
