import { fits, isObject, resolveSchema, type Schema, type Walk } from './flex-var-schema.ts'
import {
  type Builder,
  buildValue,
  built,
  byJsonLength,
  filled,
  numberRange,
  problemsOf,
  seedsOf,
} from './flex-var-values.ts'
import type { TemplateProblem } from './template-error.ts'

/** Characters a string at its minLength is built of: the first its pattern and format take. */
const FILLERS = ['a', '0', 'あ', '😀', '\u0001', '\ud800']
/** Lengths past a string's minLength tried for one its pattern takes (`^[0-9]{4,8}$`). */
const SEARCH = 16

/**
 * The smallest variables a template's `variables` schema allows, for `kizuna flex validate` to
 * render beside the sample and the largest case: optional properties absent (in every item
 * too), strings empty when the schema allows it (else at their minLength, else the sample's),
 * arrays at their minItems (empty without one), booleans false, numbers 0 or the bound nearest
 * it, and of `anyOf`/`oneOf` the branch with the shortest JSON. A required value that can't be
 * built and is not in the sample is a problem (`vars/postcode has no value in the sample…`).
 */
export function smallestVars(
  schema: Schema,
  sample: Record<string, unknown>,
): { vars: Record<string, unknown>; problems: TemplateProblem[] } {
  const { report, list } = problemsOf('smallest')
  const vars = smallest(schema, sample, 'vars', { report, root: schema, expanding: new Set() }, 0)
  return { vars: isObject(vars) ? vars : sample, problems: list() }
}

/** One var of the sample shrunk to nothing, and what that is (`is absent`, `is ""`). */
export type Shrunk = { path: string; what: string; vars: Record<string, unknown> }

const ABSENT = Symbol('absent')

/**
 * The sample with one var at a time shrunk to nothing the schema allows (an optional property
 * absent; else "", an empty array, false, 0 or null): which var a problem of the smallest case
 * comes from (`when vars/nickname is ""`). A var inside array items is shrunk in every item.
 */
export function shrunkVars(schema: Schema, sample: Record<string, unknown>): Shrunk[] {
  const ctx = { report: () => {}, root: schema, expanding: new Set<string>() }
  const found = new Map<string, Shrunk>()
  const visit = (node: unknown, value: unknown, path: string, keys: string[], walk: Walk) => {
    const resolved = isObject(node) ? resolveSchema(node, path, walk) : undefined
    if (!resolved) return
    const inner = { ...walk, expanding: new Set([...walk.expanding, ...resolved.refs]) }
    const s = resolved.schema
    if (Array.isArray(value)) {
      for (const item of value) visit(s.items, item, `${path}/*`, [...keys, '*'], inner)
      return
    }
    if (!isObject(value) || !isObject(s.properties)) return
    const required = Array.isArray(s.required) ? s.required : []
    for (const [key, sub] of Object.entries(s.properties)) {
      if (value[key] === undefined) continue
      const at = `${path}/${key}`
      const optional = !required.includes(key)
      const shrink = (v: unknown) => (optional ? ABSENT : smallest(sub, v, at, inner, 0))
      const to = shrink(value[key])
      if (!found.has(at) && isNothing(to) && JSON.stringify(to) !== JSON.stringify(value[key])) {
        const vars = replaceAt(sample, [...keys, key], shrink) as Record<string, unknown>
        found.set(at, { path: at, what: describe(to), vars })
      }
      visit(sub, value[key], at, [...keys, key], inner)
    }
  }
  visit(schema, sample, 'vars', [], ctx)
  return [...found.values()]
}

const SMALLEST: Builder<Walk> = {
  longest: false,
  types: {
    object: smallestObject,
    array: smallestArray,
    string: shortestString,
    integer: nearestZero,
    number: nearestZero,
    boolean: (_schema, _sample, _path, _ctx, variant) => variant % 2 === 1,
  },
}

function smallest(node: unknown, sample: unknown, path: string, ctx: Walk, variant: number) {
  return buildValue(node, sample, path, ctx, variant, SMALLEST)
}

function smallestArray(schema: Schema, sample: unknown, path: string, ctx: Walk, variant: number) {
  const given = Array.isArray(sample) ? sample : []
  const count = typeof schema.minItems === 'number' ? schema.minItems : 0
  const unique = schema.uniqueItems === true
  const at = `${path}/*`
  return Array.from({ length: count }, (_, i) => {
    const from = given.length ? given[i % given.length] : undefined
    const value = smallest(schema.items, from, at, ctx, unique ? variant * count + i : variant)
    return built(value, schema.items, at, ctx.report)
  })
}

function smallestObject(schema: Schema, sample: unknown, path: string, ctx: Walk, variant: number) {
  const given = isObject(sample) ? sample : {}
  const properties = isObject(schema.properties) ? schema.properties : {}
  const required = Array.isArray(schema.required) ? schema.required : []
  const out: Record<string, unknown> = {}
  for (const [key, sub] of Object.entries(properties)) {
    if (!required.includes(key)) continue
    const at = `${path}/${key}`
    const value = built(smallest(sub, given[key], at, ctx, variant), sub, at, ctx.report)
    if (value !== undefined) out[key] = value
  }
  return out
}

/** "" when the schema takes it; else the shortest of fillers at minLength on, the sample, seeds. */
function shortestString(
  schema: Schema,
  sample: unknown,
  _path: string,
  ctx: Walk,
  variant: number,
) {
  const min = typeof schema.minLength === 'number' ? schema.minLength : 0
  const candidates: string[] = []
  for (let length = min; length <= min + SEARCH; length++) {
    for (const filler of FILLERS) {
      const value = filled(filler, length, variant)
      if (value !== undefined) candidates.push(value)
    }
  }
  if (typeof sample === 'string') candidates.push(sample)
  candidates.push(...seedsOf(schema))
  const allowed = candidates.filter((c) => fits(schema, c, ctx.root))
  return byJsonLength(allowed, false) ?? sample
}

/** 0 when the schema takes it; else the bound nearest 0. A variant steps outwards. */
function nearestZero(schema: Schema, sample: unknown, _path: string, ctx: Walk, variant: number) {
  const { lo, hi, step } = numberRange(schema, schema.type === 'integer')
  const start = lo > 0 ? lo : Math.min(hi, 0)
  const value = start + (start < 0 ? -1 : 1) * variant * (step || 1)
  return fits(schema, value, ctx.root) ? value : sample
}

/** Nothing a template could show: absent, "", an empty array, false, 0 or null. */
function isNothing(value: unknown): boolean {
  return value === ABSENT || (Array.isArray(value) ? value.length === 0 : !value)
}

function describe(value: unknown): string {
  if (value === ABSENT) return 'is absent'
  if (Array.isArray(value)) return 'is empty'
  return `is ${JSON.stringify(value)}`
}

/** `value` with what `keys` names (`*`: every item) replaced; ABSENT deletes a property. */
function replaceAt(value: unknown, keys: string[], replace: (v: unknown) => unknown): unknown {
  const [key, ...rest] = keys
  if (key === undefined) return replace(value)
  if (key === '*') {
    return Array.isArray(value) ? value.map((item) => replaceAt(item, rest, replace)) : value
  }
  if (!isObject(value) || value[key] === undefined) return value
  const out = { ...value }
  const next = replaceAt(value[key], rest, replace)
  if (next === ABSENT) delete out[key]
  else out[key] = next
  return out
}
