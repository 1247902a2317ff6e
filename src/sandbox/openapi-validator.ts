import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { parse } from 'yaml'
import { addLineKeywords, addLineRules } from './openapi-line-rules.ts'
import { createSchemaConverter, dispatchName, isObject, type JsonSchema } from './openapi-schema.ts'

/** One problem in a request, shaped like LINE's `details[]` entries. */
export type ValidationDetail = { message: string; property: string }

export type HeaderParam = { name: string; required: boolean; schema: JsonSchema }

export type SpecOperation = {
  operationId: string
  method: string
  /** Path template as written in the spec, e.g. `/v2/bot/profile/{userId}`. */
  template: string
  /** Server URLs declared on the operation (api-data ops declare `https://api-data.line.me`). */
  servers: string[]
  /** JSON request body schema, when the operation takes `application/json`. */
  jsonBody: JsonSchema | undefined
  /** Header parameters by lowercased name. */
  headers: Map<string, HeaderParam>
}

export type OperationMatch = { op: SpecOperation; params: Record<string, string> }

export type OpenApiValidator = {
  operations: SpecOperation[]
  /** Header parameters declared by any operation (lowercased), e.g. `x-line-retry-key`. */
  knownHeaders: Set<string>
  findOperation(method: string, path: string): OperationMatch | undefined
  validateBody(op: SpecOperation, body: unknown): ValidationDetail[]
  validateHeader(param: HeaderParam, value: string): ValidationDetail[]
  /** Validates against a component schema by name (the dispatching variant for polymorphic bases). */
  validateSchema(name: string, data: unknown): ValidationDetail[]
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']
// ajv-formats is CommonJS; its default export is the plugin function.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv
const cache = new Map<string, OpenApiValidator>()

export const messagingApiSpecPath = fileURLToPath(
  new URL('./openapi/messaging-api.yml', import.meta.url),
)
export const webhookSpecPath = fileURLToPath(new URL('./openapi/webhook.yml', import.meta.url))

/** Loads (once per file) an OpenAPI 3.0 YAML file and builds a validator for it. */
export function loadOpenApiValidator(file: string): OpenApiValidator {
  let validator = cache.get(file)
  if (!validator) {
    validator = createOpenApiValidator(parse(readFileSync(file, 'utf8')), `urn:kizuna:${file}`)
    cache.set(file, validator)
  }
  return validator
}

export function createOpenApiValidator(doc: unknown, id = 'urn:kizuna:spec'): OpenApiValidator {
  if (!isObject(doc)) throw new Error('OpenAPI document must be an object')
  const schemas =
    isObject(doc.components) && isObject(doc.components.schemas) ? doc.components.schemas : {}
  const converter = createSchemaConverter(schemas, id)
  addLineRules(converter.defs)
  const ajv = new Ajv({
    allErrors: true,
    verbose: true,
    strictTypes: false,
    strictRequired: false,
    allowUnionTypes: true,
    inlineRefs: false,
  })
  addFormats(ajv)
  addLineKeywords(ajv)
  for (const format of collectFormats(doc)) if (!ajv.formats[format]) ajv.addFormat(format, true)
  ajv.addSchema({ $id: id, $defs: converter.defs })

  const operations = readOperations(doc, converter.convert)
  const knownHeaders = new Set(operations.flatMap((op) => [...op.headers.keys()]))
  const compiled = new WeakMap<object, ValidateFunction>()
  const byName = new Map<string, ValidateFunction>()
  const compile = (schema: JsonSchema): ValidateFunction => {
    let fn = compiled.get(schema)
    if (!fn) {
      fn = ajv.compile(schema)
      compiled.set(schema, fn)
    }
    return fn
  }
  const run = (fn: ValidateFunction, data: unknown): ValidationDetail[] =>
    fn(data) ? [] : toDetails(fn.errors ?? [], data)

  const matchers = operations
    .map((op) => ({ op, ...templateMatcher(op.template) }))
    .sort((a, b) => a.paramCount - b.paramCount)

  return {
    operations,
    knownHeaders,
    findOperation(method, path) {
      const m = method.toLowerCase()
      for (const { op, regex, names } of matchers) {
        if (op.method !== m) continue
        const found = regex.exec(path)
        if (!found) continue
        const params: Record<string, string> = {}
        names.forEach((name, i) => {
          params[name] = decodeURIComponent(found[i + 1] ?? '')
        })
        return { op, params }
      }
      return undefined
    },
    validateBody: (op, body) => (op.jsonBody ? run(compile(op.jsonBody), body) : []),
    validateHeader: (param, value) =>
      run(compile(param.schema), value).map((d) => ({ ...d, property: param.name })),
    validateSchema(name, data) {
      let fn = byName.get(name)
      if (!fn) {
        const target = converter.defs[dispatchName(name)] ? dispatchName(name) : name
        if (!converter.defs[target]) throw new Error(`unknown schema ${name}`)
        fn = ajv.compile({ $ref: `${id}#/$defs/${target}` })
        byName.set(name, fn)
      }
      return run(fn, data)
    },
  }
}

function readOperations(doc: Record<string, unknown>, convert: (s: unknown) => JsonSchema) {
  const operations: SpecOperation[] = []
  const paths = isObject(doc.paths) ? doc.paths : {}
  for (const [template, item] of Object.entries(paths)) {
    if (!isObject(item)) continue
    const shared = Array.isArray(item.parameters) ? item.parameters : []
    for (const method of METHODS) {
      const op = item[method]
      if (!isObject(op)) continue
      const headers = new Map<string, HeaderParam>()
      for (const p of [...shared, ...(Array.isArray(op.parameters) ? op.parameters : [])]) {
        if (!isObject(p) || p.in !== 'header' || typeof p.name !== 'string') continue
        const schema = convert(isObject(p.schema) ? p.schema : {})
        headers.set(p.name.toLowerCase(), { name: p.name, required: p.required === true, schema })
      }
      const content = isObject(op.requestBody) ? op.requestBody.content : undefined
      const json = isObject(content) ? content['application/json'] : undefined
      operations.push({
        operationId: String(op.operationId ?? `${method} ${template}`),
        method,
        template,
        servers: (Array.isArray(op.servers) ? op.servers : [])
          .map((s) => (isObject(s) ? String(s.url) : ''))
          .filter(Boolean),
        jsonBody: isObject(json) && json.schema ? convert(json.schema) : undefined,
        headers,
      })
    }
  }
  return operations
}

function templateMatcher(template: string) {
  const names: string[] = []
  const source = template
    .split('/')
    .map((segment) => {
      const param = /^\{(.+)\}$/.exec(segment)
      if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      names.push(param[1] ?? '')
      return '([^/]+)'
    })
    .join('/')
  return { regex: new RegExp(`^${source}$`), names, paramCount: names.length }
}

function collectFormats(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const v of node) collectFormats(v, out)
  else if (isObject(node)) {
    if (typeof node.format === 'string') out.add(node.format)
    for (const v of Object.values(node)) collectFormats(v, out)
  }
  return out
}

