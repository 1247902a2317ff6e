import type { ValidateFunction } from 'ajv/dist/2020.js'
import { compileVarsSchema } from './message-template.ts'
import type { TemplateProblem } from './template-error.ts'

type Schema = Record<string, unknown>

/**
 * Characters a string is filled with, widest first: an emoji is 4 bytes of JSON, 2 UTF-16 units
 * and 1 character for `maxLength` (ajv counts code points), so it reaches LINE's byte and length
 * limits soonest; the ASCII fillers serve strings whose pattern or format refuses it.
 */
const FILLERS = ['😀', 'あ', 'a', '0']
/** A string that still fits its schema at this length has no bound worth the name. */
const UNBOUNDED = 4096

const compiled = new WeakMap<Schema, ValidateFunction>()

function fits(schema: Schema, value: unknown): boolean {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = compileVarsSchema(schema)
    compiled.set(schema, validate)
  }
  return validate(value)
}

/**
 * The largest variables a template's `variables` schema allows, for `kizuna flex validate` to
 * render beside the sample: every array at its `maxItems` (items built from the sample's in
 * turn), every optional property present, every string at its `maxLength` in the widest filler
 * the string's pattern and format take (or, without a maxLength, at the longest length its
 * pattern takes), integers at their `maximum`, booleans true, and of `anyOf`/`oneOf` the branch
 * with the longest JSON. An array without maxItems or a string nothing bounds has no largest
 * value: each is a problem (`vars/lines has no maxItems`), and its sample value is used.
 * A string bounded only by a pattern that a longer value can't follow stays at its sample.
 */
export function worstCaseVars(
  schema: Schema,
  sample: Record<string, unknown>,
): { vars: Record<string, unknown>; problems: TemplateProblem[] } {
  const problems = new Map<string, TemplateProblem>()
  const unbounded = (path: string, what: string) =>
    problems.set(path, {
      path,
      message: `has no ${what}, so no largest value can be checked against LINE's limits`,
    })
  const vars = largest(schema, sample, 'vars', unbounded)
  return {
    vars: isObject(vars) ? vars : sample,
    problems: [...problems.values()],
  }
}

type Unbounded = (path: string, what: string) => void

function largest(schema: unknown, sample: unknown, path: string, unbounded: Unbounded): unknown {
  if (!isObject(schema)) return sample
  if ('const' in schema) return schema.const
  if (Array.isArray(schema.enum)) return longestJson(schema.enum)
  const { anyOf, oneOf, ...rest } = schema
  const branches = Array.isArray(anyOf) ? anyOf : oneOf
  if (Array.isArray(branches) && branches.length > 0) {
    const values = branches.map((b) => largest({ ...rest, ...b }, sample, path, unbounded))
    return longestJson(values)
  }
  switch (typeOf(schema, sample)) {
    case 'object':
      return largestObject(schema, sample, path, unbounded)
    case 'array':
      return largestArray(schema, sample, path, unbounded)
    case 'string':
      return largestString(schema, sample, path, unbounded)
    case 'integer':
    case 'number':
      return typeof schema.maximum === 'number' ? schema.maximum : Number.MAX_SAFE_INTEGER
    case 'boolean':
      return true
    default:
      return sample
  }
}

function largestObject(schema: Schema, sample: unknown, path: string, unbounded: Unbounded) {
  const given = isObject(sample) ? sample : {}
  const properties = isObject(schema.properties) ? schema.properties : {}
  const out: Record<string, unknown> = { ...given }
  for (const [key, sub] of Object.entries(properties)) {
    out[key] = largest(sub, given[key], `${path}/${key}`, unbounded)
  }
  return out
}

function largestArray(schema: Schema, sample: unknown, path: string, unbounded: Unbounded) {
  const given = Array.isArray(sample) ? sample : []
  const max = typeof schema.maxItems === 'number' ? schema.maxItems : undefined
  if (max === undefined) unbounded(path, 'maxItems')
  const count = max ?? given.length
  const items = schema.items
  return Array.from({ length: count }, (_, i) =>
    largest(items, given.length ? given[i % given.length] : undefined, `${path}/*`, unbounded),
  )
}

function largestString(schema: Schema, sample: unknown, path: string, unbounded: Unbounded) {
  const given = typeof sample === 'string' ? sample : ''
  const sized = (length: number): string | undefined => {
    for (const filler of FILLERS) {
      for (const start of ['', given]) {
        const head = Array.from(start).slice(0, length)
        const value = head.join('') + filler.repeat(Math.max(0, length - head.length))
        if (fits(schema, value)) return value
      }
    }
    return undefined
  }
  if (typeof schema.maxLength === 'number') return sized(schema.maxLength) ?? sample
  if (sized(UNBOUNDED) !== undefined) {
    unbounded(path, 'maxLength')
    return sample
  }
  // The longest length the pattern or format takes (searched between the sample's and the cap).
  let low = Array.from(given).length
  let high = UNBOUNDED
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2)
    if (sized(mid) === undefined) high = mid
    else low = mid
  }
  return sized(low) ?? sample
}

function typeOf(schema: Schema, sample: unknown): string | undefined {
  const type = schema.type
  if (typeof type === 'string') return type
  if (Array.isArray(type)) return type.find((t) => t !== 'null')
  if (isObject(schema.properties)) return 'object'
  if (schema.items !== undefined) return 'array'
  if (typeof schema.maxLength === 'number' || typeof schema.pattern === 'string') return 'string'
  return Array.isArray(sample) ? 'array' : sample === null ? undefined : typeof sample
}

function longestJson(values: unknown[]): unknown {
  let best: unknown = values[0]
  let bestLength = -1
  for (const value of values) {
    const length = Buffer.byteLength(JSON.stringify(value) ?? '')
    if (length > bestLength) {
      best = value
      bestLength = length
    }
  }
  return best
}

function isObject(value: unknown): value is Schema {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
