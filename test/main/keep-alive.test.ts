import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { sign, startTestKizuna } from '../support/harness.ts'

/** Sends one keep-alive request on `socket` and resolves with the status line of the answer. */
async function ask(socket: Socket, host: string): Promise<string> {
  if (socket.readyState !== 'open') throw new Error('the server closed the connection')
  const answer = new Promise<string>((resolve, reject) => {
    let text = ''
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1')
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData)
        resolve(text.slice(0, text.indexOf('\r\n')))
      }
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error('the server closed the connection')))
  })
  socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`)
  return answer
}

describe('HTTP keep-alive', () => {
  it('keeps an idle connection open longer than Node’s 5 s, and still shuts down at once with it open', async () => {
    const kizuna = await startTestKizuna()
    const { port, hostname: host } = new URL(kizuna.baseUrl ?? '')
    const socket = connect(Number(port), host)
    await once(socket, 'connect')
    try {
      expect(await ask(socket, host)).toBe('HTTP/1.1 200 OK')
      // Idle past Node's default keep-alive timeout: a server that closed here would make the
      // next request on this connection fail (ECONNRESET for a client that sent it meanwhile).
      await new Promise((r) => setTimeout(r, 6_000))
      expect(await ask(socket, host)).toBe('HTTP/1.1 200 OK')
    } finally {
      // Shutting down closes idle connections rather than waiting the 65 s out.
      const stopped = kizuna.stopAll().then(() => 'stopped')
      const hung = new Promise((r) => setTimeout(() => r('hung'), 15_000))
      expect(await Promise.race([stopped, hung])).toBe('stopped')
      socket.destroy()
    }
  }, 30_000)

  it('shuts down at once when a request was under way on a keep-alive connection, closing it after the answer', async () => {
    const kizuna = await startTestKizuna()
    const { port, hostname: host } = new URL(kizuna.baseUrl ?? '')
    const socket = connect(Number(port), host)
    await once(socket, 'connect')
    let received = ''
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
    })
    const closed = once(socket, 'close')
    try {
      // A webhook whose body is still arriving when SIGTERM comes: it is under way.
      const body = JSON.stringify({ destination: 'U0123456789abcdef0123456789abcdef', events: [] })
      socket.write(
        `POST /webhooks/line HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n` +
          'Content-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\nx-line-signature: ${sign(body)}\r\n\r\n` +
          body.slice(0, 10),
      )
      await new Promise((r) => setTimeout(r, 200))
      const stopped = kizuna.stopAll().then(() => 'stopped')
      await new Promise((r) => setTimeout(r, 200))
      socket.write(body.slice(10))
      // It is answered, told the connection ends, and the connection is closed: stopping waits
      // for neither the 65 s keep-alive nor a client that never closes its side.
      const hung = new Promise((r) => setTimeout(() => r('hung'), 15_000))
      expect(await Promise.race([stopped, hung])).toBe('stopped')
      await closed
      expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
      expect(received.toLowerCase()).toContain('\r\nconnection: close\r\n')
    } finally {
      socket.destroy()
    }
  }, 30_000)
})
