import { Hono } from 'hono'
import { html } from 'hono/html'
import type { Db } from '../platform/db.ts'

const SHOWN = 50

export async function insertSandboxMail(
  db: Db,
  mail: {
    from: string
    to: string
    subject: string
    text: string
    html?: string
    headers?: Record<string, string>
  },
): Promise<void> {
  await db
    .insertInto('sandbox_mail')
    .values({
      from_address: mail.from,
      to_address: mail.to,
      subject: mail.subject,
      text: mail.text,
      html: mail.html ?? null,
      headers: mail.headers ? JSON.stringify(mail.headers) : null,
    })
    .execute()
}

export async function listSandboxMail(db: Db, limit = SHOWN) {
  return db
    .selectFrom('sandbox_mail')
    .select(['id', 'to_address', 'subject', 'text', 'html', 'headers', 'created_at'])
    .orderBy('created_at', 'desc')
    .limit(limit)
    .execute()
}

/** `GET /sandbox/mail`: the newest sandbox mail first (sandbox runs only; values escaped). */
export function sandboxMailRoutes(db: Db) {
  return new Hono().get('/', async (c) => {
    const mails = await listSandboxMail(db)
    return c.html(html`<!doctype html>
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <title>Sandbox mailbox</title>
        </head>
        <body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 1rem auto">
          <h1>Sandbox mailbox</h1>
          <p>Mail Kizuna would have sent (SMTP_URL is not set). Newest first.</p>
          ${mails.length === 0 ? html`<p>No mail yet.</p>` : ''}
          ${mails.map(
            (m) => html`<article style="border-top: 1px solid #ccc; padding: 0.5rem 0">
              <p><strong>To:</strong> ${m.to_address} · ${m.created_at.toISOString()}</p>
              <p><strong>${m.subject}</strong></p>
              ${headerLines(m.headers)}
              ${
                m.html
                  ? html`<iframe
                      title="${m.subject}"
                      sandbox
                      srcdoc="${m.html}"
                      style="width: 100%; height: 28rem; border: 1px solid #ddd"
                    ></iframe>`
                  : ''
              }
              <pre style="white-space: pre-wrap">${m.text}</pre>
            </article>`,
          )}
        </body>
      </html>`)
  })
}

/** The headers a reader may want to try (List-Unsubscribe: the one-click link). */
function headerLines(headers: unknown) {
  if (!headers || typeof headers !== 'object') return ''
  return Object.entries(headers as Record<string, string>).map(
    ([name, value]) => html`<p style="font-size: 0.85rem; color: #555">${name}: ${value}</p>`,
  )
}
