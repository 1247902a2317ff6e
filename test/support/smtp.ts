import type { AddressInfo, Socket } from 'node:net'
import { SMTPServer } from 'smtp-server'

export type ReceivedMail = { to: string[]; raw: string }

/** An SMTP error reply, as smtp-server sends it for an error passed to a callback. */
const reply = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code })

/**
 * A real SMTP server on a free port that keeps what it receives. `refuseNext` makes the next
 * messages fail at the end of DATA with an SMTP reply (451: try again later), as a relay would;
 * `refuseSender` and `refuseRecipient` answer MAIL FROM or RCPT TO with one, and `holdRecipient`
 * keeps RCPT TO waiting for the test's answer (a message under way). With `login`, the
 * server wants AUTH (PLAIN or LOGIN) with that user and password before MAIL FROM (530 without
 * it) and answers 535 to any other; `acceptLogin` changes what it takes. `stall` makes it a slow
 * server that leaves MAIL FROM, or the end of the message, unanswered until told; `dropNext`
 * makes it take the next messages whole and close the connection without answering. With
 * `size`, it announces the largest message it takes.
 */
export async function startSmtp(
  opts: {
    login?: { user: string; password: string }
    /** The largest message it takes (bytes), announced in its EHLO reply (SIZE). */
    size?: number
  } = {},
) {
  const mails: ReceivedMail[] = []
  const refusals: { code: number; message: string }[] = []
  const refusedRecipients = new Map<string, { code: number; message: string }>()
  type Refusal = { code: number; message: string } | null
  const heldRecipients = new Map<string, { reached: () => void; answer: Promise<Refusal> }>()
  let refusedSender: { code: number; message: string } | null = null
  let login = opts.login
  let refused = 0
  let loginsRefused = 0
  let stalling: 'MAIL FROM' | 'DATA' | null = null
  let drops = 0
  const stalled: (() => void)[] = []
  /** Answers now, or when `answerStalled` is called if the server is stalling `command`. */
  const answer = (command: 'MAIL FROM' | 'DATA', send: () => void) => {
    if (stalling === command) stalled.push(send)
    else send()
  }
  const server = new SMTPServer({
    ...(opts.size ? { size: opts.size } : {}),
    authOptional: !login,
    // No TLS here: AUTH goes in the clear to this local test server.
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disabledCommands: login ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (login && auth.username === login.user && auth.password === login.password) {
        callback(null, { user: auth.username })
        return
      }
      loginsRefused += 1
      callback(reply(535, '5.7.8 Authentication credentials invalid'))
    },
    onMailFrom(_address, _session, callback) {
      const refusal = refusedSender
      answer('MAIL FROM', () =>
        callback(refusal ? reply(refusal.code, refusal.message) : undefined),
      )
    },
    onRcptTo(address, _session, callback) {
      const held = heldRecipients.get(address.address.toLowerCase())
      if (held) {
        heldRecipients.delete(address.address.toLowerCase())
        held.reached()
        void held.answer.then((refusal) =>
          callback(refusal ? reply(refusal.code, refusal.message) : undefined),
        )
        return
      }
      const refusal = refusedRecipients.get(address.address.toLowerCase())
      callback(refusal ? reply(refusal.code, refusal.message) : undefined)
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        // Over `size` (smtp-server counts, and leaves the answer to us): Postfix's answer.
        if ((stream as { sizeExceeded?: boolean }).sizeExceeded) {
          callback(reply(552, '5.3.4 Message size exceeds fixed limit'))
          return
        }
        const refusal = refusals.shift()
        if (refusal) {
          refused += 1
          callback(reply(refusal.code, refusal.message))
          return
        }
        // Kept once it is all here, answered or not: a server may take a message and never
        // get its answer through.
        mails.push({
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        })
        if (drops > 0) {
          drops -= 1
          dropConnection(session.remotePort)
          return
        }
        answer('DATA', () => callback())
      })
    },
  })
  // Client connections by their port (all come from 127.0.0.1): a session tells its client's
  // port, not its socket.
  const sockets = new Map<number, Socket>()
  server.server.on('connection', (socket: Socket) => {
    const port = socket.remotePort
    if (port === undefined) return
    sockets.set(port, socket)
    socket.once('close', () => {
      if (sockets.get(port) === socket) sockets.delete(port)
    })
  })
  let dropped = 0
  /** Closes the connection from this client port at once, answering nothing more on it. */
  const dropConnection = (clientPort: number) => {
    const socket = sockets.get(clientPort)
    if (!socket || socket.destroyed) return
    socket.destroy()
    dropped += 1
  }
  // A client gone during a message (a worker process killed) resets its connection: the server
  // carries on, as a real one does, rather than throw in the test.
  server.on('error', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.server.address() as AddressInfo).port
  return {
    url: `smtp://127.0.0.1:${port}`,
    /** `url` with this login in it, as an operator writes SMTP_URL. */
    urlWithLogin: (user: string, password: string) =>
      `smtp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    mails,
    /** Mail received for this address, oldest first. */
    mailsTo: (address: string) => mails.filter((m) => m.to.includes(address)),
    refuseNext(code = 451, message = 'Try again later', count = 1) {
      for (let i = 0; i < count; i++) refusals.push({ code, message })
    },
    /** Answers MAIL FROM with this reply from now on (null: accepts senders again). */
    refuseSender(refusal: { code: number; message: string } | null) {
      refusedSender = refusal
    },
    /** Answers RCPT TO for this address with this reply from now on. */
    refuseRecipient(address: string, code = 550, message = '5.1.1 No such user here') {
      refusedRecipients.set(address.toLowerCase(), { code, message })
    },
    /** Takes RCPT TO for this address again. */
    acceptRecipient(address: string) {
      refusedRecipients.delete(address.toLowerCase())
    },
    /**
     * Keeps the next RCPT TO for this address waiting: `reached` resolves when a message to it
     * gets there, and `answer` replies (a refusal, or null to take it).
     */
    holdRecipient(address: string) {
      let reached!: () => void
      let answer!: (refusal: Refusal) => void
      const held = {
        reached: new Promise<void>((resolve) => {
          reached = resolve
        }),
        answer: new Promise<Refusal>((resolve) => {
          answer = resolve
        }),
      }
      heldRecipients.set(address.toLowerCase(), { reached, answer: held.answer })
      return { reached: held.reached, answer }
    },
    /** From now on the server takes this login (and no other). */
    acceptLogin(user: string, password: string) {
      login = { user, password }
    },
    /**
     * From now on the server leaves its answer to `command` unsent (`MAIL FROM`: before the
     * message is sent; `DATA`: after the whole message arrived, and is kept) until
     * `answerStalled`; `stall(null)` answers new ones at once again.
     */
    stall(command: 'MAIL FROM' | 'DATA' | null) {
      stalling = command
    },
    /**
     * Takes the next `count` messages whole (kept in `mails`) and then closes their connection
     * without answering them: the client cannot tell whether they arrived.
     */
    dropNext(count = 1) {
      drops += count
    },
    /** How many connections `dropNext` closed so far. */
    get dropped() {
      return dropped
    },
    /** Sends the answers the server stalled, the oldest `count` (all by default). */
    answerStalled(count = stalled.length) {
      for (const send of stalled.splice(0, count)) send()
    },
    /** How many answers the server stalled and has not sent (to a client gone or not). */
    get stalled() {
      return stalled.length
    },
    /** How many logins were refused so far. */
    get loginsRefused() {
      return loginsRefused
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
