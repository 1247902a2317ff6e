import { randomUUID } from 'node:crypto'
import { messagingApi } from '@line/bot-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import {
  channelAccessToken,
  channelSecret,
  fetchError,
  imageBytes,
  pngBytes,
  richMenuRequest,
} from './fixtures.ts'

// Mirrors the SDK's own contract tests (test/libs-messagingApi.spec.ts): the real client, real HTTP.
let platform: LinePlatform
let client: messagingApi.MessagingApiClient
let blob: messagingApi.MessagingApiBlobClient
let clock = Date.now()

beforeAll(async () => {
  platform = await startLinePlatform({ channelSecret, channelAccessToken, now: () => clock })
  client = new messagingApi.MessagingApiClient({ channelAccessToken, baseURL: platform.apiBaseUrl })
  blob = new messagingApi.MessagingApiBlobClient({
    channelAccessToken,
    baseURL: platform.dataApiBaseUrl,
  })
})
afterAll(() => platform.close())

async function friend(displayName = 'Hanako') {
  const user = platform.users.create({ displayName })
  await platform.users.follow(user.userId)
  return user
}

describe('push', () => {
  it('delivers, returns sentMessages and answers a repeated retry key with 409', async () => {
    const user = await friend()
    const retryKey = randomUUID()
    const request = { to: user.userId, messages: [{ type: 'text' as const, text: 'Welcome' }] }
    const first = await client.pushMessageWithHttpInfo(request, retryKey)
    const requestId = first.httpResponse.headers.get('x-line-request-id')
    expect(requestId).toBeTruthy()
    expect(first.body.sentMessages).toEqual([
      { id: expect.stringMatching(/^\d+$/), quoteToken: expect.any(String) },
    ])

    const again = await fetchError(client.pushMessage(request, retryKey))
    expect(again.status).toBe(409)
    expect(again.headers.get('x-line-accepted-request-id')).toBe(requestId)
    expect(again.headers.get('x-line-request-id')).not.toBe(requestId)
    expect(again.body).toEqual({
      message: 'The retry key is already accepted',
      sentMessages: first.body.sentMessages,
    })
    expect(platform.inbox(user.userId).map((m) => m.message)).toEqual(request.messages)
  })

  it('keeps a retry key for 24 hours from its first attempt, even one that failed (500)', async () => {
    const user = await friend()
    const retryKey = randomUUID()
    const request = { to: user.userId, messages: [{ type: 'text' as const, text: 'Late' }] }
    const hour = 60 * 60 * 1000
    platform.failNext({ method: 'POST', path: '/v2/bot/message/push', status: 500, count: 1 })
    expect((await fetchError(client.pushMessage(request, retryKey))).status).toBe(500)
    clock += 23 * hour
    await client.pushMessage(request, retryKey)
    clock += hour / 2
    expect((await fetchError(client.pushMessage(request, retryKey))).status).toBe(409)
    // 24 hours after the first attempt (not the acceptance) LINE takes the key as new.
    clock += hour / 2
    await client.pushMessage(request, retryKey)
    expect(platform.inbox(user.userId)).toHaveLength(2)
    clock += 23 * hour
    expect((await fetchError(client.pushMessage(request, retryKey))).status).toBe(409)
  })

  it('refuses a retry key used again with another body (400), not taking it for the same request', async () => {
    // LINE wants a retry to carry the first request's body; another body under the key is
    // undefined there (LINE-API.md §2.4, §9.5). A 409 would read as "already sent".
    const user = await friend()
    const retryKey = randomUUID()
    const request = { to: user.userId, messages: [{ type: 'text' as const, text: 'Sale' }] }
    await client.pushMessage(request, retryKey)
    const changed = { ...request, messages: [{ type: 'text' as const, text: 'Sale!' }] }
    const refused = await fetchError(client.pushMessage(changed, retryKey))
    expect(refused.status).toBe(400)
    expect(refused.body).toEqual({ message: expect.stringMatching(/retry key.*different body/i) })
    // The same bytes again: still the accepted request.
    expect((await fetchError(client.pushMessage(request, retryKey))).status).toBe(409)
    // The same JSON written otherwise is another body too: a retry repeats the bytes it sent.
    const respaced = await fetch(`${platform.apiBaseUrl}/v2/bot/message/push`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${channelAccessToken}`,
        'content-type': 'application/json',
        'x-line-retry-key': retryKey,
      },
      body: JSON.stringify(request, null, 1),
    })
    expect(respaced.status).toBe(400)
    expect(platform.inbox(user.userId).map((m) => m.message)).toEqual(request.messages)

    // A first attempt answered 500 may have been carried out: its body holds the key too.
    const after500 = randomUUID()
    platform.failNext({ method: 'POST', path: '/v2/bot/message/multicast', status: 500 })
    const chunk = { to: [user.userId], messages: request.messages }
    expect((await fetchError(client.multicast(chunk, after500))).status).toBe(500)
    const rebuilt = { ...chunk, notificationDisabled: true }
    expect((await fetchError(client.multicast(rebuilt, after500))).status).toBe(400)
    expect(await client.multicast(chunk, after500)).toEqual({})

    // 24 hours after its first attempt the key is new, whatever the body.
    clock += 24 * 60 * 60 * 1000
    await client.pushMessage(changed, retryKey)
    expect(platform.inbox(user.userId).map((m) => m.message)).toEqual([
      ...request.messages,
      ...request.messages,
      ...changed.messages,
    ])
  })

  it('returns 200 for a blocked user but delivers nothing', async () => {
    const user = await friend()
    await platform.users.block(user.userId)
    await client.pushMessage({ to: user.userId, messages: [{ type: 'text', text: 'hello?' }] })
    expect(platform.inbox(user.userId)).toEqual([])
  })

  it('rejects a user who does not exist in the channel', async () => {
    const error = await fetchError(
      client.pushMessage({ to: `U${'0'.repeat(32)}`, messages: [{ type: 'text', text: 'x' }] }),
    )
    expect(error).toMatchObject({ status: 400, body: { message: 'Failed to send messages' } })
  })

  it('rejects a group or room the bot is not in (the sandbox has none)', async () => {
    for (const to of [`C${'a'.repeat(32)}`, `R${'b'.repeat(32)}`]) {
      const error = await fetchError(
        client.pushMessage({ to, messages: [{ type: 'text', text: 'x' }] }),
      )
      expect(error).toMatchObject({ status: 400, body: { message: 'Failed to send messages' } })
    }
  })
})

describe('reply', () => {
  it('accepts a reply token once', async () => {
    const user = await friend()
    const { body } = await platform.users.sendText(user.userId, 'hi')
    const replyToken = (body.events[0] as { replyToken: string }).replyToken
    const res = await client.replyMessage({
      replyToken,
      messages: [{ type: 'text', text: 'Hello' }],
    })
    expect(res.sentMessages).toHaveLength(1)
    const reused = await fetchError(
      client.replyMessage({ replyToken, messages: [{ type: 'text', text: 'again' }] }),
    )
    expect(reused).toMatchObject({ status: 400, body: { message: 'Invalid reply token' } })
    expect(platform.inbox(user.userId).map((m) => m.endpoint)).toEqual(['reply'])
  })

  it('rejects a reply token after about a minute', async () => {
    const user = await friend()
    const { body } = await platform.users.postback(user.userId, 'action=points')
    const replyToken = (body.events[0] as { replyToken: string }).replyToken
    clock += 61_000
    const late = await fetchError(
      client.replyMessage({ replyToken, messages: [{ type: 'text', text: 'late' }] }),
    )
    expect(late).toMatchObject({ status: 400, body: { message: 'Invalid reply token' } })
  })
})

describe('multicast', () => {
  it('delivers to friends only and returns {}', async () => {
    const [a, b, blocked] = [await friend('A'), await friend('B'), await friend('C')]
    await platform.users.block(blocked.userId)
    const to = [a.userId, b.userId, blocked.userId, `U${'f'.repeat(32)}`]
    expect(await client.multicast({ to, messages: [{ type: 'text', text: 'Sale!' }] })).toEqual({})
    expect(platform.inbox(a.userId)).toHaveLength(1)
    expect(platform.inbox(b.userId)[0]).toMatchObject({ endpoint: 'multicast' })
    expect(platform.inbox(blocked.userId)).toEqual([])
  })

  it('refuses as a whole a list naming a malformed or non-user id, sending to nobody', async () => {
    const [a, b] = [await friend('A'), await friend('B')]
    const usage = platform.context.state.quota.totalUsage
    for (const bad of ['U-not-a-user-id', `C${'a'.repeat(32)}`, `U${'A'.repeat(32)}`]) {
      const retryKey = randomUUID()
      const request = {
        to: [a.userId, b.userId, bad],
        messages: [{ type: 'text' as const, text: 'Sale!' }],
      }
      const error = await fetchError(client.multicast(request, retryKey))
      expect(error.status).toBe(400)
      expect(error.body).toEqual({
        message: 'The property, to[2], in the request body is invalid (line: -, column: -)',
      })
      // Nothing was accepted: the same retry key with good ids goes through.
      expect(await client.multicast({ ...request, to: [a.userId] }, retryKey)).toEqual({})
    }
    expect(platform.inbox(b.userId)).toEqual([])
    expect(platform.inbox(a.userId)).toHaveLength(3)
    expect(platform.context.state.quota.totalUsage).toBe(usage + 3)
  })

  it('takes a list naming a user not in the channel (200), sending them nothing, and refuses a push to them', async () => {
    // LINE-API.md §2.3: multicast answers 200 for ids of another provider and sends them
    // nothing; a push to one is 400 'Failed to send messages'.
    const [a, b, gone] = [await friend('A'), await friend('B'), await friend('Gone')]
    platform.markNotInChannel(gone.userId)
    const messages = [{ type: 'text' as const, text: 'Sale!' }]
    const usage = platform.context.state.quota.totalUsage
    expect(await client.multicast({ to: [a.userId, gone.userId, b.userId], messages })).toEqual({})
    expect(platform.inbox(gone.userId)).toEqual([])
    expect(platform.inbox(a.userId)).toHaveLength(1)
    expect(platform.inbox(b.userId)).toHaveLength(1)
    expect(platform.context.state.quota.totalUsage).toBe(usage + 2)
    const pushed = await fetchError(client.pushMessage({ to: gone.userId, messages }))
    expect(pushed).toMatchObject({ status: 400, body: { message: 'Failed to send messages' } })
  })

  it('refuses as a whole a list naming a user scripted to be refused (400 to[N]), taking nothing under the key', async () => {
    // LINE's reference also lists a 400 for an id not in the channel: a sender must survive that
    // reading too, so a test can ask for it.
    const [a, b, refused] = [await friend('A'), await friend('B'), await friend('Refused')]
    platform.refuseInMulticast(refused.userId)
    const messages = [{ type: 'text' as const, text: 'Sale!' }]
    const retryKey = randomUUID()
    const error = await fetchError(
      client.multicast({ to: [a.userId, refused.userId, b.userId], messages }, retryKey),
    )
    expect(error).toMatchObject({
      status: 400,
      body: { message: 'The property, to[1], in the request body is invalid (line: -, column: -)' },
    })
    // A push to them goes through: only multicast was scripted.
    await client.pushMessage({ to: refused.userId, messages })
    // Nothing was accepted under the key: it goes through without them.
    expect(await client.multicast({ to: [a.userId, b.userId], messages }, retryKey)).toEqual({})
    expect(platform.inbox(refused.userId)).toHaveLength(1)
    expect(platform.inbox(a.userId)).toHaveLength(1)
  })
})

describe('broadcast and narrowcast', () => {
  it('broadcasts to every friend, with retry keys', async () => {
    const user = await friend()
    const retryKey = randomUUID()
    await client.broadcast({ messages: [{ type: 'text', text: 'To all' }] }, retryKey)
    const again = await fetchError(
      client.broadcast({ messages: [{ type: 'text', text: 'To all' }] }, retryKey),
    )
    expect(again.status).toBe(409)
    expect(again.body).toEqual({ message: 'The retry key is already accepted' })
    expect(platform.inbox(user.userId).map((m) => m.endpoint)).toEqual(['broadcast'])
  })

  it('accepts a narrowcast with 202 and reports its progress', async () => {
    const res = await client.narrowcastWithHttpInfo({ messages: [{ type: 'text', text: 'N' }] })
    expect(res.httpResponse.status).toBe(202)
    const requestId = res.httpResponse.headers.get('x-line-request-id') ?? ''
    expect(await client.getNarrowcastProgress(requestId)).toMatchObject({ phase: 'succeeded' })
  })
})

describe('profile, bot info, link token, quota', () => {
  it('returns a friend profile and 404 for unknown or blocked users', async () => {
    const user = await friend('Taro')
    expect(await client.getProfile(user.userId)).toEqual({
      userId: user.userId,
      displayName: 'Taro',
      language: 'ja',
    })
    const unknown = await fetchError(client.getProfile(`U${'1'.repeat(32)}`))
    expect(unknown).toMatchObject({ status: 404, body: { message: 'Not found' } })
    await platform.users.block(user.userId)
    expect((await fetchError(client.getProfile(user.userId))).status).toBe(404)
  })

  it('reports the bot user id used as webhook destination', async () => {
    expect((await client.getBotInfo()).userId).toBe(platform.botUserId)
  })

  it('issues a link token', async () => {
    const user = await friend()
    expect((await client.issueLinkToken(user.userId)).linkToken).toMatch(/^[0-9a-f]{32}$/)
  })

  it('reports quota and consumption', async () => {
    expect(await client.getMessageQuota()).toEqual({ type: 'none' })
    const before = (await client.getMessageQuotaConsumption()).totalUsage
    const user = await friend()
    await client.pushMessage({ to: user.userId, messages: [{ type: 'text', text: 'x' }] })
    expect((await client.getMessageQuotaConsumption()).totalUsage).toBe(before + 1)
  })

  it('validates messages without sending', async () => {
    expect(await client.validatePush({ messages: [{ type: 'text', text: 'ok' }] })).toEqual({})
    const bad = await fetchError(client.validatePush({ messages: [] }))
    expect(bad.body.details).toEqual([
      { message: 'Size must be between 1 and 5', property: 'messages' },
    ])
  })
})

describe('rich menus', () => {
  it('creates, uploads an image, links, bulk links, aliases and sets the default', async () => {
    const [a, b] = [await friend('A'), await friend('B')]
    const { richMenuId } = await client.createRichMenu(richMenuRequest)
    expect(richMenuId).toMatch(/^richmenu-[0-9a-f]{32}$/)
    expect(await client.getRichMenu(richMenuId)).toEqual({ richMenuId, ...richMenuRequest })

    const noImage = await fetchError(client.linkRichMenuIdToUser(a.userId, richMenuId))
    expect(noImage.status).toBe(400)
    const wrongType = await fetchError(
      blob.setRichMenuImage(richMenuId, new Blob([pngBytes], { type: 'text/plain' })),
    )
    expect(wrongType.status).toBe(415)
    await blob.setRichMenuImage(richMenuId, new Blob([pngBytes], { type: 'image/png' }))
    const image = await blob.getRichMenuImage(richMenuId)
    const chunks: Buffer[] = []
    for await (const chunk of image) chunks.push(chunk as Buffer)
    expect(Buffer.concat(chunks).equals(pngBytes)).toBe(true)
    const replace = await fetchError(
      blob.setRichMenuImage(richMenuId, new Blob([pngBytes], { type: 'image/png' })),
    )
    expect(replace.body.message).toBe('An image has already been uploaded to the richmenu')

    await client.linkRichMenuIdToUser(a.userId, richMenuId)
    expect(await client.getRichMenuIdOfUser(a.userId)).toEqual({ richMenuId })
    const bulk = await client.linkRichMenuIdToUsersWithHttpInfo({
      richMenuId,
      userIds: [a.userId, b.userId],
    })
    expect(bulk.httpResponse.status).toBe(202)
    expect(platform.richMenuOf(b.userId)).toBe(richMenuId)
    await client.unlinkRichMenuIdFromUser(b.userId)
    expect((await fetchError(client.getRichMenuIdOfUser(b.userId))).status).toBe(404)

    const richMenuAliasId = `main-${Date.now()}`
    await client.createRichMenuAlias({ richMenuAliasId, richMenuId })
    const conflict = await fetchError(client.createRichMenuAlias({ richMenuAliasId, richMenuId }))
    expect(conflict.body.message).toBe('conflict richmenu alias id')
    expect(await client.getRichMenuAlias(richMenuAliasId)).toEqual({ richMenuAliasId, richMenuId })
    expect((await client.getRichMenuAliasList()).aliases).toContainEqual({
      richMenuAliasId,
      richMenuId,
    })

    await client.setDefaultRichMenu(richMenuId)
    expect(await client.getDefaultRichMenuId()).toEqual({ richMenuId })
    expect(platform.richMenuOf(b.userId)).toBe(richMenuId)
    expect((await client.getRichMenuList()).richmenus.map((m) => m.richMenuId)).toContain(
      richMenuId,
    )

    await client.deleteRichMenuAlias(richMenuAliasId)
    await client.cancelDefaultRichMenu()
    await client.deleteRichMenu(richMenuId)
    expect((await fetchError(client.getRichMenu(richMenuId))).status).toBe(404)
  })

  it('accepts a bulk link (202) that leaves a user it was told to miss unlinked, once', async () => {
    const [a, b] = [await friend('A'), await friend('B')]
    const { richMenuId } = await client.createRichMenu(richMenuRequest)
    await blob.setRichMenuImage(richMenuId, new Blob([pngBytes], { type: 'image/png' }))
    platform.missInNextBulkLink(b.userId)
    const bulk = await client.linkRichMenuIdToUsersWithHttpInfo({
      richMenuId,
      userIds: [a.userId, b.userId],
    })
    expect(bulk.httpResponse.status).toBe(202)
    expect(await client.getRichMenuIdOfUser(a.userId)).toEqual({ richMenuId })
    expect((await fetchError(client.getRichMenuIdOfUser(b.userId))).status).toBe(404)
    // Both asked through the spec's operation (headers checked like any other).
    expect(
      platform.requestsTo('GET', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu$/).map((r) => r.template),
    ).toContain('/v2/bot/user/{userId}/richmenu')

    await client.linkRichMenuIdToUsers({ richMenuId, userIds: [a.userId, b.userId] })
    expect(await client.getRichMenuIdOfUser(b.userId)).toEqual({ richMenuId })
    await client.deleteRichMenu(richMenuId)
  })

  it('refuses a bulk unlink naming a malformed user id as a whole (400), and one such unlink', async () => {
    const [a, b] = [await friend('A'), await friend('B')]
    const { richMenuId } = await client.createRichMenu(richMenuRequest)
    await blob.setRichMenuImage(richMenuId, new Blob([pngBytes], { type: 'image/png' }))
    await client.linkRichMenuIdToUsers({ richMenuId, userIds: [a.userId, b.userId] })
    const bad = 'U-not-a-user-id'

    const bulk = await fetchError(client.unlinkRichMenuIdFromUsers({ userIds: [a.userId, bad] }))
    expect(bulk.status).toBe(400)
    expect(bulk.body).toEqual({
      message: "The property, 'userIds[1]', in the request body is invalid (line: -, column: -)",
    })
    // Refused as a whole: nobody's menu was unlinked.
    expect(await client.getRichMenuIdOfUser(a.userId)).toEqual({ richMenuId })
    const one = await fetchError(client.unlinkRichMenuIdFromUser(bad))
    expect(one.status).toBe(400)
    expect(one.body).toEqual({ message: "The value for the 'userId' parameter is invalid" })

    await client.unlinkRichMenuIdFromUsers({ userIds: [a.userId, b.userId] })
    expect((await fetchError(client.getRichMenuIdOfUser(a.userId))).status).toBe(404)
    expect((await fetchError(client.getRichMenuIdOfUser(b.userId))).status).toBe(404)
    await client.deleteRichMenu(richMenuId)
  })

  it('refuses a bulk link naming a malformed user id as a whole (400), and one such link', async () => {
    const [a, b] = [await friend('A'), await friend('B')]
    const { richMenuId } = await client.createRichMenu(richMenuRequest)
    await blob.setRichMenuImage(richMenuId, new Blob([pngBytes], { type: 'image/png' }))
    const bad = 'U-not-a-user-id'

    const bulk = await fetchError(
      client.linkRichMenuIdToUsers({ richMenuId, userIds: [a.userId, bad, b.userId] }),
    )
    expect(bulk.status).toBe(400)
    expect(bulk.body).toEqual({
      message: "The property, 'userIds[1]', in the request body is invalid (line: -, column: -)",
    })
    // Refused as a whole: nobody was linked.
    expect((await fetchError(client.getRichMenuIdOfUser(a.userId))).status).toBe(404)
    const one = await fetchError(client.linkRichMenuIdToUser(bad, richMenuId))
    expect(one.status).toBe(400)
    expect(one.body).toEqual({ message: "The value for the 'userId' parameter is invalid" })
    await client.deleteRichMenu(richMenuId)
  })

  it('refuses an image that is not a PNG or JPEG of 800-2500 × 250+ pixels, ratio 1.45+', async () => {
    const upload = async (bytes: Buffer, type = 'image/png') => {
      const { richMenuId } = await client.createRichMenu(richMenuRequest)
      const error = await blob.setRichMenuImage(richMenuId, new Blob([bytes], { type })).then(
        () => undefined,
        (e: unknown) => e,
      )
      const stored = platform.context.state.richMenus.get(richMenuId)?.image !== undefined
      return {
        status: error instanceof Error ? (error as { status?: number }).status : 200,
        stored,
      }
    }
    expect(await upload(Buffer.from('not an image at all'))).toEqual({ status: 400, stored: false })
    expect(await upload(imageBytes(799, 540))).toEqual({ status: 400, stored: false })
    expect(await upload(imageBytes(2501, 843))).toEqual({ status: 400, stored: false })
    expect(await upload(imageBytes(1000, 249))).toEqual({ status: 400, stored: false })
    expect(await upload(imageBytes(1450, 1001))).toEqual({ status: 400, stored: false })
    expect(await upload(imageBytes(800, 270))).toEqual({ status: 200, stored: true })
    expect(await upload(imageBytes(1200, 810, 'jpeg'), 'image/jpeg')).toEqual({
      status: 200,
      stored: true,
    })
  })

  it('rejects a rich menu LINE would refuse', async () => {
    const bad = await fetchError(
      client.validateRichMenuObject({ ...richMenuRequest, chatBarText: 'x'.repeat(15) }),
    )
    expect(bad.body.details).toEqual([
      { message: 'Length must be between 0 and 14', property: 'chatBarText' },
    ])
    const outside = { ...richMenuRequest, size: { width: 800, height: 270 } }
    const err = await fetchError(client.createRichMenu(outside))
    expect(err.body.details).toEqual([
      { message: 'must be within the rich menu size', property: 'areas[0].bounds' },
    ])
  })

  it('rejects a rich menu narrower than 1.45 × its height, on create and validate', async () => {
    const tall = { ...richMenuRequest, size: { width: 1450, height: 1001 } }
    const ratio = { message: 'width / height must be 1.45 or more', property: 'size' }
    const menus = platform.context.state.richMenus.size
    const calls = [() => client.createRichMenu(tall), () => client.validateRichMenuObject(tall)]
    for (const call of calls) {
      const err = await fetchError(call())
      expect(err.status).toBe(400)
      expect(err.body).toEqual({ message: 'The request body has 1 error(s)', details: [ratio] })
    }
    expect(platform.context.state.richMenus.size).toBe(menus)
    await client.validateRichMenuObject({ ...tall, size: { width: 1450, height: 1000 } })
  })
})
