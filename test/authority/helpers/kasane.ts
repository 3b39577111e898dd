// Runs the kasane CLI from source (for tests that need a separate process, e.g. kill -9).
import { main } from '../../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
