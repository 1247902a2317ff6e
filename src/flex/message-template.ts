import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { messagingApi } from '@line/bot-sdk'
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import Handlebars from 'handlebars'
import {
  flexTemplateIdSchema,
  type MessageCategory,
  type MessageVars,
  messageTemplateFileSchema,
} from './flex.schemas.ts'
import {
  type Build,
  type BuildString,
  compileFlexContainer,
  compileFlexString,
  scopeOf,
} from './flex-directives.ts'
import { checkFlexMessage, type LimitOptions } from './flex-limits.ts'
import { displayPath, TemplateError, type TemplateProblem } from './template-error.ts'

/** Message templates: the format is described in src/flex/README.md. */
export const flexTemplatesDir = fileURLToPath(new URL('../../flex-templates/', import.meta.url))

type EmailTemplate = (vars: MessageVars) => string

/** A template file, compiled once per process. */
export type MessageTemplate = {
  readonly id: string
  /** The template file, for messages: `flex-templates/<id>.json`. */
  readonly file: string
  readonly category: MessageCategory
  readonly description: string
  /** The JSON Schema of the variables, as written in the file. */
  readonly variables: Record<string, unknown>
  readonly validateVars: ValidateFunction
  readonly altText: BuildString
  readonly contents: Build
  readonly email: { subject: EmailTemplate; html: EmailTemplate; text: EmailTemplate }
}

export type RenderedMessage = {
  line: { type: 'flex'; altText: string; contents: messagingApi.FlexContainer }
  email: { subject: string; html: string; text: string }
}

export type RenderOptions = LimitOptions & {
  /** The templates folder (default flex-templates/). */
  dir?: string
}

// ajv-formats is CommonJS; its default export is the plugin function.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020
const ajv = addFormats(
  new Ajv2020({
    allErrors: true,
    strictTypes: false,
    strictRequired: false,
    allowUnionTypes: true,
  }),
)
/** Compiles a JSON Schema (draft 2020-12) as a template's `variables` are compiled. */
export const compileVarsSchema = (schema: Record<string, unknown>): ValidateFunction =>
  ajv.compile(schema)
// Templates are repository files; knownHelpersOnly keeps them to if/unless/each/with/lookup.
const handlebars = Handlebars.create()
const cache = new Map<string, MessageTemplate>()

/** Reads, checks and compiles `<dir>/<id>.json` (cached per process). */
export function loadMessageTemplate(id: string, dir = flexTemplatesDir): MessageTemplate {
  const key = `${dir}\0${id}`
  const cached = cache.get(key)
  if (cached) return cached
  const valid = flexTemplateIdSchema.safeParse(id)
  if (!valid.success) throw new Error(`template id "${id}": ${valid.error.issues[0]?.message}`)
  const template = compileTemplate(id, join(dir, `${id}.json`))
  cache.set(key, template)
  return template
}

/**
 * Renders a template's LINE and email versions. Throws `TemplateError` when the vars don't fit
 * the template's `variables` schema or the LINE message breaks LINE's limits.
 */
export function renderMessage(
  id: string,
  vars: Record<string, unknown>,
  opts: RenderOptions = {},
): RenderedMessage {
  const { message, problems } = renderMessageDraft(id, vars, opts)
  if (problems.length > 0) throw new TemplateError(loadMessageTemplate(id, opts.dir).file, problems)
  return message
}

/**
 * Renders without throwing on LINE limits: the problems are returned (previews show them).
 * Bad vars still throw, as nothing sensible can be rendered from them.
 */
export function renderMessageDraft(
  id: string,
  vars: Record<string, unknown>,
  opts: RenderOptions = {},
): { message: RenderedMessage; problems: TemplateProblem[] } {
  const t = validTemplate(id, vars, opts)
  const message = { line: buildLine(t, vars), email: buildEmail(t, vars) }
  return { message, problems: checkRenderedMessage(message, opts) }
}

/** Only the LINE version (a delivery going out on LINE): throws like `renderMessage`. */
export function renderLineMessage(
  id: string,
  vars: Record<string, unknown>,
  opts: RenderOptions = {},
): RenderedMessage['line'] {
  const t = validTemplate(id, vars, opts)
  const line = buildLine(t, vars)
  const problems = checkFlexMessage(line, opts)
  if (problems.length > 0) throw new TemplateError(t.file, problems)
  return line
}

/** Only the email version (a delivery going out by email): throws like `renderMessage`. */
export function renderEmailMessage(
  id: string,
  vars: Record<string, unknown>,
  opts: RenderOptions = {},
): RenderedMessage['email'] {
  const t = validTemplate(id, vars, opts)
  const email = buildEmail(t, vars)
  const problems = checkEmail(email)
  if (problems.length > 0) throw new TemplateError(t.file, problems)
  return email
}

function validTemplate(id: string, vars: Record<string, unknown>, opts: RenderOptions) {
  const t = loadMessageTemplate(id, opts.dir)
  if (!t.validateVars(vars)) throw new TemplateError(t.file, varProblems(t.validateVars.errors))
  return t
}

function buildLine(t: MessageTemplate, vars: Record<string, unknown>): RenderedMessage['line'] {
  const scope = scopeOf(vars)
  return {
    type: 'flex' as const,
    altText: t.altText(scope),
    contents: t.contents(scope) as messagingApi.FlexContainer,
  }
}

