import type { Env } from '../config/env.ts'
import type { Database } from '../platform/db.ts'
import { classifyLineError, LINE_CALL_HELD, type Line } from '../platform/line.ts'
import { redactUrl } from '../platform/outage.ts'
import { withTimeout } from '../platform/timeout.ts'
import { SANDBOX_BOT_USER_ID } from '../sandbox/sandbox-channel.ts'
import {
  findLineChannel,
  hasLineUsers,
  type LineChannelRow,
  recordLineChannelIfNone,
} from './line-channel.repo.ts'

/** A LINE bot user id: `U` and 32 hex digits (LINE-API.md §5; webhooks' `destination`). */
const BOT_USER_ID = /^U[0-9a-f]{32}$/

/** Which LINE this process talks to, and where its database is, for the messages. */
export type ChannelContext = {
  env: Pick<Env, 'DATABASE_URL' | 'DATA_DIR' | 'LINE_API_BASE_URL' | 'LINE_TIMEOUT_MS'>
  /** LINE is the built-in sandbox (`npm start` without LINE credentials). */
  sandbox: boolean
}

/** The channel LINE says the credentials are, or why it could not say. */
export type AskedChannel =
  | { ok: true; botUserId: string; basicId?: string; displayName?: string }
  | { ok: false; why: string; cause: unknown }

/**
 * Asks LINE whose channel the credentials are: its bot's user id (GET /v2/bot/info, 2,000/s).
 * Straight to LINE, neither paced (Redis may be down at start: one call) nor held by the
 * channel's own check (see watchLineChannel), within LINE_TIMEOUT_MS.
 */
export async function askLineChannel(
  line: Pick<Line, 'client'>,
  env: Pick<Env, 'LINE_TIMEOUT_MS'>,
): Promise<AskedChannel> {
  try {
    const info = await withTimeout(
      line.client.getBotInfo(),
      env.LINE_TIMEOUT_MS,
      'LINE GET /v2/bot/info',
    )
    if (typeof info?.userId !== 'string' || !BOT_USER_ID.test(info.userId)) {
      const cause = new Error('LINE answered GET /v2/bot/info without a bot user id')
      return { ok: false, why: cause.message, cause }
    }
    return {
      ok: true,
      botUserId: info.userId,
      basicId: info.basicId,
      displayName: info.displayName,
    }
  } catch (cause) {
    return { ok: false, why: whyUnanswered(cause), cause }
  }
}

function whyUnanswered(error: unknown): string {
  const f = classifyLineError(error)
  if (f.kind === 'channel_refused') {
    return `LINE refused the credentials (${f.status} ${f.message}): check LINE_CHANNEL_ACCESS_TOKEN`
  }
  if (f.status !== null && 'message' in f) return `LINE answered ${f.status} ${f.message}`
  return `LINE did not answer: ${error instanceof Error ? error.message : String(error)}`
}

export type ChannelCheck =
  /** No channel was recorded: this one is now. */
  | { kind: 'recorded'; botUserId: string }
  | { kind: 'same'; botUserId: string }
  /** The database serves another channel: `mismatch` builds the message to stop with. */
  | { kind: 'other'; recorded: LineChannelRow; botUserId: string }
  /**
   * The sandbox, on a database recording no channel but holding LINE users (friends of the
   * channel it served before channels were recorded): nothing recorded (SandboxNotRecorded).
   */
  | { kind: 'sandbox_not_recorded'; botUserId: string }
  /** LINE did not say (unreachable, 5xx, timeout, 401/403): nothing recorded or compared. */
  | { kind: 'unchecked'; why: string; cause: unknown }

/**
 * One database, one LINE channel: asks LINE whose channel the credentials are, records it when
 * the database has none, and compares it with the one recorded otherwise. The sandbox is one
 * channel of its own (SANDBOX_BOT_USER_ID).
 */
