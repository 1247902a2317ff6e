import type { Command } from 'commander'
import { isSandbox } from '../config/env.ts'
import { replaceLineChannel } from '../line-channel/line-channel.repo.ts'
import { askLineChannel, botName } from '../line-channel/line-channel.service.ts'
import { createLine } from '../platform/line.ts'
import { createMetrics } from '../platform/metrics.ts'
import { SANDBOX_BOT_USER_ID } from '../sandbox/sandbox-channel.ts'
import { withDb } from './with-db.ts'

export function registerLineChannelCommands(program: Command): void {
  const channel = program
    .command('line-channel')
    .description(
      'the LINE channel this database serves (one database, one channel: Kizuna refuses to ' +
        "start, and commands to call LINE, with another channel's credentials)",
    )
  channel
    .command('adopt')
    .description(
      "record the channel of the LINE credentials set (LINE's bot user id; the built-in " +
        "sandbox's without credentials) as the one this database serves, replacing the one " +
        'recorded: for a database that really moves to this channel (its friends follow again ' +
        'as new users: LINE user ids differ between providers; README, "Moving to another LINE ' +
        'channel"); prints what it recorded and what it replaced',
    )
    .action(() =>
      withDb(async (db, env) => {
        let botUserId = SANDBOX_BOT_USER_ID
        let named = 'the built-in LINE sandbox (no LINE credentials set)'
        if (!isSandbox(env)) {
          const line = createLine(env, createMetrics())
          const asked = await askLineChannel(line, env).finally(() => line.close())
          if (!asked.ok) {
            throw new Error(
              `could not ask LINE which channel these credentials are (${asked.why}): ` +
                'nothing changed',
            )
          }
          botUserId = asked.botUserId
          const about = [asked.displayName, asked.basicId].filter(Boolean).join(', ')
          named = `the LINE credentials' channel${about ? ` (${about})` : ''}`
        }
        const replaced = await replaceLineChannel(db, botUserId)
        if (replaced?.bot_user_id === botUserId) {
          console.log(`${named}: ${botName(botUserId)}, already the one recorded; nothing changed`)
          return
        }
        console.log(`recorded ${named}: ${botName(botUserId)}`)
        console.log(
          replaced
            ? `replaced ${botName(replaced.bot_user_id)} (recorded ${replaced.recorded_at.toISOString()})`
            : 'replaced none: no channel was recorded',
        )
        if (replaced) {
          console.error(
            "note: the LINE user ids in this database are the old channel's: unless both " +
              'channels are under one provider, LINE does not know them in this one (its friends ' +
              'follow again as new users); see README, "Moving to another LINE channel"',
          )
        }
      }),
    )
}
