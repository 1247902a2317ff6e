import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'

export type ReceivedMail = { to: string[]; raw: string }

/**
 * A real SMTP server on a free port that keeps what it receives. `refuseNext` makes the next
 * messages fail at the end of DATA with an SMTP reply (451: try again later), as a relay would.
 */
export async function startSmtp() {
  const mails: ReceivedMail[] = []
  const refusals: { code: number; message: string }[] = []
  let refused = 0
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const refusal = refusals.shift()
        if (refusal) {
          refused += 1
          callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }))
          return
        }
        mails.push({
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        })
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.server.address() as AddressInfo).port
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    /** Mail received for this address, oldest first. */
    mailsTo: (address: string) => mails.filter((m) => m.to.includes(address)),
    refuseNext(code = 451, message = 'Try again later', count = 1) {
      for (let i = 0; i < count; i++) refusals.push({ code, message })
    },
    /** How many messages were refused so far. */
    get refused() {
      return refused
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

export type Smtp = Awaited<ReturnType<typeof startSmtp>>

export type ParsedMail = {
  /** Lower-cased names; unfolded values with RFC 2047 words decoded (the last of a repeat). */
  headers: Map<string, string>
  subject: string
  text: string
  html: string
}

/** Just enough MIME for what nodemailer writes: headers, multipart, base64 / quoted-printable. */
export function parseMail(raw: string): ParsedMail {
  const part = parsePart(raw)
  const leaves = flatten(part)
  const body = (type: string) => leaves.find((p) => p.type === type)?.body ?? ''
  return {
    headers: part.headers,
    subject: part.headers.get('subject') ?? '',
    text: body('text/plain'),
    html: body('text/html'),
  }
}

type Part = { headers: Map<string, string>; type: string; body: string; parts: Part[] }

function parsePart(raw: string): Part {
  const split = raw.search(/\r?\n\r?\n/)
  const head = split < 0 ? raw : raw.slice(0, split)
  const rest = split < 0 ? '' : raw.slice(split).replace(/^\r?\n\r?\n/, '')
  const headers = new Map<string, string>()
  for (const line of head.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), decodeWords(line.slice(colon + 1)))
    }
  }
  const contentType = headers.get('content-type') ?? 'text/plain'
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? 'text/plain'
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1]
  if (type.startsWith('multipart/') && boundary) {
    const sections = rest.split(`--${boundary}`).slice(1, -1)
    return {
      headers,
      type,
      body: '',
      parts: sections.map((s) => parsePart(s.replace(/^\r?\n/, ''))),
    }
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').trim().toLowerCase()
  const bytes =
    encoding === 'base64'
      ? Buffer.from(rest.replace(/\s+/g, ''), 'base64')
      : encoding === 'quoted-printable'
        ? quotedPrintable(rest)
        : Buffer.from(rest, 'utf8')
  return { headers, type, body: bytes.toString('utf8').replace(/\r\n/g, '\n'), parts: [] }
}

function flatten(part: Part): Part[] {
  return part.parts.length ? part.parts.flatMap(flatten) : [part]
}

function quotedPrintable(text: string): Buffer {
  const bytes: number[] = []
  const soft = text.replace(/=\r?\n/g, '')
  for (let i = 0; i < soft.length; i++) {
    const hex = soft.slice(i + 1, i + 3)
    if (soft[i] === '=' && /^[0-9A-F]{2}$/i.test(hex)) {
      bytes.push(Number.parseInt(hex, 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(soft[i] ?? '', 'utf8'))
    }
  }
  return Buffer.from(bytes)
}

/** RFC 2047 encoded words; adjacent words are joined as bytes (a character may span two). */
function decodeWords(value: string): string {
  const word = /=\?([^?]+)\?([BQ])\?([^?]*)\?=/gi
  return value
    .trim()
    .replace(/(=\?[^?]+\?[BQ]\?[^?]*\?=)(\s+(?==\?))/gi, '$1')
    .replace(/(?:=\?[^?]+\?[BQ]\?[^?]*\?=)+/gi, (run) => {
      const bytes = [...run.matchAll(word)].map(([, , enc, data = '']) =>
        enc?.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : quotedPrintable(data.replaceAll('_', ' ')),
      )
      return Buffer.concat(bytes).toString('utf8')
    })
}
