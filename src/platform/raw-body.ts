import type { Context } from 'hono'
import { type AppError, invalidField } from './errors.ts'

/**
 * The request body as raw bytes, at most `maxBytes` (413 beyond). With a Content-Length the
 * size is checked before reading and the server's fast path reads the body; a chunked body is
 * streamed and cut off at the limit. (Hono's bodyLimit always rebuilds a full web Request,
 * which costs more than the rest of the webhook's work.) A client gone before its whole body
 * came is a 400 (isClientGone), not an outage.
 */
export async function readRawBody(c: Context, maxBytes: number): Promise<Buffer> {
  try {
    return await read(c, maxBytes)
  } catch (error) {
    if (!isClientGone(error)) throw error
    // A 400, the client's doing: not logged, not counted as the service unavailable.
    throw invalidField('(body)', 'the connection closed before the whole body came')
  }
}

async function read(c: Context, maxBytes: number): Promise<Buffer> {
  const length = c.req.header('content-length')
  if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
    if (Number(length) > maxBytes) throw tooLarge(c, maxBytes)
    return Buffer.from(await c.req.arrayBuffer())
  }
  const stream = c.req.raw.body
  if (!stream) return Buffer.alloc(0)
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of stream) {
    size += chunk.byteLength
    if (size > maxBytes) throw tooLarge(c, maxBytes)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

function tooLarge(c: Context, maxBytes: number): AppError {
  // The rest of the body is never read, so the connection cannot be reused.
  c.header('connection', 'close')
  return invalidField('(body)', `is larger than ${maxBytes} bytes`, 'PAYLOAD_TOO_LARGE')
}

/**
 * The client closed its connection while its body was being read: Node's request ends with
 * ECONNRESET "aborted", @hono/node-server's with "Client connection prematurely closed.", a
 * stream's with ERR_STREAM_PREMATURE_CLOSE. These once fell to isConnectionError (ECONNRESET is
 * one of its network codes) and were answered 503 and logged as Kizuna unable to reach its database:
 * anyone could fill the log with false outages by dropping uploads to the webhook.
 */
function isClientGone(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') return true
  return error.message === 'aborted' || error.message === 'Client connection prematurely closed.'
}
