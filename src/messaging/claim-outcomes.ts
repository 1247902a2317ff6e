import type { Deps } from '../platform/deps.ts'
import type { Claim } from './delivery-claim.repo.ts'
import { type DeliveryOutcome, recordOutcomes } from './delivery-outcomes.repo.ts'

/**
 * The outcomes of one job's claim, written only on rows the claim still holds: a job that outlived
 * the lease (LINE calls have no time limit) finds rows another job claimed since, and leaves them
 * to it, neither written nor queued again. An email's outcome is written as soon as it is decided
 * (`settle`), so a worker stopping later in the job leaves it recorded, and the rows taken over
 * after the lease are only those it had not settled; the others are written together at the end
 * (`recordRest`, one statement). Rows found claimed again before their LINE call or email are
 * `takenOver`: not sent, no outcome.
 */
export class ClaimOutcomes {
  readonly claim: Claim
  private readonly deps: Pick<Deps, 'db' | 'log'>
  /** How long the job's next try may take to come (see recordOutcomes). */
  private readonly retryWithinMs: number
  /** Written by `settle`. */
  private readonly settled = new Map<string, DeliveryOutcome>()
  /** Found claimed again by `settle`: another job's. */
  private readonly lost = new Set<string>()

  constructor(deps: Pick<Deps, 'db' | 'log'>, claim: Claim, retryWithinMs: number) {
    this.deps = deps
    this.claim = claim
    this.retryWithinMs = retryWithinMs
  }

  /** Writes one outcome now. A database error leaves it to `recordRest`. */
  async settle(outcome: DeliveryOutcome): Promise<void> {
    try {
      const written = await recordOutcomes(this.deps.db, [outcome], this.claim, this.retryWithinMs)
      if (written.has(outcome.id)) {
        this.settled.set(outcome.id, outcome)
      } else {
        this.lost.add(outcome.id)
        this.warnTakenOver(1)
      }
    } catch (err) {
      this.deps.log.warn({ err, deliveryId: outcome.id }, 'could not record the email yet')
    }
  }

  /**
   * Writes the outcomes not settled yet, in one statement. Returns this claim's outcomes: those
   * settled before and those written now; the others' rows were claimed again since.
   */
  async recordRest(outcomes: DeliveryOutcome[]): Promise<DeliveryOutcome[]> {
    const rest = outcomes.filter((o) => !this.settled.has(o.id) && !this.lost.has(o.id))
    const written = await recordOutcomes(this.deps.db, rest, this.claim, this.retryWithinMs)
    if (written.size < rest.length) this.warnTakenOver(rest.length - written.size)
    return outcomes.filter((o) => this.settled.has(o.id) || written.has(o.id))
  }

  /**
   * Rows the job found claimed again before it went to LINE or the SMTP server for them (see
   * line-claim.repo.ts, email-claim.repo.ts): another job's, left to it, with no outcome from
   * this one.
   */
  takenOver(ids: string[]): void {
    if (ids.length === 0) return
    for (const id of ids) this.lost.add(id)
    this.deps.log.warn(
      { deliveries: ids.length },
      'not sent: another job claimed the deliveries after the sending lease',
    )
  }

  private warnTakenOver(deliveries: number): void {
    this.deps.log.warn(
      { deliveries },
      'outcomes not recorded: another job claimed the deliveries after the sending lease',
    )
  }

  /**
   * The claim's rows but those handed back unsent so far (`notStarted`: another job sends them):
   * what a try that stopped with an error leaves for its retry.
   */
  notHandedBack(): Claim {
    const handedBack = (o: DeliveryOutcome | undefined) => o?.status === 'pending' && o.notStarted
    return new Map([...this.claim].filter(([id]) => !handedBack(this.settled.get(id))))
  }
}
