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
  /** Resolves with the Message-ID the message went out with (null in the sandbox mailbox). */
  send(mail: Mail): Promise<{ messageId: string | null }>
  /** Closes pooled SMTP connections (shutdown). */
  close(): void
}

const SMTP_TIMEOUT_MS = 10_000

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
      socketTimeout: SMTP_TIMEOUT_MS,
    })
    return {
      kind: 'smtp',
      async send(mail) {
        const info = await transport.sendMail({ from: env.MAIL_FROM, ...mail })
        return { messageId: info.messageId ?? null }
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
