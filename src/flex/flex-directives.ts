import { childPath, TemplateError } from './template-error.ts'

/**
 * Compiles the `line` part of a message template once into a function of the variables.
 * Placeholders are filled inside parsed string values, never in JSON text, so a value can only
 * be string content. Directives (src/flex/README.md):
 *
 *   { "$each": "lines", "as": "line", "do": <component> }   in an array: one copy per item
 *   { "$if": "coupon", "do": <node>, "else": <node> }       in an array or as a property value:
 *                                                           `do` when the var is truthy (a
 *                                                           non-empty array, string; not 0,
 *                                                           false, null), else `else` or nothing
 */

type Local = { name: string; value: unknown; next: Local | undefined }
/** The variables plus the `$each` bindings in force, innermost first. */
export type Scope = { vars: Record<string, unknown>; locals: Local | undefined }
export type Build = (scope: Scope) => unknown
export type BuildString = (scope: Scope) => string

export type CompileContext = {
  file: string
  /** Top-level variable names the schema declares; a placeholder must use one (or a binding). */
  declared: ReadonlySet<string> | undefined
}

const OMIT = Symbol('omit')
const PLACEHOLDER = /\{\{(.*?)\}\}/g
const VAR_PATH = /^[A-Za-z_]\w*(?:\.\w+)*$/
const IDENTIFIER = /^[A-Za-z_]\w*$/
const IF_KEYS = new Set(['$if', 'do', 'else', '$comment'])
const EACH_KEYS = new Set(['$each', 'as', 'do', '$comment'])

export function scopeOf(vars: Record<string, unknown>): Scope {
  return { vars, locals: undefined }
}

/** Compiles a container (`line.contents`); the result is a fresh object on every call. */
export function compileFlexContainer(node: unknown, path: string, ctx: CompileContext): Build {
  if (!isRecord(node) || '$if' in node || '$each' in node) {
    fail(ctx, path, 'must be a bubble or carousel object')
  }
  return compileNode(node, path, ctx, [])
}

/** Compiles one string with `{{name}}` / `{{item.field}}` placeholders. */
export function compileFlexString(
  text: string,
  path: string,
  ctx: CompileContext,
  locals: readonly string[] = [],
): BuildString {
  if (!text.includes('{{')) return () => text
  const parts: (string | BuildString)[] = []
  let last = 0
  for (const match of text.matchAll(PLACEHOLDER)) {
    const expr = (match[1] ?? '').trim()
    parts.push(text.slice(last, match.index), placeholder(expr, path, ctx, locals))
    last = match.index + match[0].length
  }
  const rest = text.slice(last)
  if (rest.includes('{{')) fail(ctx, path, 'has a "{{" that is not closed by "}}"')
  parts.push(rest)
  const pieces = parts.filter((p) => p !== '')
  return (scope) => {
    let out = ''
    for (const p of pieces) out += typeof p === 'string' ? p : p(scope)
    return out
  }
}

function compileNode(node: unknown, path: string, ctx: CompileContext, locals: string[]): Build {
  if (typeof node === 'string') return compileFlexString(node, path, ctx, locals)
  if (Array.isArray(node)) return compileArray(node, path, ctx, locals)
  if (!isRecord(node)) return () => node
  if ('$each' in node) fail(ctx, path, '"$each" may only be an element of an array')
  if ('$if' in node) return compileIf(node, path, ctx, locals)
  const entries: [string, Build][] = []
  for (const [key, value] of Object.entries(node)) {
    if (key === '$comment') continue
    if (key.startsWith('$')) fail(ctx, childPath(path, key), 'is not a directive ($each, $if)')
    if (key === '__proto__') fail(ctx, childPath(path, key), 'is not allowed')
    entries.push([key, compileNode(value, childPath(path, key), ctx, locals)])
  }
  return (scope) => {
    const out: Record<string, unknown> = {}
    for (const [key, build] of entries) {
      const value = build(scope)
      if (value !== OMIT) out[key] = value
    }
    return out
  }
}

type Element = Build | { each: (scope: Scope, out: unknown[]) => void }

