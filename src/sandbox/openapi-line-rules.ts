import type { Ajv } from 'ajv'
import { addMessageLimits } from './openapi-message-limits.ts'
import { isObject, type JsonSchema } from './openapi-schema.ts'

/**
 * What LINE checks differently from, or beyond, its OpenAPI spec, for the stand-in's validator
 * (openapi-validator.ts): schema patches (`addLineRules`) and the keywords they use
 * (`addLineKeywords`).
 */

/**
 * LINE counts string lengths in UTF-16 code units (🍎 is two), except a few properties it
 * counts in grapheme clusters (a family emoji is one) [DOCS:text-character-count]. Of those, only
 * the rich menu's `name` and `chatBarText` carry a `maxLength` in the spec; it becomes
 * `maxGraphemes` here.
 */
const GRAPHEME_COUNTED: Record<string, string[]> = {
  RichMenuRequest: ['name', 'chatBarText'],
  RichMenuResponse: ['name', 'chatBarText'],
}
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' })

/** Patches the converted component schemas in place. */
export function addLineRules(defs: Record<string, JsonSchema>): void {
  countGraphemes(defs)
  addMessageLimits(defs)
  // A Flex text of "" is a 400 "must be non-empty text" (e.g. cofacts/rumors-line-bot#212);
  // with spans (`contents`) LINE ignores `text`.
  const flexText = defs.FlexText
  if (flexText) {
    const withSpans = { required: ['contents'], properties: { contents: { minItems: 1 } } }
    const nonEmpty = { properties: { text: { nonEmptyText: true } } }
    const allOf = Array.isArray(flexText.allOf) ? flexText.allOf : []
    defs.FlexText = { ...flexText, allOf: [...allOf, { if: withSpans, else: nonEmpty }] }
  }
}

/**
 * `minLength`/`maxLength` in UTF-16 units, plus `maxGraphemes`, `nonEmptyText`, `maxJsonBytes`
 * (a Flex container's size) and `sameBubbleSize` (a carousel's bubbles).
 */
export function addLineKeywords(ajv: Ajv): void {
  // Ajv's own minLength/maxLength count code points (its `unicode: false` switch is deprecated).
  ajv.removeKeyword('minLength')
  ajv.removeKeyword('maxLength')
  const length = (name: string, ok: (n: number, s: string) => boolean) =>
    ajv.addKeyword({ keyword: name, type: 'string', schemaType: 'number', validate: ok })
  length('minLength', (min, s) => s.length >= min)
  length('maxLength', (max, s) => s.length <= max)
  length('maxGraphemes', (max, s) => graphemeLength(s) <= max)
  ajv.addKeyword({
    keyword: 'nonEmptyText',
    type: 'string',
    schemaType: 'boolean',
    validate: (on: boolean, s: string) => !on || s.length > 0,
  })
  ajv.addKeyword({
    keyword: 'maxJsonBytes',
    type: 'object',
    schemaType: 'number',
    validate: (max: number, data: unknown) => Buffer.byteLength(JSON.stringify(data)) <= max,
  })
  ajv.addKeyword({
    keyword: 'sameBubbleSize',
    type: 'array',
    schemaType: 'boolean',
    validate: (on: boolean, bubbles: unknown[]) =>
      !on || new Set(bubbles.map((b) => (isObject(b) ? (b.size ?? 'mega') : 'mega'))).size <= 1,
  })
}

/** Moves `maxLength` to `maxGraphemes` on the properties LINE counts in grapheme clusters. */
function countGraphemes(defs: Record<string, JsonSchema>): void {
  for (const [name, props] of Object.entries(GRAPHEME_COUNTED)) {
    const properties = defs[name]?.properties
    if (!isObject(properties)) continue
    for (const prop of props) {
      const schema = properties[prop]
      if (!isObject(schema) || typeof schema.maxLength !== 'number') continue
      const { maxLength, ...rest } = schema
      properties[prop] = { ...rest, maxGraphemes: maxLength }
    }
  }
}

function graphemeLength(text: string): number {
  let n = 0
  for (const _ of graphemes.segment(text)) n++
  return n
}
