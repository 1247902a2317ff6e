import { describe, expect, it } from 'vitest'
import { worstCaseVars } from '../../src/flex/flex-worst-case.ts'

describe('worstCaseVars', () => {
  it('fills arrays to maxItems and strings to maxLength in 4-byte characters', () => {
    const { vars, problems } = worstCaseVars(
      {
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
      },
      { lines: [{ name: 'Tea', quantity: 1 }] },
    )
    expect(problems).toEqual([])
    expect(vars).toEqual({
      lines: Array(3).fill({ name: '😀'.repeat(5), quantity: 99 }),
      note: '😀😀',
      gift: true,
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
      points: '😀'.repeat(20),
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
      tags: ['😀😀😀'],
      items: [{ sku: 'S1' }, { sku: 'S1' }],
    })
    expect(problems.map((p) => p.path)).toEqual(['vars/name', 'vars/tags', 'vars/items/*/sku'])
    expect(problems[0]?.message).toBe(
      "has no maxLength, so no largest value can be checked against LINE's limits",
    )
  })
})
