/** `npm run bench -- NAME`: runs one benchmark; its last stdout line is one JSON object. */
const benches: Record<string, () => Promise<unknown>> = {
  webhook: async () => (await import('./webhook.bench.ts')).run(),
  'pos-scan': async () => (await import('./pos-scan.bench.ts')).run(),
  import: async () => (await import('./import.bench.ts')).run(),
  delivery: async () => (await import('./delivery.bench.ts')).run(),
}

const name = process.argv[2]
const bench = name ? benches[name] : undefined
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}>`)
  process.exit(2)
}
await bench()
