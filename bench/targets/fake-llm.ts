/**
 * The fake model provider of test/fakes/llm.ts as its own process, so the upstream of the gateway
 * benchmark does not share an event loop with the load driver or the gateway under test. Listens on
 * 127.0.0.1 (PORT, default: a port the OS picks) and prints its origin on stdout once it listens.
 */
import { startFakeLlm } from '../../test/fakes/llm.ts'

const fake = await startFakeLlm({ port: Number(process.env.PORT || 0) })
// The fake records every request for tests; under benchmark load that list would only grow (and make the
// upstream slower as the heap does), so it is emptied every second.
setInterval(() => {
  fake.requests.length = 0
}, 1_000)
console.log(fake.url)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void fake.stop().then(() => process.exit(0))
  })
}
