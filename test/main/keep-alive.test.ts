import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { startTestKizuna } from '../support/harness.ts'

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
})
