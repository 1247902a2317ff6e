// Loaded into a CLI process under test (cliClockOffset): its clock reads `KIZUNA_TEST_CLOCK_OFFSET_MS`
// off the machine's, as an app server's clock drifts off the database's. Only `new Date()` and
// `Date.now()` move; a date built from a value is that value.

import { fileURLToPath } from 'node:url'

const offset = Number(process.env.KIZUNA_TEST_CLOCK_OFFSET_MS ?? 0)
const RealDate = Date

class OffsetDate extends RealDate {
  constructor(...args: unknown[]) {
    super(...((args.length === 0 ? [RealDate.now() + offset] : args) as [number]))
  }
  static override now(): number {
    return RealDate.now() + offset
  }
}

if (offset !== 0) globalThis.Date = OffsetDate as DateConstructor

/** The environment for `cli()` that runs the command with its clock `ms` off the machine's. */
export function cliClockOffset(ms: number): Record<string, string> {
  const self = fileURLToPath(import.meta.url)
  return { NODE_OPTIONS: `--import=${self}`, KIZUNA_TEST_CLOCK_OFFSET_MS: String(ms) }
}
