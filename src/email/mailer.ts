import nodemailer from 'nodemailer'
import type { Env } from '../config/env.ts'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { insertSandboxMail } from './sandbox-mailbox.ts'

export type Mail = { to: string; subject: string; text: string }

export type Mailer = {
  /** `smtp`: SMTP_URL; `sandbox`: the sandbox mailbox table; `none`: email is not configured. */
  kind: 'smtp' | 'sandbox' | 'none'
  send(mail: Mail): Promise<void>
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
  if (env.SMTP_URL) {
    const transport = nodemailer.createTransport({
      url: env.SMTP_URL,
      connectionTimeout: SMTP_TIMEOUT_MS,
      greetingTimeout: SMTP_TIMEOUT_MS,
      socketTimeout: SMTP_TIMEOUT_MS,
    })
    return {
      kind: 'smtp',
      async send(mail) {
        await transport.sendMail({ from: env.MAIL_FROM, ...mail })
      },
    }
  }
  if (opts.sandbox) {
    return {
      kind: 'sandbox',
      async send(mail) {
        await insertSandboxMail(db, { from: env.MAIL_FROM, ...mail })
      },
    }
  }
  return {
    kind: 'none',
    async send() {
      throw new AppError('UNAVAILABLE', 'email is not configured on this server (SMTP_URL)')
    },
  }
}
