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

describe('worstCaseVars: $ref, allOf and keywords it does not follow', () => {
  it('follows a local $ref (and $defs) as if the schema were written out', () => {
    const line = {
      type: 'object',
      properties: { name: { type: 'string', maxLength: 5 } },
    }
    const schema = {
      type: 'object',
      $defs: { line, name: { type: 'string', maxLength: 3 } },
      properties: {
        lines: { type: 'array', maxItems: 3, items: { $ref: '#/$defs/line' } },
        note: { $ref: '#/$defs/name' },
      },
    }
    const { vars, problems } = worstCaseVars(schema, { lines: [{ name: 'Tea' }], note: 'a' })
    expect(problems).toEqual([])
    expect(vars).toEqual({
      lines: Array(3).fill({ name: '\u0001'.repeat(5) }),
      note: '\u0001'.repeat(3),
    })
  })

  it('merges a simple allOf, taking the tighter bound', () => {
    const { vars, problems } = worstCaseVars(
      {
        type: 'object',
        properties: {
          code: {
            allOf: [
              { type: 'string', maxLength: 10 },
              { maxLength: 6, pattern: '^[a-z]*$' },
            ],
          },
          item: {
            allOf: [
              { type: 'object', properties: { a: { type: 'string', maxLength: 2 } } },
              { $ref: '#/$defs/b' },
            ],
          },
        },
        $defs: { b: { properties: { b: { type: 'integer', minimum: 0, maximum: 9 } } } },
      },
      {},
    )
    expect(problems).toEqual([])
    expect(vars).toEqual({ code: 'aaaaaa', item: { a: '\u0001\u0001', b: 9 } })
  })

  it('names what it cannot follow rather than copying the sample: a $ref out of the file or to itself, not, prefixItems, a property without a type', () => {
    const { problems } = worstCaseVars(
      {
        type: 'object',
        $defs: {
          node: {
            type: 'object',
            properties: { kids: { type: 'array', maxItems: 2, items: { $ref: '#/$defs/node' } } },
          },
        },
        properties: {
          remote: { $ref: 'https://schemas.example/name.json' },
          tree: { $ref: '#/$defs/node' },
          nonEmpty: { type: 'string', maxLength: 5, not: { const: '' } },
          pair: { type: 'array', prefixItems: [{ type: 'string' }], maxItems: 1 },
          anything: { description: 'no type' },
        },
      },
      { remote: 'x', tree: { kids: [] }, nonEmpty: 'x', pair: ['x'], anything: 'x' },
    )
    expect(Object.fromEntries(problems.map((p) => [p.path, p.message]))).toEqual({
      'vars/remote':
        'has "$ref": "https://schemas.example/name.json", which is not in this file, so no largest value can be checked against LINE\'s limits',
      'vars/tree/kids/*':
        'has "$ref": "#/$defs/node" inside itself, so no largest value can be checked against LINE\'s limits',
      'vars/nonEmpty':
        'has "not", which kizuna flex validate does not follow, so no largest value can be checked against LINE\'s limits',
      'vars/pair':
        'has "prefixItems", which kizuna flex validate does not follow, so no largest value can be checked against LINE\'s limits',
      'vars/anything': 'has no "type", so no largest value can be checked against LINE\'s limits',
    })
  })
})

describe('worstCaseVars: numbers', () => {
  const numberOf = (schema: Record<string, unknown>) =>
    worstCaseVars({ type: 'object', properties: { n: schema } }, {})
  const longest = (schema: Record<string, unknown>) => numberOf(schema).vars.n

  it('takes the longest the schema allows: exclusiveMaximum, multipleOf, a negative minimum', () => {
    expect(longest({ type: 'integer', minimum: 0, exclusiveMaximum: 100 })).toBe(99)
    expect(longest({ type: 'integer', minimum: 0, maximum: 100, multipleOf: 7 })).toBe(98)
    expect(longest({ type: 'integer', minimum: -1000, maximum: 10 })).toBe(-1000)
    expect(longest({ type: 'integer', minimum: -1000, exclusiveMinimum: -1000, maximum: 10 })).toBe(
      -999,
    )
  })

  it('counts the digits a number is written with: floats, and numbers past 1e21 that JSON writes with an exponent', () => {
    // 100 is 3 characters; 1.0000000000000002, inside the bounds, 18; and from 0, a number
    // next to it, 2.2250738585072014e-308, 23.
    expect(String(longest({ type: 'number', minimum: 1, maximum: 100 }))).toHaveLength(18)
    expect(String(longest({ type: 'number', minimum: 0, maximum: 100 }))).toHaveLength(23)
    // 1e22 is written "1e+22"; the integer below it as 9.999999999999998e+21.
    expect(String(longest({ type: 'integer', minimum: 0, maximum: 1e22 }))).toBe(
      '9.999999999999998e+21',
    )
    expect(longest({ type: 'integer', minimum: 0, maximum: 1e20 })).toBe(1e20)
    // Unbounded: the longest number there is (JSON writes no longer one).
    const { vars, problems } = numberOf({ type: 'number' })
    expect(problems).toEqual([])
    expect(String(vars.n)).toHaveLength(24)
    expect(
      compileVarsSchema({ type: 'integer', minimum: 1 })(longest({ type: 'integer', minimum: 1 })),
    ).toBe(true)
  })

  it('makes the items of a uniqueItems array differ, still as wide', () => {
    const schema = {
      type: 'object',
      properties: {
        tags: {
          type: 'array',
          maxItems: 3,
          uniqueItems: true,
          items: { type: 'string', maxLength: 2 },
        },
        ids: {
          type: 'array',
          maxItems: 3,
          uniqueItems: true,
          items: { type: 'integer', maximum: 99, minimum: 0 },
        },
        rows: {
          type: 'array',
          maxItems: 2,
          uniqueItems: true,
          items: { type: 'object', properties: { name: { type: 'string', maxLength: 1 } } },
        },
      },
    }
    const { vars, problems } = worstCaseVars(schema, {
      tags: ['a'],
      ids: [1],
      rows: [{ name: 'a' }],
    })
    expect(problems).toEqual([])
    expect(compileVarsSchema(schema)(vars)).toBe(true)
    const tags = vars.tags as string[]
    expect(tags).toHaveLength(3)
    for (const tag of tags) expect(Buffer.byteLength(JSON.stringify(tag))).toBe(14) // 2 × \u00XX
    expect(vars.ids).toHaveLength(3)
    expect(vars.rows).toHaveLength(2)
  })

  it('names a uniqueItems array whose items cannot differ', () => {
    const { problems } = worstCaseVars(
      {
        type: 'object',
        properties: {
          flags: { type: 'array', maxItems: 3, uniqueItems: true, items: { const: 'x' } },
        },
      },
      {},
    )
    expect(problems).toEqual([
      {
        path: 'vars/flags',
        message:
          "has uniqueItems and items that cannot all differ, so no largest value can be checked against LINE's limits",
      },
    ])
  })
})
