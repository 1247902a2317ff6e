import type { Job, Worker } from 'bullmq'
import type { JobData, JobName } from '../jobs.ts'
import type { Deps } from './deps.ts'

export type JobContext = { job: Job; worker: Worker; token?: string }

export type JobHandler<N extends JobName> = (
  deps: Deps,
  data: JobData<N>,
  ctx: JobContext,
) => Promise<void>

export type Processor<N extends JobName> = {
  run: JobHandler<N>
  /** Called once when the job will not be retried (permanent error or attempts used up). */
  onFinalFailure?: (deps: Deps, data: JobData<N>, error: Error) => Promise<void>
}

export type Processors = { [N in JobName]: Processor<N> }