function buildEmail(t: MessageTemplate, vars: Record<string, unknown>): RenderedMessage['email'] {
  return {
    // No header injection: a subject is one line.
    subject: runEmail(t, 'email.subject', t.email.subject, vars)
      .replace(/[\p{Cc}\u2028\u2029]+/gu, ' ')
      .trim(),
    html: runEmail(t, 'email.html', t.email.html, vars),
    text: runEmail(t, 'email.text', t.email.text, vars),
  }
}

function checkEmail(email: RenderedMessage['email']): TemplateProblem[] {
  const problems: TemplateProblem[] = []
  for (const part of ['subject', 'html', 'text'] as const) {
    if (email[part].trim() === '') problems.push({ path: `email.${part}`, message: 'is empty' })
  }
  return problems
}

/** LINE limits on the Flex message, plus an email that has a subject and a body. */
export function checkRenderedMessage(
  message: RenderedMessage,
  opts: LimitOptions = {},
): TemplateProblem[] {
  return [...checkFlexMessage(message.line, opts), ...checkEmail(message.email)]
}

function compileTemplate(id: string, path: string): MessageTemplate {
  const file = displayPath(path)
  let raw: unknown
  try {
    raw = readJsonFile(path)
  } catch (error) {
    throw new TemplateError(file, { path: '', message: errorText(error) }, { cause: error })
  }
  const parsed = messageTemplateFileSchema.safeParse(raw)
  if (!parsed.success) {
    throw new TemplateError(
      file,
      parsed.error.issues.map((issue) => ({ path: zodPath(issue.path), message: issue.message })),
    )
  }
  const { description, category, variables, line, email } = parsed.data
  let validateVars: ValidateFunction
  try {
    validateVars = ajv.compile(variables)
  } catch (error) {
    throw new TemplateError(file, { path: 'variables', message: errorText(error) })
  }
  const ctx = { file, declared: new Set(Object.keys(variables.properties ?? {})) }
  return {
    id,
    file,
    category,
    description,
    variables,
    validateVars,
    altText: compileFlexString(line.altText, 'line.altText', ctx),
    contents: compileFlexContainer(line.contents, 'line.contents', ctx),
    email: {
      subject: compileEmail(file, 'email.subject', email.subject, true),
      html: compileEmail(file, 'email.html', email.html, false),
      text: compileEmail(file, 'email.text', email.text, true),
    },
  }
}

/** A JSON file as an editor saved it: a leading byte-order mark (Windows editors) is dropped. */
export function readJsonFile(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, ''))
}

/**
 * Handlebars: HTML-escaping (attribute-safe) for html, where `{{{x}}}` and `{{&x}}` (which write
 * a value unescaped: markup from a product name) are refused; none for text and subject.
 */
function compileEmail(file: string, path: string, source: string | string[], noEscape: boolean) {
  const text = Array.isArray(source) ? source.join('\n') : source
  let ast: hbs.AST.Program
  try {
    ast = handlebars.parse(text)
  } catch (error) {
    throw new TemplateError(file, { path, message: errorText(error) })
  }
  if (!noEscape) {
    const lines = text.split('\n')
    const problems = unescapedIn(ast).map(({ loc, path: value }) => {
      const written =
        loc.start.line === loc.end.line
          ? lines[loc.start.line - 1]?.slice(loc.start.column, loc.end.column)
          : undefined
      const name = 'original' in value ? String(value.original) : 'a value'
      return {
        path,
        message: `line ${loc.start.line}: ${written ?? `{{{${name}}}}`} writes ${name} unescaped: write {{${name}}}, which HTML-escapes it`,
      }
    })
    if (problems.length > 0) throw new TemplateError(file, problems)
  }
  return handlebars.compile<MessageVars>(text, { strict: true, knownHelpersOnly: true, noEscape })
}

/** The `{{{x}}}` and `{{&x}}` of a parsed template, blocks' and else branches' included. */
function unescapedIn(node: hbs.AST.Node | undefined): hbs.AST.MustacheStatement[] {
  if (!node) return []
  if (node.type === 'MustacheStatement') {
    const mustache = node as hbs.AST.MustacheStatement
    return mustache.escaped ? [] : [mustache]
  }
  const parent = node as Partial<hbs.AST.Program & hbs.AST.BlockStatement>
  return [
    ...(parent.body ?? []).flatMap((child) => unescapedIn(child)),
    ...unescapedIn(parent.program),
    ...unescapedIn(parent.inverse),
  ]
}

function runEmail(t: MessageTemplate, path: string, fn: EmailTemplate, vars: MessageVars): string {
  try {
    return fn(vars)
  } catch (error) {
    throw new TemplateError(t.file, { path, message: errorText(error) }, { cause: error })
  }
}

/** ajv errors → `vars/lines/0/quantity must be integer`. */
function varProblems(errors: ErrorObject[] | null | undefined): TemplateProblem[] {
  return (errors ?? []).map((e) => {
    const p = e.params as { missingProperty?: string; additionalProperty?: string }
    if (e.keyword === 'required') {
      return { path: `vars${e.instancePath}/${p.missingProperty}`, message: 'is required' }
    }
    if (e.keyword === 'additionalProperties') {
      return { path: `vars${e.instancePath}/${p.additionalProperty}`, message: 'is not allowed' }
    }
    return { path: `vars${e.instancePath}`, message: e.message ?? 'is invalid' }
  })
}

function zodPath(path: PropertyKey[]): string {
  return path
    .map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`))
    .join('')
    .replace(/^\./, '')
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

export type { MessageVars } from './flex.schemas.ts'
export { TemplateError, type TemplateProblem } from './template-error.ts'
