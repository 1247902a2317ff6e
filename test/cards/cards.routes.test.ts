import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signCardToken } from '../../src/cards/card-token.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { TOMBSTONE } from '../../src/identity/tombstone.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

const run = promisify(execFile)
let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

/** A new friend's card number and the barcode URL from the Flex card LINE delivered. */
async function cardFromLine() {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  const message = await eventually(() => {
    const [entry] = k.line.inbox(user.userId)
    expect(entry?.message.type).toBe('flex')
    return entry!.message as { contents: { hero: { url: string } } }
  })
  const url = message.contents.hero.url
  const card = await k.deps.db
    .selectFrom('identity as i')
    .innerJoin('line_user as l', 'l.customer_id', 'i.customer_id')
    .select(['i.id', 'i.value', 'i.customer_id'])
    .where('l.line_uid', '=', user.userId)
    .where('i.kind', '=', 'member_card')
    .executeTakeFirstOrThrow()
  return {
    url,
    cardNumber: card.value,
    identityId: card.id,
    customerId: card.customer_id,
    json: JSON.stringify(message),
  }
}

/** Without PUBLIC_BASE_URL the URL names this server's port; fetch the same path from it. */
const fetchFromServer = (url: string) => fetch(`${k.baseUrl}${new URL(url).pathname}`)

async function decodeBarcode(png: Uint8Array): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'barcode-')), 'card.png')
  writeFileSync(file, png)
  const { stdout } = await run('zbarimg', ['--quiet', '--raw', file])
  return stdout.trim()
}

describe('GET /cards/:token/barcode.png', () => {
  it('serves an EAN-13 PNG that decodes to the card number in the Flex card', async () => {
    const { url, cardNumber, json } = await cardFromLine()
    expect(json).toContain(cardNumber)
    expect(url).toMatch(/^http:\/\/localhost:\d+\/cards\//)

    const res = await fetchFromServer(url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('image/png')
    const cache = res.headers.get('cache-control') ?? ''
    expect(cache).toMatch(/^private, max-age=\d+$/)
    expect(Number(cache.split('=')[1])).toBeLessThanOrEqual(86_400)
    const png = new Uint8Array(await res.arrayBuffer())
    expect(Buffer.from(png.subarray(1, 4)).toString()).toBe('PNG')
    expect(await decodeBarcode(png)).toBe(cardNumber)
  })

  it('refuses a tampered token with 404 and the error shape', async () => {
    const { url } = await cardFromLine()
    const token = new URL(url).pathname.split('/')[2]!
    const [payload = '', sig = ''] = token.split('.')
    const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'AB' : 'AA'}`
    const forged = Buffer.from(
      JSON.stringify({ c: randomUUID(), exp: Math.floor(Date.now() / 1000) + 3600 }),
    ).toString('base64url')
    // The last character of 43 holds two unused bits: another spelling of the same signature.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const respelt = `${sig.slice(0, -1)}${alphabet[alphabet.indexOf(sig.at(-1) ?? 'A') ^ 1]}`
    expect(Buffer.from(respelt, 'base64url')).toEqual(Buffer.from(sig, 'base64url'))
    const bads = [`${payload}.${flipped}`, `${payload}.${respelt}`, `${forged}.${sig}`, 'nonsense']
    for (const bad of [...bads, `${payload}.`]) {
      const res = await fetch(`${k.baseUrl}/cards/${bad}/barcode.png`)
      expect(res.status).toBe(404)
      const error = await errorOf(res)
      expect(error.code).toBe('NOT_FOUND')
      expect(error.message).toMatch(/member-card link/)
      expect(error.requestId).toBeTruthy()
    }
  })

  it('answers 410 for an expired token and 404 for a card that does not exist', async () => {
    const { identityId } = await cardFromLine()
    const expired = await signCardToken(k.deps.db, identityId, new Date(Date.now() - 1_000))
    const gone = await fetch(`${k.baseUrl}/cards/${expired}/barcode.png`)
    expect(gone.status).toBe(410)
    expect((await errorOf(gone)).code).toBe('GONE')

    const unknown = await signCardToken(k.deps.db, randomUUID(), new Date(Date.now() + 60_000))
    const missing = await fetch(`${k.baseUrl}/cards/${unknown}/barcode.png`)
    expect(missing.status).toBe(404)
    expect((await errorOf(missing)).message).toMatch(/no longer exists/)
  })

  it("answers 404 once the member is erased, though the link's signature still holds", async () => {
    const { url, identityId, customerId } = await cardFromLine()
    await eraseCustomer(k.deps.db, customerId)
    // The card's row stays, its number replaced by a tombstone, under the id the token names.
    const tombstone = await k.deps.db
      .selectFrom('identity')
      .select('value')
      .where('id', '=', identityId)
      .executeTakeFirstOrThrow()
    expect(tombstone.value.startsWith(TOMBSTONE)).toBe(true)
    const res = await fetchFromServer(url)
    expect(res.status).toBe(404)
    expect(res.headers.get('content-type')).not.toBe('image/png')
    const error = await errorOf(res)
    expect(error.code).toBe('NOT_FOUND')
    expect(error.message).toMatch(/no longer exists/)
  })
})
