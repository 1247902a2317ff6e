import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { testEnv } from '../support/harness.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'

let smtp: Smtp
let db: Database
beforeAll(async () => {
  smtp = await startSmtp()
  db = await createDb(testEnv())
})
afterAll(async () => {
  smtp?.answerStalled()
  await smtp?.close()
  await db?.destroy()
})

describe('the SMTP mailer', () => {
  it('waits for a relay that takes longer than 10 s to answer the end of a message (content scanning)', async () => {
    const mailer = createMailer(
      { SMTP_URL: smtp.url, MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>' },
      db,
      { sandbox: false },
    )
    try {
      smtp.stall('DATA')
      const sent = mailer.send({ to: 'slow@example.com', subject: 'Hello', text: 'Hi' })
      // RFC 5321 §4.5.3.2.6 asks a client to wait 10 minutes for this answer; relays that scan
      // what they receive often take more than 10 s. Given up on, the email could neither be
      // sent again (the relay may have taken it) nor called sent.
      await new Promise((resolve) => setTimeout(resolve, 11_000))
      smtp.answerStalled()
      await expect(sent).resolves.toMatchObject({ messageId: expect.any(String) })
      expect(smtp.mails.map((m) => m.to)).toEqual([['slow@example.com']])
    } finally {
      smtp.stall(null)
      mailer.close()
    }
  }, 30_000)
})
