// `kasane demo [scenario]`: the papers live on this machine, in network namespaces, with real
// authorities (embedded SQLite) and real gateway daemons; `--check` is the operators' self-test.
// Each authority's web console is opened on 127.0.0.1 for a browser on this machine.
import type { Command } from 'commander';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openConsole, serveRelay, type ConsoleListener } from '../../demo/console-relay.js';
import { demoPrerequisites } from '../../demo/figure2.js';
import { SCENARIOS, type RunningDemo, type Say } from '../../demo/scenarios.js';
import { certificateFingerprint } from '../../authority/client.js';
import { intArg } from './authority-common.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .argument('[scenario]', `which one: ${Object.keys(SCENARIOS).join(', ')}`, 'figure2')
    .description(
      'build a scenario of the papers in network namespaces on this machine, with real authorities (SQLite) and ' +
        'gateways, run traffic and print the key tables as the key search fills them; Ctrl-C tears it all down. ' +
        "Each authority's web console opens on https://127.0.0.1:PORT/ for a browser on this machine.",
    )
    .option(
      '--check',
      "self-test: run the scenario's traffic, print what happened against what must happen, tear down; exit 1 on any difference",
    )
    .option(
      '--ipv6',
      'the terminals talk over IPv6 (every link dual stack, the VPNs hold IPv6 prefixes too): the same matrix as over IPv4 (figure2, multistage); federation: the gateways on an IPv6 WAN, IKE over IPv6',
    )
    .option('--interval <seconds>', 'live mode: seconds between rounds of traffic', '3')
    .option(
      '--console-port <port>',
      "port on 127.0.0.1 for the (first) authority's console; the next authority gets the next port (default: any free port)",
      intArg(0, 65535),
    )
    .addHelpText(
      'after',
      '\nScenarios:\n' +
        Object.values(SCENARIOS)
          .map((s) => `  ${s.name.padEnd(11)} ${s.title}`)
          .join('\n') +
        '\n\nNeeds root, `ip` (iproute2) with network namespaces and veth links, `ping` (iputils-ping) and\n' +
        "/dev/net/tun; it checks them first and names what is missing. The only thing added to the host's\n" +
        'own network namespace is the console listener on 127.0.0.1, and everything the demo made is removed\n' +
        'when it ends, also after a failure.',
    )
    .action(
      async (
        name: string,
        o: { check?: boolean; ipv6?: boolean; interval: string; consolePort?: number },
        cmd: Command,
      ) => {
        const scenario = SCENARIOS[name];
        if (!scenario)
          cmd.error(`error: no scenario ${JSON.stringify(name)}; choose one of ${Object.keys(SCENARIOS).join(', ')}`);
        if (o.ipv6 && !scenario.ipv6) {
          const with6 = Object.values(SCENARIOS)
            .filter((s) => s.ipv6)
            .map((s) => s.name);
          cmd.error(`error: the ${scenario.name} demo has IPv4 terminals only; --ipv6 runs with ${with6.join(', ')}`);
        }
        const missing = demoPrerequisites();
        if (missing.length) throw new Error(`the demo cannot run on this host:\n  ${missing.join('\n  ')}`);
        const dir = mkdtempSync(join(tmpdir(), 'kasane-demo-'));
        const say: Say = (line) => void process.stdout.write(line + '\n');
        // How this process runs the CLI: the same way for the gateways, authorities and relays.
        const cli = [process.execPath, ...process.execArgv, process.argv[1]];
        let demo: RunningDemo | undefined;
        const consoles: ConsoleListener[] = [];
        let stopping = false;
        const cleanup = async () => {
          if (stopping) return;
          stopping = true;
          say('tearing down: consoles, gateways, authorities, namespaces');
          for (const c of consoles) await c.close().catch(() => undefined);
          await demo?.teardown();
          rmSync(dir, { recursive: true, force: true });
        };
        const onSignal = () => {
          void cleanup().then(() => process.exit(130));
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          say(`${scenario.name}${o.ipv6 ? ' over IPv6' : ''}: ${scenario.title}`);
          demo = await scenario.build({ dir, cli, log: (l) => say(`* ${l}`), ipv6: o.ipv6 });
          for (const [i, a] of demo.authorities.entries()) {
            const c = await openConsole({
              tb: demo.tb,
              ns: a.ns,
              target: { host: a.host, port: a.port },
              socket: join(dir, `console-${i}.sock`),
              cli,
              port: o.consolePort ? o.consolePort + i : 0,
            });
            consoles.push(c);
            const token = readFileSync(join(a.data, 'admin.token'), 'utf8').trim();
            const fp = certificateFingerprint(readFileSync(join(a.data, 'certs', 'root-ca.pem'), 'utf8'));
            say(`* console of ${a.name}: ${c.url}`);
            say(`    sign in with its administrator token: ${token}`);
            say(
              `    (its TLS certificate is from the demo's own CA ${join(a.data, 'certs', 'root-ca.pem')}, SHA-256 ${fp}: accept it in the browser)`,
            );
          }
          if (o.check) {
            let ok = await demo.check(say);
            for (const [i, c] of consoles.entries())
              ok = (await checkConsole(c, demo.authorities[i].name, demo.authorities[i].data, say)) && ok;
            const what = `${scenario.name}${o.ipv6 ? ' over IPv6' : ''}`;
            say(
              ok
                ? `\ncheck passed: ${what} behaves as the paper says`
                : `\ncheck FAILED: ${what} differs (see DIFFERENT above)`,
            );
            process.exitCode = ok ? 0 : 1;
            return;
          }
          say(`\nlive: a round of traffic every ${o.interval} s; the key tables follow. Ctrl-C to stop.`);
          for (let round = 0; !stopping; round++) {
            await demo.live(round, say);
            await new Promise((r) => setTimeout(r, Number(o.interval) * 1000));
          }
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          await cleanup();
        }
      },
    );

  // The relay inside an authority's namespace (see src/demo/console-relay.ts): not for people.
  program
    .command('demo-relay', { hidden: true })
    .requiredOption('--socket <path>', 'unix socket to accept on')
    .requiredOption('--to <host:port>', 'where to connect each connection')
    .action(async (o: { socket: string; to: string }) => {
      const m = /^(.+):(\d+)$/.exec(o.to);
      if (!m) throw new Error(`--to ${o.to}: expected HOST:PORT`);
      const server = await serveRelay(o.socket, m[1], Number(m[2]));
      await new Promise<void>((resolve) => {
        const stop = () => server.close(() => resolve());
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}

/** The console answers through the local listener: the page (with its CSP) and the API. */
async function checkConsole(c: ConsoleListener, authority: string, data: string, say: Say): Promise<boolean> {
  const ca = readFileSync(join(data, 'certs', 'root-ca.pem'), 'utf8');
  const get = (path: string) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = https.get(new URL(path, c.url), { ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', reject);
    });
  try {
    const page = await get('/');
    const health = await get('/v1/health');
    const ok =
      page.status === 200 &&
      page.body.includes('id="app"') &&
      String(page.headers['content-security-policy'] ?? '').includes("script-src 'self'") &&
      health.status === 200 &&
      (JSON.parse(health.body) as { authority?: string }).authority === authority;
    say(
      `  console of ${authority} answers at ${c.url}`.padEnd(67) +
        ` ${ok ? 'yes' : 'no '} [yes]${ok ? '' : '  DIFFERENT'}`,
    );
    return ok;
  } catch (e) {
    say(`  console of ${authority} at ${c.url}: ${(e as Error).message}  DIFFERENT`);
    return false;
  }
}
