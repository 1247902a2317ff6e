import { expect } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { createLiveMenu, insertFriend, type LiveMenu } from '../richmenu/richmenu-link-fixtures.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN } from '../support/harness.ts'
import { startPrivateDeps } from '../support/private-deps.ts'

/** The environment of a `kizuna` command on this database, talking to this LINE stand-in. */
export const commandEnv = (env: Env, line: LinePlatform) => ({
  DATABASE_URL: env.DATABASE_URL ?? '',
  LINE_CHANNEL_SECRET: TEST_CHANNEL_SECRET,
  LINE_CHANNEL_ACCESS_TOKEN: TEST_CHANNEL_TOKEN,
  LINE_API_BASE_URL: line.apiBaseUrl,
  LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
})

/**
 * A friend on the stand-in and in Kizuna (of `customerId` if given); `linked`: Kizuna linked
 * them to `menu`, the live one.
 */
export async function standInFriend(
  k: { deps: Deps; line: LinePlatform; menu: LiveMenu },
  opts: { linked: boolean; customerId?: string },
) {
  const user = k.line.users.create()
  user.friendship = 'friend'
  const f = await insertFriend(k.deps, { lineUid: user.userId, customerId: opts.customerId })
  if (opts.linked) {
    expect(await linkRichMenus(k.deps, [f.lineUserId])).toMatchObject({ linked: 1 })
    expect(k.line.richMenuOf(f.lineUid)).toBe(k.menu.richMenuId)
  }
  return f
}

/**
 * Kizuna's deps on a database of their own (startPrivateDeps: the relink and the sweeper look at
 * every LINE user) with a live menu for new friends on the stand-in.
 */
export async function startWithLiveMenu(cleanups: (() => Promise<void>)[]) {
  const started = await startPrivateDeps(cleanups)
  return { ...started, menu: await createLiveMenu(started.deps, ['new_friend']) }
}
