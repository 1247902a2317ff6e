import { type ChildProcess, spawn } from 'node:child_process'

/** A process a test starts, with its stdout and stderr read together as `output()`. */
export function spawnWithOutput(
  command: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd?: string },
): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d) => {
    output += String(d)
  })
  child.stderr?.on('data', (d) => {
    output += String(d)
  })
  return { child, output: () => output }
}
