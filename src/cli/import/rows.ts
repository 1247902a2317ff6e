import type { z } from 'zod'
import { describeZodError } from '../../platform/http.ts'
import { reportBadRow } from './progress.ts'
import type { SourceRecord } from './read-records.ts'

/** Validates one record; reports it by line and field and returns undefined when it is bad. */
export function parseRow<T extends z.ZodType>(
  schema: T,
  item: SourceRecord,
): z.infer<T> | undefined {
  if (item.error !== undefined) {
    reportBadRow(item.line, item.error)
    return undefined
  }
  const parsed = schema.safeParse(item.record)
  if (parsed.success) return parsed.data
  reportBadRow(item.line, describeZodError(parsed.error).message.replaceAll('(body)', '(row)'))
  return undefined
}
