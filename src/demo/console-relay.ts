// How a browser on this machine reaches the console of a demo's authority, which serves inside a
// network namespace: one TCP listener on 127.0.0.1 in the host's own namespace (the only thing the
// demo adds there), whose connections are relayed through a unix socket (unix sockets live in the
// filesystem, not in a network namespace) to a small relay process inside the authority's
// namespace, which connects to the authority. TLS runs end to end between the browser and the
// authority; the relays only move bytes. Everything closes with the demo.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Testbed } from '../testbed/netns.js';
import { stopProcess, waitFor } from '../testbed/sites.js';

export interface ConsoleListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Joins two sockets both ways; either side closing closes the other. */
function pipeBoth(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', end).on('close', end);
  b.on('error', end).on('close', end);
}

/**
 * The relay inside the authority's namespace (`kasane demo-relay`): accepts on the unix socket
 * `socket` (mode 0600) and connects each to `host:port`. Runs until killed.
 */
export async function serveRelay(socket: string, host: string, port: number): Promise<Server> {
  if (existsSync(socket)) unlinkSync(socket);
  const server = createServer((inbound) => {
    const outbound = createConnection({ host, port });
    pipeBoth(inbound, outbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  chmodSync(socket, 0o600);
  return server;
}

/**
 * Opens https://127.0.0.1:PORT/ for the authority listening on `target` inside namespace `ns`.
 * `port` 0 takes any free port.
 */
export async function openConsole(o: {
  tb: Testbed;
  ns: string;
  target: { host: string; port: number };
  socket: string;
  cli: string[];
  port?: number;
}): Promise<ConsoleListener> {
  const relay: ChildProcess = o.tb.spawn(o.ns, o.cli[0], [
    ...o.cli.slice(1),
    'demo-relay',
    '--socket',
    o.socket,
    '--to',
    `${o.target.host}:${o.target.port}`,
  ]);
  let relayErr = '';
  relay.stderr?.on('data', (b: Buffer) => (relayErr += b.toString()));
  const open = new Set<Socket>();
  try {
    await waitFor(() => existsSync(o.socket) || relay.exitCode !== null, 30_000, 'the console relay');
    if (relay.exitCode !== null) throw new Error(`the console relay exited: ${relayErr.trim()}`);
  } catch (e) {
    await stopProcess(relay);
    throw e;
  }
  const server = createServer((browser) => {
    open.add(browser);
    browser.on('close', () => open.delete(browser));
    pipeBoth(browser, createConnection(o.socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  }).catch(async (e: Error) => {
    await stopProcess(relay);
    throw new Error(`cannot listen on 127.0.0.1:${o.port ?? 0} for the console: ${e.message}`);
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    port,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await stopProcess(relay);
      if (existsSync(o.socket)) unlinkSync(o.socket);
    },
  };
}
