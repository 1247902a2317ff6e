import { describe, expect, it } from 'vitest'
import type { Consents } from '../../src/consent/consent.schemas.ts'
import { chooseChannel, quietHoursEnd } from '../../src/messaging/send-rules.ts'

const TOKYO = 'Asia/Tokyo'
/** A wall-clock time in Tokyo (UTC+9, no DST) as an instant. */
const jst = (isoLocal: string) => new Date(`${isoLocal}+09:00`)

describe('quietHoursEnd', () => {
  const NIGHT = '21:00-09:00'

  it('late evening inside a window crossing midnight waits until the next morning', () => {
    expect(quietHoursEnd(jst('2026-12-01T22:30:00'), NIGHT, TOKYO)).toEqual(
      jst('2026-12-02T09:00:00'),
    )
    // Seconds and milliseconds into the minute don't shift the end off the minute.
    expect(quietHoursEnd(jst('2026-12-01T22:30:45.123'), NIGHT, TOKYO)).toEqual(
      jst('2026-12-02T09:00:00'),
    )
    // The window starts at its first minute.
    expect(quietHoursEnd(jst('2026-12-01T21:00:00'), NIGHT, TOKYO)).toEqual(
      jst('2026-12-02T09:00:00'),
    )
    // Just after midnight: the end is the same calendar day.
    expect(quietHoursEnd(jst('2026-12-02T00:10:00'), NIGHT, TOKYO)).toEqual(
      jst('2026-12-02T09:00:00'),
    )
  })

  it('early morning inside the window ends at 09:00 the same day', () => {
    expect(quietHoursEnd(jst('2026-12-02T08:59:00'), NIGHT, TOKYO)).toEqual(
      jst('2026-12-02T09:00:00'),
    )
    expect(quietHoursEnd(jst('2026-12-02T08:59:59.999'), NIGHT, TOKYO)).toEqual(
      jst('2026-12-02T09:00:00'),
    )
  })

  it('outside the window (midday, and the window end itself) is null', () => {
    expect(quietHoursEnd(jst('2026-12-02T12:00:00'), NIGHT, TOKYO)).toBeNull()
    expect(quietHoursEnd(jst('2026-12-02T09:00:00'), NIGHT, TOKYO)).toBeNull()
    expect(quietHoursEnd(jst('2026-12-02T20:59:59'), NIGHT, TOKYO)).toBeNull()
  })

  it('no quiet hours (empty setting) or an empty window is null', () => {
    expect(quietHoursEnd(jst('2026-12-01T22:30:00'), '', TOKYO)).toBeNull()
    expect(quietHoursEnd(jst('2026-12-01T22:30:00'), '22:00-22:00', TOKYO)).toBeNull()
  })

  it('a window within one day (12:00-13:30)', () => {
    const LUNCH = '12:00-13:30'
    expect(quietHoursEnd(jst('2026-12-02T12:00:00'), LUNCH, TOKYO)).toEqual(
      jst('2026-12-02T13:30:00'),
    )
    expect(quietHoursEnd(jst('2026-12-02T13:29:00'), LUNCH, TOKYO)).toEqual(
      jst('2026-12-02T13:30:00'),
    )
    expect(quietHoursEnd(jst('2026-12-02T11:59:00'), LUNCH, TOKYO)).toBeNull()
    expect(quietHoursEnd(jst('2026-12-02T13:30:00'), LUNCH, TOKYO)).toBeNull()
    // Not a crossing window: late evening is outside.
    expect(quietHoursEnd(jst('2026-12-02T23:00:00'), LUNCH, TOKYO)).toBeNull()
  })

  it('reads the clock in the store time zone, not UTC', () => {
    // 22:30 in Tokyo is 13:30 UTC: quiet in Tokyo, not in UTC.
    const at = jst('2026-12-01T22:30:00')
    expect(quietHoursEnd(at, NIGHT, 'UTC')).toBeNull()
    // 22:30 UTC is 07:30 the next day in Tokyo: quiet in both, with different ends.
    const late = new Date('2026-12-01T22:30:00Z')
    expect(quietHoursEnd(late, NIGHT, 'UTC')).toEqual(new Date('2026-12-02T09:00:00Z'))
    expect(quietHoursEnd(late, NIGHT, TOKYO)).toEqual(jst('2026-12-02T09:00:00'))
  })

  describe('across a DST change (TZ_STORE America/New_York)', () => {
    const NEW_YORK = 'America/New_York'
    /** A wall-clock time in New York at this UTC offset (-05:00 EST, -04:00 EDT). */
    const ny = (isoLocal: string, offset: '-05:00' | '-04:00') => new Date(`${isoLocal}${offset}`)

    it('ends at the window’s end on the clock the night the clocks go forward', () => {
      // 2026-03-08 02:00 EST is 03:00 EDT: the night is an hour shorter. Counting local minutes
      // as elapsed time ended it at 10:00.
      expect(quietHoursEnd(ny('2026-03-07T22:00:00', '-05:00'), NIGHT, NEW_YORK)).toEqual(
        ny('2026-03-08T09:00:00', '-04:00'),
      )
      expect(quietHoursEnd(ny('2026-03-08T01:59:30', '-05:00'), NIGHT, NEW_YORK)).toEqual(
        ny('2026-03-08T09:00:00', '-04:00'),
      )
      expect(quietHoursEnd(ny('2026-03-08T03:00:00', '-04:00'), NIGHT, NEW_YORK)).toEqual(
        ny('2026-03-08T09:00:00', '-04:00'),
      )
    })

    it('ends at the window’s end on the clock the night the clocks go back', () => {
      // 2026-11-01 02:00 EDT is 01:00 EST: the night is an hour longer (it ended at 08:00).
      expect(quietHoursEnd(ny('2026-10-31T22:00:00', '-04:00'), NIGHT, NEW_YORK)).toEqual(
        ny('2026-11-01T09:00:00', '-05:00'),
      )
      expect(quietHoursEnd(ny('2026-11-01T01:30:00', '-04:00'), NIGHT, NEW_YORK)).toEqual(
        ny('2026-11-01T09:00:00', '-05:00'),
      )
    })

    it('an end the clocks skip (02:30 on the night they go forward) is when they reach past it', () => {
      expect(quietHoursEnd(ny('2026-03-07T22:00:00', '-05:00'), '21:00-02:30', NEW_YORK)).toEqual(
        ny('2026-03-08T03:00:00', '-04:00'),
      )
      expect(quietHoursEnd(ny('2026-03-08T01:50:00', '-05:00'), '21:00-02:30', NEW_YORK)).toEqual(
        ny('2026-03-08T03:00:00', '-04:00'),
      )
    })

    it('an end the clocks pass twice (01:30 on the night they go back) is the next one', () => {
      const EARLY = '21:00-01:30'
      expect(quietHoursEnd(ny('2026-10-31T22:00:00', '-04:00'), EARLY, NEW_YORK)).toEqual(
        ny('2026-11-01T01:30:00', '-04:00'),
      )
      // The hour again, on standard time: inside the window once more, until 01:30 again.
      expect(quietHoursEnd(ny('2026-11-01T01:10:00', '-05:00'), EARLY, NEW_YORK)).toEqual(
        ny('2026-11-01T01:30:00', '-05:00'),
      )
    })
  })
})

