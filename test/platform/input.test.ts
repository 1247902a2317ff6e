import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AppError } from '../../src/platform/errors.ts'
import { checkInput, parseInput, queryParamOf } from '../../src/platform/input.ts'

const schema = z.object({
  name: z.string().max(5),
  tags: z.array(z.string()),
  extra: z.record(z.string(), z.string()).optional(),
})

describe('checkInput', () => {
  it('names every bad field at once: NUL characters (in values and keys, however deep) and the schema’s own', () => {
    const checked = checkInput(schema, {
      name: 'too long for five',
      tags: ['ok', 'b\u0000d'],
      extra: { 'k\u0000': 'v' },
    })
    expect(checked).toEqual({
      ok: false,
      fields: [
        {
          field: 'tags.1',
          message: 'contains a NUL character (\\u0000), which cannot be stored',
        },
        {
          field: 'extra',
          message: 'a key contains a NUL character (\\u0000), which cannot be stored',
        },
        { field: 'name', message: expect.stringContaining('5') },
      ],
    })
  })

  it('refuses a NUL even where the schema would accept the string', () => {
    expect(checkInput(z.string(), 'a\u0000b')).toEqual({
      ok: false,
      fields: [{ field: '(body)', message: expect.stringContaining('NUL') }],
    })
  })

  it('refuses a lone UTF-16 surrogate in a value or a key, however deep; a pair is one character', () => {
    expect(
      checkInput(schema, {
        name: 'a\ud800',
        tags: ['ok', '\udc00b'],
        extra: { 'k\ud83e': 'v', '\ud83e\udd28': '\ud83e\udd28' },
      }),
    ).toEqual({
      ok: false,
      fields: [
        { field: 'name', message: 'contains an unpaired surrogate (half of a character)' },
        { field: 'tags.1', message: 'contains an unpaired surrogate (half of a character)' },
        { field: 'extra', message: 'a key contains an unpaired surrogate (half of a character)' },
      ],
    })
  })

  it('passes valid input through the schema', () => {
    expect(checkInput(schema, { name: 'Yui', tags: ['\u00001'.slice(1)] })).toEqual({
      ok: true,
      data: { name: 'Yui', tags: ['1'] },
    })
  })

  it('parseInput throws a 400 AppError whose details list the fields', () => {
    try {
      parseInput(schema, { name: 'x\u0000', tags: [] })
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(AppError)
      const e = error as AppError
      expect(e.status).toBe(400)
      expect(e.message).toBe('name: contains a NUL character (\\u0000), which cannot be stored')
      expect(e.details).toEqual([{ field: 'name', message: expect.stringContaining('NUL') }])
    }
  })
})

describe('queryParamOf', () => {
  const url = (query: string) => `http://localhost/api/customers?${query}#identity=hash`
  it('reads the first value of the name as Hono does: decoded, + a space, absent undefined', () => {
    expect(queryParamOf(url('a=1&identity=line%3AU1&identity=x'), 'identity')).toBe('line:U1')
    expect(queryParamOf(url('%69dentity=b+c%2B'), 'identity')).toBe('b c+')
    expect(queryParamOf(url('identity'), 'identity')).toBe('')
    expect(queryParamOf(url('identityx=1&%ZZ=2'), 'identity')).toBeUndefined()
    expect(queryParamOf('http://localhost/api/customers', 'identity')).toBeUndefined()
  })

  it('refuses a value that does not decode, naming the parameter', () => {
    for (const raw of ['%ED%A0%80', '%E0%A4%A', '%80', 'a%']) {
      expect(() => queryParamOf(url(`identity=${raw}`), 'identity'), raw).toThrow(
        expect.objectContaining({
          code: 'BAD_REQUEST',
          message: 'identity: not valid percent-encoded UTF-8',
        }),
      )
    }
  })
})
