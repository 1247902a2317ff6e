import { ConfigError, loadEnv, unsubscribeWarning } from '../config/env.ts'
import { accountProof, NO_ACCOUNT_PROOF_WARNING } from '../linking/link-proof.ts'
import { openMetricsWarning } from '../ops/metrics-access.ts'
import { keepCompiledCode } from '../platform/compile-cache.ts'
import { createLogger } from '../platform/logger.ts'
import type { Kizuna } from './runtime.ts'

// The runtime's modules, loaded below, start from the code compiled by the last start.
keepCompiledCode()

/** `npm start`: ROLE=all (default) | web | worker. */
async function main(): Promise<void> {
  let env: ReturnType<typeof loadEnv>
  try {
    env = loadEnv()
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message)
      process.exit(1)
    }
    throw error
  }
  const log = createLogger(env.LOG_LEVEL)

  // The signal handlers come first: start-up takes seconds (loading the modules, migrations),
  // and a signal then killed the process wherever it was. A signal during start-up stops it at
  // its next safe point (between steps: migrations are one transaction), closing what it opened.
  // A second signal (Ctrl-C again, a process manager losing patience) exits at once; both this
  // and the deadline say what the shutdown was still waiting for. What they cut short is left
  // pending for the sweeper, as after a crash.
  const startUp = new AbortController()
  let startingStep = 'loading Kizuna'
  let kizuna: Kizuna | null = null
  const waitsFor = () => kizuna?.stopWaitsFor() ?? `start-up (${startingStep})`
  let shuttingDown = false
  const stopped = () => {
    log.info('stopped')
    process.exit(0)
  }
  const shutdown = async (signal: string) => {
    if (shuttingDown) {
      log.error(`second ${signal}: exiting now, still waiting for ${waitsFor()}`)
      process.exit(1)
    }
    shuttingDown = true
    const force = setTimeout(() => {
      log.error(`shutdown took longer than 30 s, still waiting for ${waitsFor()}; exiting`)
      process.exit(1)
    }, 30_000)
    force.unref()
    if (!kizuna) {
      log.info({ signal }, 'shutting down: start-up stops at its next safe point')
      startUp.abort()
      return
    }
    log.info({ signal }, 'shutting down: finishing in-flight requests and jobs')
    await kizuna.stop()
    stopped()
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))

  // Loaded after the handlers are in place: most of start-up's first seconds.
  const { startKizuna, StartStopped } = await import('./runtime.ts')
  try {
    kizuna = await startKizuna(env, {
      log,
      defaultMetrics: true,
      signal: startUp.signal,
      onStep: (step) => {
        startingStep = step
      },
    })
  } catch (error) {
    if (error instanceof StartStopped) stopped()
    log.fatal({ err: error }, 'Kizuna could not start')
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  }
  // A signal after start-up's last safe point, before `kizuna` was set.
  if (startUp.signal.aborted) {
    await kizuna.stop()
    stopped()
  }
  // Stopped by itself, all closed (the LINE channel found to be another's after start-up): as a
  // refused start-up, exit 1 with the message.
  void kizuna.halted.then((error) => {
    if (shuttingDown) return
    log.fatal({ err: error }, 'Kizuna stopped')
    console.error(error.message)
    process.exit(1)
  })
  log.info(
    {
      role: env.ROLE,
      url: kizuna.baseUrl,
      database: env.DATABASE_URL ? 'postgres' : `embedded (${env.DATA_DIR})`,
      line: kizuna.sandbox ? 'sandbox' : env.LINE_API_BASE_URL,
    },
    'Kizuna started',
  )
  if (!kizuna.sandbox && !env.PUBLIC_BASE_URL) {
    // Links in LINE messages would name an address only this host reaches: account-link pages
    // that do not open, barcodes that do not load. (Email needs it: loadEnv refuses SMTP_URL
    // without it.)
    log.warn(
      'PUBLIC_BASE_URL is unset: links in LINE messages (account link, member-card barcodes) ' +
        'point to this host; set it to the https address shoppers reach',
    )
  }
  const plainHttpUnsubscribe = unsubscribeWarning(env)
  if (plainHttpUnsubscribe) log.warn(plainHttpUnsubscribe)
  const openMetrics = openMetricsWarning(env)
  if (openMetrics) log.warn(openMetrics)
  // A sandbox run has its mailbox, so only a run against LINE itself can have no way at all.
  if (!accountProof(kizuna.deps)) log.warn(NO_ACCOUNT_PROOF_WARNING)
  if (kizuna.sandbox) {
    console.log(`\nKizuna is running at ${kizuna.baseUrl}`)
    console.log('No LINE credentials are set, so it talks to the built-in LINE sandbox:')
    console.log(`  simulated LINE app:  ${kizuna.baseUrl}/sandbox`)
    // Without SMTP_URL, email (account-link codes, messages) lands in the sandbox mailbox.
    if (!env.SMTP_URL) console.log(`  sandbox mailbox:     ${kizuna.baseUrl}/sandbox/mail`)
    console.log(`  sandbox LINE API:    ${kizuna.sandbox.apiBaseUrl}\n`)
  }
}

await main()
