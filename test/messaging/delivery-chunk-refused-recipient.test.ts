import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  type Friend,
  MULTICAST,
  multicastsTo,
  newFriend,
  PUSH,
  playingWorkers,
  pushesTo,
  sendJobToEnd,
  sendTools,
  waitForStatus,
} from './support.ts'

const BODY_ERRORS = 'The request body has 1 error(s)'

// LINE's multicast reference lists a 400 `to[N]` for a recipient not in the channel, refusing
// the whole request and sending to nobody (its delivery conditions, and LINE-API.md §2.3, say
// 200 instead; the stand-in does that unless told: refuseInMulticast). Kizuna never multicasts
// a malformed id, LINE's other `to[N]` refusal (it pushes those alone). Either way the others'
// deliveries must not fail with it.
describe('a multicast chunk LINE refuses for a recipient', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '' })
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearRequests()
    k.line.clearFailures()
  })

  /** Four friends, the same campaign for each (one chunk); settles the rows to these statuses. */
  async function campaignToFour(friends?: Friend[]) {
    if (!friends) return campaignToFour(await fourFriends())
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f, { displayName: 'みなさま' })),
    )
    return { friends, ids }
  }

  async function fourFriends() {
    const friends = [] as Friend[]
    for (let i = 0; i < 4; i++) friends.push(await newFriend(k))
    return friends
  }

  /** LINE's next multicast answer: 400 with this message and details. */
  const refuseNextMulticast = (
    message: string,
    details?: { message: string; property: string }[],
  ) =>
    k.line.failNext({
      method: 'POST',
      path: MULTICAST,
      status: 400,
      body: details ? { message, details } : { message },
    })

  const pushStatuses = (friend: Friend) => pushesTo(k, friend.userId).map((r) => r.status)

  it('fails the recipient LINE names, and pushes the others alone under their own keys in the same job', async () => {
    const { friends, ids } = await campaignToFour()
    const bad = friends[2]!
    k.line.refuseInMulticast(bad.userId)
    const others = friends.filter((f) => f !== bad)
    const otherIds = ids.filter((_, i) => i !== 2)

    await waitForStatus(k, otherIds, 'sent', 15_000)
    await waitForStatus(k, [ids[2]!], 'failed', 15_000)

    const chunks = multicastsTo(k, others[0]!.userId)
    expect(chunks.map((r) => r.status)).toEqual([400])
    expect((chunks[0]!.body as { to: string[] }).to).toHaveLength(4)
    const rows = await deliveryRows(k, ids)
    const badRow = rows[2]!
    expect(badRow.last_error).toMatch(/^LINE 400: .*to\[\d\]/)
    expect(badRow.line_first_call_at).toBeNull()
    // LINE named them: not pushed as well.
    expect(pushesTo(k, bad.userId)).toEqual([])
    expect(campaignInbox(k, bad.userId)).toEqual([])
    others.forEach((f, i) => {
      const row = rows[[0, 1, 3][i]!]!
      const pushes = pushesTo(k, f.userId)
      expect(pushes.map((p) => p.status)).toEqual([200])
      expect(pushes[0]!.headers['x-line-retry-key']).toBe(row.line_retry_key)
      expect(pushes[0]!.headers['x-line-retry-key']).not.toBe(
        chunks[0]!.headers['x-line-retry-key'],
      )
      expect(row.line_request_id).toBe(pushes[0]!.requestId)
      expect(row.multicast_request_id).toBeNull()
      expect(row.push_body).toBeNull()
      expect(row.last_error).toBeNull()
      // Sent by the job whose chunk was refused: no retry waited for.
      expect(row.attempts).toBe(1)
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
      expect(multicastsTo(k, f.userId)).toHaveLength(1)
    })
    expect(k.line.requestsTo('POST', MULTICAST)).toHaveLength(1)
    expect(k.line.requestsTo('POST', PUSH)).toHaveLength(3)
  })

  it("takes LINE's 200 for a chunk naming a recipient not in the channel: all sent, that one gets nothing", async () => {
    // LINE-API.md §2.3: multicast answers 200 for an id of another provider, and sends it
    // nothing; Kizuna cannot tell, and sends no one twice.
    const { friends, ids } = await campaignToFour()
    const gone = friends[1]!
    k.line.markNotInChannel(gone.userId)

    const rows = await waitForStatus(k, ids, 'sent', 15_000)
    const chunks = multicastsTo(k, friends[0]!.userId)
    expect(chunks.map((r) => r.status)).toEqual([200])
    expect((chunks[0]!.body as { to: string[] }).to).toContain(gone.userId)
    for (const row of rows) expect(row.line_request_id).toBe(chunks[0]!.requestId)
    for (const [i, f] of friends.entries()) {
      expect(pushStatuses(f)).toEqual([])
      expect(campaignInbox(k, f.userId)).toHaveLength(i === 1 ? 0 : 1)
    }
  })

  it('pushes every recipient alone when LINE refuses `to` without naming one', async () => {
    const { friends, ids } = await campaignToFour()
    refuseNextMulticast("The property, 'to', in the request body is invalid (line: -, column: -)")

    const rows = await waitForStatus(k, ids, 'sent', 15_000)
    expect(multicastsTo(k, friends[0]!.userId).map((r) => r.status)).toEqual([400])
    friends.forEach((f, i) => {
      expect(pushStatuses(f)).toEqual([200])
      expect(pushesTo(k, f.userId)[0]!.headers['x-line-retry-key']).toBe(rows[i]!.line_retry_key)
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
      expect(rows[i]!.attempts).toBe(1)
    })
  })

  it('reads the recipient from the details LINE gives too', async () => {
    const { friends, ids } = await campaignToFour()
    refuseNextMulticast(BODY_ERRORS, [{ message: 'invalid', property: 'to[0]' }])

    const chunk = await eventually(() => {
      const [request] = multicastsTo(k, friends[0]!.userId)
      expect(request?.status).toBe(400)
      return request!.body as { to: string[] }
    })
    // The chunk lists its rows in the job's order, not the campaign's.
    const named = friends.findIndex((f) => f.userId === chunk.to[0])
    const [refused] = await waitForStatus(k, [ids[named]!], 'failed', 15_000)
    await waitForStatus(
      k,
      ids.filter((_, i) => i !== named),
      'sent',
      15_000,
    )
    expect(refused!.last_error).toContain('to[0]')
    for (const [i, f] of friends.entries()) {
      expect(pushStatuses(f)).toEqual(i === named ? [] : [200])
    }
  })

  it('fails the one LINE names in a chunk repeated after a 500, and puts back the others to go as new sends', async () => {
    const { friends, ids } = await campaignToFour()
    const bad = friends[1]!
    // The first request gets LINE's 500 (it may have arrived): the retry repeats it as stored,
    // and LINE refuses it for a recipient no longer in the channel.
    k.line.refuseInMulticast(bad.userId)
    k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, body: { message: 'boom' } })

    await waitForStatus(
      k,
      ids.filter((_, i) => i !== 1),
      'sent',
      15_000,
    )
    const [refused] = await waitForStatus(k, [ids[1]!], 'failed', 15_000)
    expect(refused!.last_error).toMatch(/^LINE 400: .*to\[\d\]/)
    const chunks = multicastsTo(k, friends[0]!.userId)
    expect(chunks.map((r) => r.status)).toEqual([500, 400, 200])
    // The repeat went byte for byte under the chunk's key, and failed the one LINE named; the
    // others then went as new sends, in a new chunk without them.
    expect(chunks[1]!.headers['x-line-retry-key']).toBe(chunks[0]!.headers['x-line-retry-key'])
    expect(chunks[2]!.headers['x-line-retry-key']).not.toBe(chunks[0]!.headers['x-line-retry-key'])
    expect(multicastsTo(k, bad.userId)).toHaveLength(2)
    for (const [i, f] of friends.entries()) {
      expect(pushStatuses(f)).toEqual([])
      expect(campaignInbox(k, f.userId)).toHaveLength(i === 1 ? 0 : 1)
    }
  })

  it('dissolves a chunk repeated after a 500 for every row when LINE refuses it, whichever job holds them', async () => {
    const four = await fourFriends()
    await playingWorkers(k, async () => {
      const { friends, ids } = await campaignToFour(four)
      const bad = friends[1]!
      const tools = sendTools(k)
      // One job sends the chunk and gets LINE's 500: its rows wait to repeat it as stored.
      k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, body: { message: 'boom' } })
      await sendJobToEnd(k.deps, tools, ids)
      for (const row of await deliveryRows(k, ids)) expect(row.line_first_call_at).not.toBeNull()
      k.line.refuseInMulticast(bad.userId)

      // The sweeper spreads the rows over jobs: one holding a single row (not the one LINE will
      // name) repeats the whole chunk, and LINE refuses it for `bad`.
      await sendJobToEnd(k.deps, tools, [ids[0]!])
      const chunks = multicastsTo(k, friends[0]!.userId)
      expect(chunks.map((r) => r.status)).toEqual([500, 400])
      expect(chunks[1]!.headers['x-line-retry-key']).toBe(chunks[0]!.headers['x-line-retry-key'])
      let rows = await deliveryRows(k, ids)
      // LINE named someone else: this row is not failed, and LINE took nothing under the key,
      // so no row of the chunk repeats it again.
      expect(rows[0]!.status).toBe('pending')
      for (const row of rows) expect(row.line_first_call_at).toBeNull()

      // The job holding the other rows sends them as new: `bad` fails, the others are pushed.
      await sendJobToEnd(k.deps, tools, ids.slice(1))
      await sendJobToEnd(k.deps, tools, [ids[0]!])
      rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status)).toEqual(['sent', 'failed', 'sent', 'sent'])
      expect(rows[1]!.last_error).toMatch(/^LINE 400: .*to\[\d\]/)
      const oldKey = chunks[0]!.headers['x-line-retry-key']
      const repeats = k.line
        .requestsTo('POST', MULTICAST)
        .filter((r) => r.headers['x-line-retry-key'] === oldKey)
      expect(repeats).toHaveLength(2)
      for (const [i, f] of friends.entries()) {
        expect(campaignInbox(k, f.userId)).toHaveLength(i === 1 ? 0 : 1)
      }
    })
  })

  it('fails the row of a repeated chunk LINE names when its job holds that row alone', async () => {
    const four = await fourFriends()
    await playingWorkers(k, async () => {
      const { friends, ids } = await campaignToFour(four)
      const tools = sendTools(k)
      k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, body: { message: 'boom' } })
      await sendJobToEnd(k.deps, tools, ids)
      k.line.refuseInMulticast(friends[2]!.userId)

      await sendJobToEnd(k.deps, tools, [ids[2]!])
      const rows = await deliveryRows(k, ids)
      expect(rows[2]!.status).toBe('failed')
      expect(rows[2]!.last_error).toMatch(/^LINE 400: .*to\[\d\]/)
      for (const row of rows) expect(row.line_first_call_at).toBeNull()
    })
  })

  it('fails every row as before when LINE refuses the message itself (pushes would be refused too)', async () => {
    const { friends, ids } = await campaignToFour()
    refuseNextMulticast(BODY_ERRORS, [
      { message: 'Length must be between 0 and 5000', property: 'messages[0].text' },
    ])

    const rows = await waitForStatus(k, ids, 'failed', 15_000)
    for (const row of rows) expect(row.last_error).toContain('messages[0].text')
    for (const f of friends) {
      expect(pushStatuses(f)).toEqual([])
      expect(campaignInbox(k, f.userId)).toEqual([])
    }
  })
})
