// PostgreSQL for the authority tests. Outside CI, a machine without PostgreSQL skips the
// PostgreSQL tests (with the reason); with CI=true, not being able to start PostgreSQL is an error.
import { startPostgres, type PgServer } from '../../../scripts/temp-postgres.js';

export { startPostgres, type PgServer };

/** Starts PostgreSQL for a test file: with CI=true failure to start throws; otherwise returns a skip reason. */
export async function postgresForTests(): Promise<{ server?: PgServer; skip?: string }> {
  const r = await startPostgres();
  if (r.ok) return { server: r.server };
  if (process.env.CI === 'true') throw new Error(`CI=true and PostgreSQL could not be started: ${r.reason}`);
  return { skip: `PostgreSQL tests skipped: ${r.reason}` };
}
