import { describe, expect, it } from 'vitest'
import { enqueueDeliveries } from '../../src/messaging/delivery.service.ts'
import { cli } from '../support/cli.ts'
import { eventually } from '../support/wait.ts'
import { calls, channelRows, query, settings, useLineChannels } from './support.ts'

const { channel, start, databaseOfChannelA } = useLineChannels()

describe('kizuna line-channel adopt', () => {
  it("records the credentials' channel, saying what it replaced, and Kizuna then starts with it", async () => {
    const { database, a, deliveryId } = await databaseOfChannelA()
    const b = await channel('channel-b')

    const adopted = await cli(['line-channel', 'adopt'], settings(database, b))
    expect(adopted).toMatchObject({ code: 0 })
    expect(adopted.stdout).toMatch(
      new RegExp(
        `^recorded the LINE credentials' channel \\(Kizuna Sandbox, @[0-9a-f]{8}\\): LINE bot ` +
          `${b.botUserId}\\nreplaced LINE bot ${a.botUserId} \\(recorded [^)]+\\)\\n$`,
      ),
    )
    expect(adopted.stderr).toMatch(/new users/)
    expect((await channelRows(database)).map((r) => r.bot_user_id)).toEqual([b.botUserId])

    const { k } = await start(database, b, { start: { deployRichMenus: false } })
    await enqueueDeliveries(k.deps.queues, [{ id: deliveryId }])
    // Its friend is channel A's: LINE (B) refuses the push. What matters: it was sent to B.
    await eventually(() => expect(b.requestsTo('POST', '/v2/bot/message/push')).toHaveLength(1))

    // Again: nothing changes.
    const again = await cli(['line-channel', 'adopt'], settings(database, b))
    expect(again.stdout).toMatch(/already the one recorded; nothing changed\n$/)
  })

  it('changes nothing when LINE does not say which channel the credentials are', async () => {
    const { database, a, rows } = await databaseOfChannelA()
    const res = await cli(['line-channel', 'adopt'], {
      ...settings(database, a),
      LINE_API_BASE_URL: 'http://127.0.0.1:9',
    })
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /^error: could not ask LINE which channel these credentials are \(LINE did not answer: .*\): nothing changed\n$/,
    )
    expect(await channelRows(database)).toEqual(rows)
  })
})

describe('one database, one LINE channel: commands that call LINE', () => {
  it("`customers erase` refuses another channel's credentials, erasing nothing", async () => {
    const { database, a, customerId } = await databaseOfChannelA()
    const b = await channel('channel-b')
    const res = await cli(['customers', 'erase', customerId], settings(database, b))
    expect(res).toMatchObject({ code: 1, stdout: '' })
    expect(res.stderr).toMatch(
      new RegExp(
        `^error: The database at DATABASE_URL .* records LINE bot ${a.botUserId} .* are LINE ` +
          `bot ${b.botUserId}'s\\. Nothing erased: no call went to LINE but that check\\.`,
      ),
    )
    expect(calls(b)).toEqual(['GET /v2/bot/info'])
    const [customer] = await query<{ erased_at: Date | null }>(
      database,
      'select erased_at from customer where id = $1',
      [customerId],
    )
    expect(customer).toEqual({ erased_at: null })
  })

  it('`customers erase` goes ahead when LINE does not say, leaving the unlink to the sweeper', async () => {
    const { database, a, customerId } = await databaseOfChannelA()
    a.clearRequests()
    a.failNext({ method: 'GET', path: '/v2/bot/info', status: 500 })
    const res = await cli(['customers', 'erase', customerId], settings(database, a))
    expect(res).toMatchObject({ code: 0, stdout: `erased customer ${customerId}\n` })
    expect(res.stderr).toMatch(
      /^warning: the rich menu of 1 LINE user\(s\) was not unlinked at LINE: which LINE channel these credentials are could not be checked \(LINE answered 500 .*\); the erasure went ahead\. The worker's sweeper/,
    )
    expect(calls(a)).toEqual(['GET /v2/bot/info'])
    expect(await query(database, 'select id from erased_menu_unlink')).toHaveLength(1)
  })
})
