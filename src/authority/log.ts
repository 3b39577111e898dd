// Structured logs (pino, JSON lines) to stderr. KASANE_LOG_LEVEL overrides the level; tests run silent.
import pino, { type Logger } from 'pino';

export function createLogger(level?: string): Logger {
  const lvl = process.env.KASANE_LOG_LEVEL ?? level ?? 'info';
  return pino(
    { name: 'kasane-authority', level: lvl, base: { pid: process.pid } },
    pino.destination({ dest: 2, sync: true }),
  );
}