function compileArray(node: unknown[], path: string, ctx: CompileContext, locals: string[]) {
  const elements: Element[] = node.map((el, i) =>
    isRecord(el) && '$each' in el
      ? { each: compileEach(el, childPath(path, i), ctx, locals) }
      : compileNode(el, childPath(path, i), ctx, locals),
  )
  return (scope: Scope) => {
    const out: unknown[] = []
    for (const el of elements) {
      if (typeof el !== 'function') el.each(scope, out)
      else {
        const value = el(scope)
        if (value !== OMIT) out.push(value)
      }
    }
    return out
  }
}

function compileEach(
  node: Record<string, unknown>,
  path: string,
  ctx: CompileContext,
  locals: string[],
) {
  checkKeys(node, EACH_KEYS, path, ctx)
  const list = varPath(node.$each, childPath(path, '$each'), ctx, locals)
  const as = node.as
  if (typeof as !== 'string' || !IDENTIFIER.test(as)) {
    fail(ctx, childPath(path, 'as'), 'must name the item, e.g. "as": "line"')
  }
  if (!('do' in node)) fail(ctx, path, 'needs "do": the part to repeat')
  const body = compileNode(node.do, childPath(path, 'do'), ctx, [...locals, as])
  const expr = node.$each as string
  return (scope: Scope, out: unknown[]) => {
    const items = list(scope)
    if (items === undefined || items === null) return
    if (!Array.isArray(items)) fail(ctx, path, `"$each": "${expr}" is not an array`)
    for (const value of items) {
      const item = body({ vars: scope.vars, locals: { name: as, value, next: scope.locals } })
      if (item !== OMIT) out.push(item)
    }
  }
}

function compileIf(
  node: Record<string, unknown>,
  path: string,
  ctx: CompileContext,
  locals: string[],
): Build {
  checkKeys(node, IF_KEYS, path, ctx)
  const condition = varPath(node.$if, childPath(path, '$if'), ctx, locals)
  if (!('do' in node)) fail(ctx, path, 'needs "do": the part to show when the var is set')
  const then = compileNode(node.do, childPath(path, 'do'), ctx, locals)
  const otherwise =
    'else' in node ? compileNode(node.else, childPath(path, 'else'), ctx, locals) : () => OMIT
  return (scope) => (truthy(condition(scope)) ? then(scope) : otherwise(scope))
}

function placeholder(
  expr: string,
  path: string,
  ctx: CompileContext,
  locals: string[] | readonly string[],
): BuildString {
  const get = varPath(expr, path, ctx, locals, `{{${expr}}}`)
  return (scope) => {
    const value = get(scope)
    if (typeof value === 'string') return value
    if (typeof value === 'number' || typeof value === 'boolean') return String(value)
    const why = value === undefined || value === null ? 'has no value' : 'is not a string or number'
    return fail(ctx, path, `{{${expr}}} ${why}`)
  }
}

/** A variable path (`name`, `item.field`, `list.0.name`) resolved against a scope. */
function varPath(
  expr: unknown,
  path: string,
  ctx: CompileContext,
  locals: readonly string[],
  shown = JSON.stringify(expr),
): (scope: Scope) => unknown {
  if (typeof expr !== 'string' || !VAR_PATH.test(expr)) {
    fail(ctx, path, `${shown} is not a variable path (name or name.field)`)
  }
  const [root = '', ...rest] = expr.split('.')
  if (!locals.includes(root) && ctx.declared && !ctx.declared.has(root)) {
    fail(ctx, path, `${shown}: "${root}" is not declared in "variables"`)
  }
  return (scope) => {
    let local = scope.locals
    while (local && local.name !== root) local = local.next
    let value: unknown = local
      ? local.value
      : Object.hasOwn(scope.vars, root)
        ? scope.vars[root]
        : undefined
    for (const key of rest) {
      if (!isRecord(value) && !Array.isArray(value)) return undefined
      if (!Object.hasOwn(value, key)) return undefined
      value = (value as Record<string, unknown>)[key]
    }
    return value
  }
}

function truthy(value: unknown): boolean {
  return Array.isArray(value) ? value.length > 0 : Boolean(value)
}

function checkKeys(
  node: Record<string, unknown>,
  allowed: Set<string>,
  path: string,
  ctx: CompileContext,
) {
  for (const key of Object.keys(node)) {
    if (!allowed.has(key))
      fail(ctx, childPath(path, key), `is not allowed here (${[...allowed].join(', ')})`)
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function fail(ctx: CompileContext, path: string, message: string): never {
  throw new TemplateError(ctx.file, { path, message })
}
