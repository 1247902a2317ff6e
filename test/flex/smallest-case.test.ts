import { describe, expect, it } from 'vitest'
import { shrunkVars, smallestVars } from '../../src/flex/flex-smallest-case.ts'
import { compileVarsSchema } from '../../src/flex/message-template.ts'

const schema = {
  type: 'object',
  required: ['name', 'lines', 'card', 'gift', 'points', 'coupon'],
  $defs: {
    line: {
      type: 'object',
      required: ['sku'],
      properties: {
        sku: { type: 'string', minLength: 2, maxLength: 8 },
        note: { type: 'string', maxLength: 9 },
      },
    },
  },
  properties: {
    name: { type: 'string', maxLength: 100 },
    nickname: { type: 'string', minLength: 1, maxLength: 100 },
    lines: { type: 'array', minItems: 1, maxItems: 5, items: { $ref: '#/$defs/line' } },
    tags: { type: 'array', maxItems: 5, items: { type: 'string', maxLength: 5 } },
    card: { type: 'string', pattern: '^[0-9]{4,8}$' },
    url: { type: 'string', format: 'uri', pattern: '^https://', maxLength: 100 },
    gift: { type: 'boolean' },
    points: { type: 'integer', minimum: 0, maximum: 9999 },
    level: { type: 'integer', minimum: 3, maximum: 9 },
    coupon: {
      type: 'object',
      required: ['code'],
      properties: {
        code: { type: 'string', maxLength: 10 },
        title: { type: 'string', maxLength: 10 },
      },
    },
  },
}
const sample = {
  name: 'Hana',
  nickname: 'Hana',
  lines: [{ sku: 'TS-1', note: 'gift' }, { sku: 'TS-2' }],
  tags: ['new'],
  card: '2900',
  url: 'https://a.example/',
  gift: true,
  points: 120,
  level: 5,
  coupon: { code: 'K7Q', title: 'Spring' },
}

describe('smallestVars', () => {
  it('builds the smallest variables the schema allows: optional properties absent, strings empty or at minLength, arrays at minItems, false, 0', () => {
    const { vars, problems } = smallestVars(schema, sample)
    expect(problems).toEqual([])
    expect(vars).toEqual({
      name: '',
      lines: [{ sku: 'aa' }],
      card: '0000',
      gift: false,
      points: 0,
      coupon: { code: '' },
    })
    expect(compileVarsSchema(schema)(vars)).toBe(true)
  })
})

describe('shrunkVars', () => {
  it('shrinks one var at a time from the sample to nothing (absent, "", empty, false, 0), naming it', () => {
    const shrunk = shrunkVars(schema, sample)
    expect(shrunk.map((s) => `${s.path} ${s.what}`)).toEqual([
      'vars/name is ""',
      'vars/nickname is absent',
      'vars/lines/*/note is absent',
      'vars/tags is absent',
      'vars/url is absent',
      'vars/gift is false',
      'vars/points is 0',
      'vars/level is absent',
      'vars/coupon/code is ""',
      'vars/coupon/title is absent',
    ])
    const vars = (path: string) => shrunk.find((s) => s.path === path)?.vars
    expect(vars('vars/lines/*/note')).toEqual({
      ...sample,
      lines: [{ sku: 'TS-1' }, { sku: 'TS-2' }],
    })
    expect(vars('vars/coupon/code')).toEqual({ ...sample, coupon: { code: '', title: 'Spring' } })
    const { nickname: _, ...withoutNickname } = sample
    expect(vars('vars/nickname')).toEqual(withoutNickname)
  })
})
