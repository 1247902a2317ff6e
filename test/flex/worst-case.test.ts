import { describe, expect, it } from 'vitest'
import { worstCaseVars } from '../../src/flex/flex-worst-case.ts'
import { compileVarsSchema } from '../../src/flex/message-template.ts'

describe('worstCaseVars', () => {
  it('fills arrays to maxItems and strings to maxLength in the widest characters: 6 bytes of JSON, or 2 UTF-16 units', () => {
    const schema = {
      type: 'object',
      required: ['lines'],
      properties: {
        lines: {
          type: 'array',
          maxItems: 3,
          items: {
            type: 'object',
            properties: {
              name: { type: 'string', maxLength: 5 },
              quantity: { type: 'integer', minimum: 1, maximum: 99 },
            },
          },
        },
        note: { type: 'string', maxLength: 2 },
        gift: { type: 'boolean' },
      },
    }
    const sample = { lines: [{ name: 'Tea', quantity: 1 }] }
    // For LINE's limits in bytes: a control character, which JSON writes as `\u0001`.
    const bytes = worstCaseVars(schema, sample)
    expect(bytes.problems).toEqual([])
    expect(bytes.vars).toEqual({
      lines: Array(3).fill({ name: '\u0001'.repeat(5), quantity: 99 }),
      note: '\u0001\u0001',
      gift: true,
    })
    expect(JSON.stringify(bytes.vars.note)).toBe('"\\u0001\\u0001"')
    // For LINE's limits in UTF-16 units (altText, postback data): an emoji, two units.
    const units = worstCaseVars(schema, sample, 'utf16')
    expect(units.problems).toEqual([])
    expect(units.vars).toEqual({
      lines: Array(3).fill({ name: '😀'.repeat(5), quantity: 99 }),
      note: '😀😀',
      gift: true,
    })
  })

  it('fills a string with the widest characters its pattern takes: 6 bytes while it takes any', () => {
    const { vars } = worstCaseVars(
      {
        type: 'object',
        properties: {
          any: { type: 'string', maxLength: 2 },
          noControl: { type: 'string', pattern: '^[^\\p{Cc}]*$', maxLength: 2 },
          text: { type: 'string', pattern: '^[^\\p{Cc}\\p{Cs}]*$', maxLength: 2 },
          oneLine: {
            type: 'string',
            pattern: '^[^\\u0000-\\u0009\\u000b-\\u001f\\p{Cs}]*$',
            maxLength: 2,
          },
        },
      },
      {},
    )
    expect(vars).toEqual({
      any: '\u0001\u0001',
      // Half of a character: JSON writes it as `\ud800`, 6 bytes too.
      noControl: '\ud800\ud800',
      text: '😀😀',
      oneLine: '😀😀',
    })
  })

  it('keeps to patterns and formats: a URL grows from the sample, a pattern sets the length', () => {
    const { vars, problems } = worstCaseVars(
      {
        type: 'object',
        properties: {
          url: { type: 'string', format: 'uri', pattern: '^https://', maxLength: 30 },
          code: { type: 'string', pattern: '^[0-9A-Z]{4,12}$' },
          size: { enum: ['sm', 'medium'] },
          points: { anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 20 }] },
        },
      },
      { url: 'https://a.example/x', code: '1234' },
    )
    expect(problems).toEqual([])
    expect(vars).toEqual({
      url: `https://a.example/x${'a'.repeat(11)}`,
      code: '0'.repeat(12),
      size: 'medium',
      points: '\u0001'.repeat(20),
    })
  })

  it('names what nothing bounds, keeping its sample value', () => {
    const { vars, problems } = worstCaseVars(
      {
        type: 'object',
        properties: {
          name: { type: 'string' },
          tags: { type: 'array', items: { type: 'string', maxLength: 3 } },
          items: {
            type: 'array',
            maxItems: 2,
            items: { type: 'object', properties: { sku: { type: 'string' } } },
          },
        },
      },
      { name: 'A', tags: ['x'], items: [{ sku: 'S1' }] },
    )
    expect(vars).toEqual({
      name: 'A',
      tags: ['\u0001\u0001\u0001'],
      items: [{ sku: 'S1' }, { sku: 'S1' }],
    })
    expect(problems.map((p) => p.path)).toEqual(['vars/name', 'vars/tags', 'vars/items/*/sku'])
    expect(problems[0]?.message).toBe(
      "has no maxLength, so no largest value can be checked against LINE's limits",
    )
  })

  it('builds a value the sample leaves out from the schema, in every array item', () => {
    const schema = {
      type: 'object',
      properties: {
        recs: {
          type: 'array',
          maxItems: 3,
          items: {
            type: 'object',
            required: ['name'],
            properties: {
              name: { type: 'string', pattern: '^[a-z]+$', maxLength: 4 },
              url: { type: 'string', format: 'uri', pattern: '^https://', maxLength: 40 },
              tel: { type: 'string', pattern: '^tel:[0-9]+$', maxLength: 12 },
            },
          },
        },
      },
    }
    // The second item has no url, and no item a tel: each is still filled in every item.
    const { vars, problems } = worstCaseVars(schema, {
      recs: [{ name: 'tea', url: 'https://a.example/x' }, { name: 'cup' }],
    })
    expect(problems).toEqual([])
    expect(vars).toEqual({
      recs: [
        { name: 'aaaa', url: `https://a.example/x${'a'.repeat(21)}`, tel: 'tel:00000000' },
        { name: 'aaaa', url: `https://example.com/${'a'.repeat(20)}`, tel: 'tel:00000000' },
        { name: 'aaaa', url: `https://a.example/x${'a'.repeat(21)}`, tel: 'tel:00000000' },
      ],
    })
    expect(compileVarsSchema(schema)(vars)).toBe(true)
  })

  it('names a string the sample leaves out that it cannot build, rather than leaving it out', () => {
    const schema = {
      type: 'object',
      properties: { postcode: { type: 'string', pattern: '^[0-9]{3}-[0-9]{4}$' } },
    }
    const { vars, problems } = worstCaseVars(schema, {})
    expect(vars).toEqual({})
    expect(problems).toEqual([
      {
        path: 'vars/postcode',
        message:
          "has no value in the sample and none could be built from its schema, so no largest value can be checked against LINE's limits: give one in the sample",
      },
    ])
    expect(worstCaseVars(schema, { postcode: '150-0002' })).toEqual({
      vars: { postcode: '150-0002' },
      problems: [],
    })
  })
})
