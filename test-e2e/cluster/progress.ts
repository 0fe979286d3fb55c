// Terminal progress for slow steps: what is happening, and for how long it has been.

export function formatDuration(ms: number): string {
  const totalSeconds = Math.round(ms / 1000);
  if (totalSeconds < 60) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = totalSeconds % 60;
  return `${minutes}m${String(seconds).padStart(2, "0")}s`;
}

export function say(message: string): void {
  process.stderr.write(`[cluster] ${message}\n`);
}

/**
 * Runs a slow step, printing its start, a heartbeat with the elapsed time while it runs
 * (so a cold build never looks hung), and its duration when done.
 */
export async function timed<T>(
  label: string,
  work: () => Promise<T>,
  heartbeatMs = 30_000,
): Promise<T> {
  const started = Date.now();
  say(`${label} ...`);
  const heartbeat = setInterval(() => {
    say(`${label}: still working (${formatDuration(Date.now() - started)})`);
  }, heartbeatMs);
  try {
    const result = await work();
    say(`${label}: done in ${formatDuration(Date.now() - started)}`);
    return result;
  } finally {
    clearInterval(heartbeat);
  }
}
