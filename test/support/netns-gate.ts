// Whether a namespace test runs here: it needs root, network namespaces and some commands. Outside CI
// a missing part skips the test with a clear message; in CI the test always runs, and fails on it.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { hasCommand, netnsAvailability } from '../../src/testbed/netns.js';

export interface NetnsGate {
  /** The test's `skip` option: why it cannot run here (outside CI), else false. */
  skip: string | false;
  /** First thing in the test: fails when namespaces or a command are missing (reached only in CI). */
  require(): void;
}

/** Whether this process may make namespaces: asked once (a probe namespace made and deleted), then remembered. */
let availability: ReturnType<typeof netnsAvailability> | undefined;

export function netnsGate(...commands: string[]): NetnsGate {
  const avail = (availability ??= netnsAvailability());
  const missing = avail.ok ? commands.find((c) => !hasCommand(c)) : undefined;
  const why = avail.ok ? (missing ? `${missing} is not installed` : undefined) : avail.reason;
  return {
    skip: why && !process.env.CI ? `skipped: ${why} (runs as root, and always in CI)` : false,
    require() {
      assert.ok(avail.ok, `network namespaces are required in CI: ${avail.ok ? '' : avail.reason}`);
      assert.ok(!missing, `${missing} is required in CI`);
    },
  };
}

/**
 * A test that runs in network namespaces (node:test's `test`), with the gate in front of it: `needs`
 * are the commands it runs besides `ip`; `skip` another reason it may be skipped outside CI.
 */
export function netnsTest(
  name: string,
  o: { timeout: number; needs?: string[]; skip?: string | false },
  body: (t: TestContext) => void | Promise<void>,
): void {
  const gate = netnsGate(...(o.needs ?? []));
  test(name, { skip: gate.skip || o.skip, timeout: o.timeout }, async (t) => {
    gate.require();
    await body(t);
  });
}
