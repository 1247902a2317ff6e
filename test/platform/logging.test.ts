import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { startKizuna } from '../../src/main/runtime.ts'
import { AppError } from '../../src/platform/errors.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** A logger writing to `lines`, and a connection of its own whose failures are returned. */
async function loggingDatabaseErrors() {
  const { lines, sink } = logSink()
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await client.connect()
  cleanups.push(() => client.end())
  const failure = (query: string, values: unknown[]) =>
    client.query(query, values).then(
      () => expect.unreachable(),
      (err: unknown) => err as Error,
    )
  return { lines, log: createLogger('info', sink), client, failure }
}

describe('logs', () => {
  it('carry no LINE user ids, names or message texts through a whole conversation', async () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk))
        done()
      },
    })
    const line = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => line.close())
    const env = testEnv({
      LOG_LEVEL: 'trace',
      LINE_API_BASE_URL: line.apiBaseUrl,
      LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    })
    const k = await startKizuna(env, {
      log: createLogger('trace', sink),
      queuePrefix: `test-${randomUUID()}`,
    })
    cleanups.push(() => k.stop())
    line.setWebhookUrl(`${k.baseUrl}/webhooks/line`)

    const user = line.users.create({ displayName: 'Secret Name' })
    // A refused reply (the push follows, logging why) exercises one more log line.
    line.failNext({
      method: 'POST',
      path: '/v2/bot/message/reply',
      status: 400,
      body: { message: 'Invalid reply token' },
    })
    await line.users.follow(user.userId)
    await line.users.sendText(user.userId, 'my phone is 090-1234-5678')
    await line.users.postback(user.userId, 'action=unknown-thing')
    await eventually(() => expect(line.inbox(user.userId)).toHaveLength(1))
    await eventually(() => expect(lines.join('')).toContain('no route for this event'))

    // Every request's line carries the request id its answer had.
    const res = await fetch(`${k.baseUrl}/healthz`)
    const requestId = res.headers.get('x-request-id')
    await eventually(() =>
      expect(lines.map((l) => JSON.parse(l))).toContainEqual(
        expect.objectContaining({ msg: 'request', route: '/healthz', requestId, status: 200 }),
      ),
    )
    const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request')
    expect(requests.filter((r) => r.route === '/webhooks/line').length).toBeGreaterThanOrEqual(3)
    for (const r of requests) expect(r.requestId).toEqual(expect.any(String))

    const all = lines.join('')
    expect(lines.length).toBeGreaterThan(3)
    expect(all).not.toContain(user.userId)
    expect(all).not.toContain('Secret Name')
    expect(all).not.toContain('090-1234-5678')
  })

  it('carry no row data from database errors (detail, where), even inside an aggregate', async () => {
    const { lines, log, client, failure } = await loggingDatabaseErrors()
    // Postgres quotes the JSON it could not parse in `where`, the duplicate key in `detail`.
    const badJson = await failure('select $1::jsonb', ['{"text":"090-1234-5678 \\ud83d"}'])
    await client.query('create temp table logged (email text unique)')
    await client.query('insert into logged values ($1)', ['hanako@example.com'])
    const duplicate = await failure('insert into logged values ($1)', ['hanako@example.com'])
    expect((badJson as { where?: string }).where).toContain('090-1234-5678')
    expect((duplicate as { detail?: string }).detail).toContain('hanako@example.com')

    log.error({ err: badJson }, 'webhook events could not be stored')
    log.error({ err: new AggregateError([duplicate], 'one failed') }, 'job attempt failed')
    log.error(duplicate, 'as the first argument')

    const all = lines.join('')
    expect(all).not.toContain('090-1234-5678')
    expect(all).not.toContain('hanako@example.com')
    const [first, second, third] = lines.map((l) => JSON.parse(l))
    expect(first.err).toMatchObject({
      code: '22P02',
      message: 'invalid input syntax for type json',
    })
    expect(second.err.aggregateErrors[0]).toMatchObject({
      code: '23505',
      constraint: 'logged_email_key',
    })
    expect(third.err).toMatchObject({ code: '23505', table: 'logged' })
  })

  it('carry no value a Postgres data error quotes in its message, nor one it caused', async () => {
    const { lines, log, failure } = await loggingDatabaseErrors()
    // An email where a customer id was expected (22P02), a phone number as a number (22003).
    const notUuid = await failure('select $1::uuid', ['taro@example.com'])
    const outOfRange = await failure('select $1::int', ['09012345678'])
    expect(notUuid.message).toContain('taro@example.com')
    expect(outOfRange.message).toContain('09012345678')

    log.error({ err: notUuid }, 'as it is')
    log.error({ err: new AppError('INTERNAL', 'lookup failed', { cause: outOfRange }) }, 'caused')
    log.error({ err: new AggregateError([notUuid], 'one failed') }, 'in an aggregate')

    const all = lines.join('')
    expect(all).not.toContain('taro@example.com')
    expect(all).not.toContain('09012345678')
    // What went wrong is still said.
    expect(JSON.parse(lines[0] as string).err).toMatchObject({
      code: '22P02',
      message: expect.stringContaining('invalid input syntax for type uuid'),
    })
  })

  it('carry no personal data under any of its usual names, one or two levels down', () => {
    const { lines, sink } = logSink()
    const log = createLogger('info', sink)
    const uid = `U${'a'.repeat(32)}`
    log.info({ lineUid: uid, line_uid: uid, to: uid }, 'top level')
    log.info({ customer_email: 'c@example.com', pending_email: 'p@example.com' }, 'columns')
    log.info(
      { row: { line_uid: uid, customer_email: 'c@example.com', name: 'Taro Yamada' } },
      'row',
    )
    log.info({ a: { b: { email: 'deep@example.com', name: 'Hanako Sato' } } }, 'two down')
    log.info({ users: [{ email: 'list@example.com', lineUserId: uid }] }, 'in a list')
    log.info({ to: uid, messages: [{ type: 'text', text: 'hello Taro' }] }, 'a push body')

    const all = lines.join('')
    for (const secret of [
      uid,
      'c@example.com',
      'p@example.com',
      'Taro Yamada',
      'deep@example.com',
      'Hanako Sato',
      'list@example.com',
      'hello Taro',
    ]) {
      expect(all).not.toContain(secret)
    }
    // The rest of each line stays.
    expect(JSON.parse(lines[5] as string).messages[0].type).toBe('text')
  })
})