function toDetails(errors: ErrorObject[], data: unknown): ValidationDetail[] {
  const details: ValidationDetail[] = []
  const seen = new Set<string>()
  for (const error of errors) {
    // `if` errors only say "the matching `then` failed"; the `then` errors carry the detail.
    if (error.keyword === 'if') continue
    let pointer = error.instancePath
    if (error.keyword === 'required') pointer += `/${escapePointer(error.params.missingProperty)}`
    const detail = { message: describe(error), property: toLinePath(pointer, data) }
    const key = `${detail.property}\u0000${detail.message}`
    if (seen.has(key)) continue
    seen.add(key)
    details.push(detail)
  }
  return details
}

function describe(error: ErrorObject): string {
  const parent = (error.parentSchema ?? {}) as Record<string, unknown>
  const range = (min: unknown, max: unknown, noun: string) =>
    typeof max === 'number'
      ? `${noun} must be between ${typeof min === 'number' ? min : 0} and ${max}`
      : `${noun} must be at least ${min}`
  switch (error.keyword) {
    case 'required':
      return 'must be specified'
    case 'minItems':
    case 'maxItems':
      return range(parent.minItems, parent.maxItems, 'Size')
    case 'minLength':
    case 'maxLength':
      return range(parent.minLength, parent.maxLength ?? parent.maxGraphemes, 'Length')
    case 'maxGraphemes':
      return range(parent.minLength, parent.maxGraphemes, 'Length')
    case 'nonEmptyText':
      return 'must be non-empty text'
    case 'enum':
      return `must be one of the following values: [${(error.params.allowedValues as unknown[]).join(', ')}]`
    case 'format':
      return `must be a valid ${error.params.format}`
    case 'pattern':
      return `must match ${String(error.params.pattern)}`
    case 'not':
      return 'is not allowed here'
    case 'maxJsonBytes':
      return `must be at most ${String(error.schema)} bytes of JSON`
    case 'sameBubbleSize':
      return 'every bubble must have the same size'
    default:
      return error.message ?? 'is invalid'
  }
}

/** JSON pointer → LINE's property path: `/messages/0/text` → `messages[0].text`. */
export function toLinePath(pointer: string, data: unknown): string {
  let path = ''
  let node: unknown = data
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(node)) {
      path += `[${segment}]`
      node = node[Number(segment)]
    } else {
      path += path ? `.${segment}` : segment
      node = isObject(node) ? node[segment] : undefined
    }
  }
  return path
}

function escapePointer(value: unknown): string {
  return String(value).replace(/~/g, '~0').replace(/\//g, '~1')
}