export async function checkLineChannel(
  deps: { db: Database; line: Pick<Line, 'client'> },
  ctx: ChannelContext,
): Promise<ChannelCheck> {
  const asked = await askLineChannel(deps.line, ctx.env)
  if (!asked.ok) return { kind: 'unchecked', why: asked.why, cause: asked.cause }
  // A `npm start` without credentials on production's database, at the first start after the
  // upgrade, would record the sandbox as production's channel: refused while LINE users are
  // there (`kizuna line-channel adopt` records it all the same). Real credentials are recorded.
  if (ctx.sandbox && !(await findLineChannel(deps.db)) && (await hasLineUsers(deps.db))) {
    return { kind: 'sandbox_not_recorded', botUserId: asked.botUserId }
  }
  const { row, inserted } = await recordLineChannelIfNone(deps.db, asked.botUserId)
  if (inserted) return { kind: 'recorded', botUserId: asked.botUserId }
  if (row.bot_user_id === asked.botUserId) return { kind: 'same', botUserId: asked.botUserId }
  return { kind: 'other', recorded: row, botUserId: asked.botUserId }
}

/** A database that serves another LINE channel than the credentials': what to do, in its message. */
export class LineChannelMismatch extends Error {
  override name = 'LineChannelMismatch'
  /** Nothing was sent for the call this stopped (see LINE_CALL_HELD). */
  readonly code = LINE_CALL_HELD
  readonly recordedBotUserId: string
  readonly botUserId: string

  constructor(
    check: Extract<ChannelCheck, { kind: 'other' }>,
    ctx: ChannelContext,
    /** What happens for it, then what did not: `Kizuna will not start. Nothing was sent…`. */
    outcome: string,
  ) {
    const recorded = check.recorded.bot_user_id
    const them = ctx.sandbox
      ? `the built-in LINE sandbox (no LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN set) is ${botName(check.botUserId)}`
      : `the LINE credentials (LINE_CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN, at LINE_API_BASE_URL ${ctx.env.LINE_API_BASE_URL}) are ${botName(check.botUserId)}'s`
    const fix = ctx.sandbox
      ? 'set the LINE credentials of the channel this database serves, or give the sandbox a database of its own (unset DATABASE_URL for the embedded one)'
      : 'point DATABASE_URL at the database of this channel, or set the credentials of the channel this database serves'
    super(
      `${databaseName(ctx.env)} serves another LINE channel: it records ${botName(recorded)} ` +
        `(since ${check.recorded.recorded_at.toISOString()}), but ${them}. ${outcome} ` +
        `One database serves one LINE channel: ${fix}. If this database really moves to this ` +
        'channel, run `npx kizuna line-channel adopt` with the same settings (README, "Moving ' +
        'to another LINE channel": LINE user ids differ between providers, so its friends ' +
        'will follow again as new users).',
    )
    this.recordedBotUserId = recorded
    this.botUserId = check.botUserId
  }
}

/**
 * The sandbox refused as the channel of a database recording none but holding LINE users:
 * they may be a real channel's friends (a database from before channels were recorded).
 */
export class SandboxNotRecorded extends Error {
  override name = 'SandboxNotRecorded'

  constructor(
    ctx: ChannelContext,
    /** What happens for it, then what did not: `Kizuna will not start. Nothing was sent…`. */
    outcome: string,
  ) {
    super(
      `${databaseName(ctx.env)} holds LINE users but records no LINE channel yet (a database ` +
        'from before the channel was recorded): they may be the friends of a real LINE channel, ' +
        'so the built-in LINE sandbox (no LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN set) ' +
        `is not recorded as its channel. ${outcome} Set the LINE credentials of the channel ` +
        'this database serves (recorded at start), or give the sandbox a database of its own ' +
        '(unset DATABASE_URL for the embedded one). If this database really moves to the ' +
        'sandbox, run `npx kizuna line-channel adopt` with the same settings (README, "Moving ' +
        'to another LINE channel").',
    )
  }
}

/** `DATABASE_URL (postgres://kizuna:***@db:5432/kizuna)`, or the embedded one's folder. */
export function databaseName(env: Pick<Env, 'DATABASE_URL' | 'DATA_DIR'>): string {
  return env.DATABASE_URL
    ? `The database at DATABASE_URL (${redactUrl(env.DATABASE_URL)})`
    : `The embedded database in DATA_DIR (${env.DATA_DIR})`
}

/** A bot as the messages name it: its user id, and the sandbox's said to be the sandbox's. */
export function botName(botUserId: string): string {
  return botUserId === SANDBOX_BOT_USER_ID
    ? `the built-in LINE sandbox's bot ${botUserId}`
    : `LINE bot ${botUserId}`
}
