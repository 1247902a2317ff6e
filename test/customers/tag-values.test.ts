import { describe, expect, it } from 'vitest'
import { normaliseTag, parseTag } from '../../src/customers/tag-values.ts'
import { AppError } from '../../src/platform/errors.ts'

describe('normaliseTag', () => {
  it('stores one spelling: NFKC, lower case, trimmed; Japanese as written', () => {
    expect(normaliseTag('ソファ購入')).toEqual({ ok: true, value: 'ソファ購入' })
    expect(normaliseTag('ｿﾌｧ購入')).toEqual({ ok: true, value: 'ソファ購入' })
    expect(normaliseTag('\u3000ＶＩＰ会員 ')).toEqual({ ok: true, value: 'vip会員' })
    expect(normaliseTag('Garden Sofa')).toEqual({ ok: true, value: 'garden sofa' })
  })

  it('counts code points: 50 are fine, 51 are not', () => {
    expect(normaliseTag('𠮷'.repeat(50)).ok).toBe(true)
    expect(normaliseTag('𠮷'.repeat(51))).toEqual({
      ok: false,
      message: 'too long (51 characters): at most 50',
    })
  })

  it('refuses empty tags, control characters and separators', () => {
    for (const bad of ['', '  ', 'a\tb', 'a\u0000b', 'a\u2028b', 'a,b', 'a;b', 'a，b', 'a；b']) {
      expect(normaliseTag(bad).ok, JSON.stringify(bad)).toBe(false)
    }
  })

  it('refuses `.` and `..`, however written: a URL path cannot carry them as a segment', () => {
    for (const bad of ['.', '..', ' . ', '\uff0e', '\uff0e\uff0e', '\u3000..\u3000']) {
      expect(normaliseTag(bad), JSON.stringify(bad)).toEqual({
        ok: false,
        message: 'is "." or "..", which a URL path cannot carry (…/tags/. is …/tags/)',
      })
    }
    for (const fine of ['...', '.vip', 'v.i.p', '。']) {
      expect(normaliseTag(fine).ok, JSON.stringify(fine)).toBe(true)
    }
    // To remove one stored before they were refused, they are read as any tag is.
    expect(normaliseTag(' \uff0e ', 'remove')).toEqual({ ok: true, value: '.' })
    expect(normaliseTag('..', 'remove')).toEqual({ ok: true, value: '..' })
  })

  it('parseTag throws BAD_REQUEST naming the field and the rule', () => {
    const error = (() => {
      try {
        parseTag('a;b', 'tag')
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(AppError)
    expect(error).toMatchObject({
      code: 'BAD_REQUEST',
      message: 'tag: contains a comma or semicolon (they separate tags)',
      details: [{ field: 'tag', message: 'contains a comma or semicolon (they separate tags)' }],
    })
    expect(parseTag(' VIP ')).toBe('vip')
  })
})
