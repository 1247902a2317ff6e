import { createHash } from 'node:crypto'

/** A stand-in channel's bot user id: stable per channel secret, like a real bot's user id. */
export function botUserIdFor(channelSecret: string): string {
  return `U${createHash('sha256').update(channelSecret).digest('hex').slice(0, 32)}`
}

/**
 * The bot user id of the built-in sandbox (`npm start` without LINE credentials): one channel
 * for every start, whose secret and token are new each time, as a channel's reissued ones would
 * be. A database used with the sandbox then serves the sandbox from one start to the next, and
 * no other channel without `kizuna line-channel adopt` (see src/line-channel/).
 */
export const SANDBOX_BOT_USER_ID = botUserIdFor('kizuna-built-in-sandbox')