describe('chooseChannel', () => {
  type Delivery = Parameters<typeof chooseChannel>[0]
  const consents = (over: Partial<{ [C in keyof Consents]: Partial<Consents[C]> }> = {}) =>
    ({
      transactional: { line: true, email: true, ...over.transactional },
      marketing: { line: true, email: true, ...over.marketing },
    }) as Consents
  const friend: Delivery = {
    category: 'marketing',
    line_uid: `U${'a'.repeat(32)}`,
    line_friend: true,
    email: 'hanako@example.com',
    erased: false,
    answers_person: false,
  }
  const emailOk = { hasVersion: true, configured: true }

  it('a friend who allows the category on LINE gets LINE', () => {
    expect(chooseChannel(friend, consents(), emailOk)).toEqual({
      channel: 'line',
      lineUid: friend.line_uid,
    })
    // Even without any email address or email version.
    expect(
      chooseChannel({ ...friend, email: null }, consents(), {
        hasVersion: false,
        configured: false,
      }),
    ).toEqual({ channel: 'line', lineUid: friend.line_uid })
  })

  it('a friend who blocked the account gets email when there is an address and consent', () => {
    expect(chooseChannel({ ...friend, line_friend: false }, consents(), emailOk)).toEqual({
      channel: 'email',
      to: 'hanako@example.com',
    })
  })

  it('someone never on LINE gets email when there is an address and consent', () => {
    expect(
      chooseChannel({ ...friend, line_uid: null, line_friend: false }, consents(), emailOk),
    ).toEqual({ channel: 'email', to: 'hanako@example.com' })
  })

  it('a friend who turned the category off on LINE is skipped, however email stands', () => {
    // Email goes only when LINE cannot reach the person (DESIGN.md flows 2 and 3).
    const optedOut = consents({ marketing: { line: false } })
    expect(chooseChannel(friend, optedOut, emailOk)).toEqual({
      channel: null,
      reason: 'no_marketing_consent_line',
    })
    expect(
      chooseChannel(friend, consents({ marketing: { line: false, email: false } }), emailOk),
    ).toEqual({ channel: null, reason: 'no_marketing_consent_line' })
    expect(
      chooseChannel(
        { ...friend, category: 'transactional' },
        consents({ transactional: { line: false } }),
        emailOk,
      ),
    ).toEqual({ channel: null, reason: 'no_transactional_consent_line' })
    // A marketing opt-out keeps transactional messages on LINE.
    expect(chooseChannel({ ...friend, category: 'transactional' }, optedOut, emailOk)).toEqual({
      channel: 'line',
      lineUid: friend.line_uid,
    })
    // Once they block the account, LINE cannot reach them: email, with consent for it.
    expect(chooseChannel({ ...friend, line_friend: false }, optedOut, emailOk)).toEqual({
      channel: 'email',
      to: 'hanako@example.com',
    })
  })

  it('an answer to the person overrides their LINE opt-out', () => {
    const optedOut = consents({
      transactional: { line: false, email: false },
      marketing: { line: false, email: false },
    })
    for (const category of ['transactional', 'marketing'] as const) {
      expect(
        chooseChannel({ ...friend, category, answers_person: true }, optedOut, emailOk),
      ).toEqual({ channel: 'line', lineUid: friend.line_uid })
    }
    // It does not override a block: LINE would drop the message.
    expect(
      chooseChannel({ ...friend, answers_person: true, line_friend: false }, optedOut, emailOk),
    ).toEqual({ channel: null, reason: 'line_blocked,no_marketing_consent_email' })
  })

  it('lists every reason when nothing fits', () => {
    const blocked = { ...friend, line_friend: false }
    expect(chooseChannel(blocked, consents(), { hasVersion: false, configured: true })).toEqual({
      channel: null,
      reason: 'line_blocked,no_email_version',
    })
    expect(chooseChannel({ ...blocked, email: null }, consents(), emailOk)).toEqual({
      channel: null,
      reason: 'line_blocked,no_email',
    })
    expect(
      chooseChannel(
        { ...friend, line_uid: null, line_friend: false },
        consents({ marketing: { email: false } }),
        emailOk,
      ),
    ).toEqual({ channel: null, reason: 'not_a_friend,no_marketing_consent_email' })
    expect(
      chooseChannel({ ...blocked, category: 'transactional' }, consents(), {
        hasVersion: true,
        configured: false,
      }),
    ).toEqual({ channel: null, reason: 'line_blocked,email_not_configured' })
  })

  it('an erased customer is skipped, whatever else holds', () => {
    expect(chooseChannel({ ...friend, erased: true }, consents(), emailOk)).toEqual({
      channel: null,
      reason: 'erased',
    })
    expect(
      chooseChannel({ ...friend, erased: true, answers_person: true }, consents(), emailOk),
    ).toEqual({ channel: null, reason: 'erased' })
  })
})
