import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cli } from '../support/cli.ts'

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

/** A fresh DATA_DIR, removed after the file's tests. */
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kizuna-args-'))
  dirs.push(dir)
  return dir
}

/** Each case is a CLI process of its own: 1–2 s apiece on a quiet machine, 5 s on a busy one. */
const SPAWNS_MS = 120_000

/**
 * Runs each case with the embedded database in `dir`: each exits 1 naming the problem, and none
 * opened a database (the embedded one was never created).
 */
async function expectRefused(dir: string, cases: [string[], string][]): Promise<void> {
  for (const [args, message] of cases) {
    const result = await cli(args, { DATABASE_URL: '', DATA_DIR: dir })
    expect({ args, code: result.code }).toEqual({ args, code: 1 })
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain(message)
  }
  expect(existsSync(join(dir, 'pglite'))).toBe(false)
}

describe('kizuna with a bad argument', () => {
  it(
    'says which argument, exits 1, and opens no database (an embedded one is not created)',
    async () => {
      const dir = await dataDir()
      const cases: [string[], string][] = [
        [
          ['keys', 'revoke', 'zz'],
          'KEY: paste the whole key, or only the 8 hex characters after kz_',
        ],
        [['keys', 'create', '--scope', 'root'], '--scope: unknown scope root'],
        [
          ['keys', 'create', '--store', 'S001', '--scope', 'pos,admin'],
          '--scope: pos cannot go with admin in one key',
        ],
        [
          ['keys', 'create', '--scope', 'pos'],
          '--store: a key with scope pos must belong to a store',
        ],
        [['stores', 'add', '--code', ' ', '--name', 'X'], 'code'],
        [
          ['stores', 'add', '--code', 'S1', '--name', 'Shibuya\u0007'],
          'name: contains a control character (\\u0007)',
        ],
        [
          ['keys', 'create', '--scope', 'import', '--label', 'R1\u001b[31m'],
          '--label: contains a control character (\\u001b)',
        ],
        [
          ['keys', 'create', '--scope', 'import', '--label', 'x'.repeat(101)],
          '--label: at most 100 characters',
        ],
        [
          ['keys', 'create', '--scope', 'import', '--label', ' '],
          '--label: give a label, or leave --label out',
        ],
        [['customers', 'erase', 'not-a-uuid'], '<id>: not a uuid'],
        [['customers', 'tag', 'not-a-uuid', 'vip'], '<id>: not a uuid'],
        [['customers', 'untag', 'hanako@example.jp', 'vip'], '<id>: not a uuid\n'],
        [
          ['customers', 'tag', randomUUID(), 'vip', 'a;b'],
          '<tag>: "a;b" contains a comma or semicolon',
        ],
        [['customers', 'untag', randomUUID(), 'x'.repeat(51)], '<tag>: "xxxx'],
        [['customers', 'untag', randomUUID()], "missing required argument 'tag'"],
        [['customers', 'refresh-spend', '--since', 'yesterday'], '--since: not a date'],
        [['import', 'orders', join(dir, 'missing.csv')], 'FILE: cannot read'],
        [['import', 'customers', join(dir, 'members.xlsx')], 'FILE: use a .csv file'],
        [
          ['deliveries', 'retry', '--status', 'bogus'],
          '--status: must be one of quota_exceeded, failed (got bogus)',
        ],
        [['deliveries', 'retry', '--kind', ' '], '--kind: give a kind, e.g. post-purchase'],
      ]
      await expectRefused(dir, cases)
    },
    SPAWNS_MS,
  )
})

describe('kizuna customers find with a bad identity', () => {
  it(
    'names <identity> and the kinds, exits 1, and opens no database',
    async () => {
      const dir = await dataDir()
      const cases: [string[], string][] = [
        [
          ['customers', 'find', 'passport:123'],
          '<identity>: use kind:value with kind one of line, member_card, legacy_card, online_customer, email, phone',
        ],
        [['customers', 'find', '2912345678904'], '<identity>: use kind:value'],
        [
          ['customers', 'find', 'member_card:1234567890123'],
          '<identity>: member_card: not a valid',
        ],
        [['customers', 'find'], "missing required argument 'identity'"],
      ]
      await expectRefused(dir, cases)
    },
    SPAWNS_MS,
  )
})

describe('kizuna --help', () => {
  it(
    'lists every command and exits 0; an unknown command is named',
    async () => {
      const help = await cli(['--help'], { DATABASE_URL: '' })
      expect(help.stderr).toBe('')
      expect(help.code).toBe(0)
      for (const command of [
        'migrate',
        'stores',
        'keys',
        'customers',
        'import',
        'flex',
        'deliveries',
        'richmenu',
      ]) {
        expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'))
      }
      // Names every object inherits (constructor, toString, __proto__) are no commands.
      for (const name of ['frobnicate', 'constructor', 'toString', '__proto__']) {
        const unknown = await cli([name], { DATABASE_URL: '' })
        expect({ name, code: unknown.code }).toEqual({ name, code: 1 })
        expect(unknown.stderr).toContain(`unknown command '${name}'`)
        expect(unknown.stderr).not.toContain('TypeError')
      }
    },
    SPAWNS_MS,
  )
})
