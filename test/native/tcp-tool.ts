// A TCP sender/receiver that checks what arrived (iperf3 measures but does not verify content):
//   tcp-tool.ts server PORT          -> prints {"event":"listening"}, then {"event":"done","bytes":N,"sha256":H}
//   tcp-tool.ts client HOST PORT N   -> sends N pseudo-random bytes,
//                                       prints {"event":"sent","bytes":N,"sha256":H,"ms":T}
import { createHash } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);
const out = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e) + '\n');

if (mode === 'server') {
  const server = createServer((sock) => {
    const h = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d: Buffer) => {
      bytes += d.length;
      h.update(d);
    });
    sock.on('end', () => {
      out({ event: 'done', bytes, sha256: h.digest('hex') });
      sock.end();
      server.close();
    });
  });
  server.listen(Number(a), () => out({ event: 'listening' }));
} else if (mode === 'client') {
  const total = Number(c);
  const h = createHash('sha256');
  const chunk = Buffer.alloc(64 * 1024);
  let x = 0x12345678;
  const start = Date.now();
  const sock = connect(Number(b), a, () => {
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        for (let i = 0; i < n; i += 4) {
          x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
          chunk.writeUInt32LE(x, i);
        }
        const piece = chunk.subarray(0, n);
        h.update(piece);
        sent += n;
        if (!sock.write(Buffer.from(piece))) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
  sock.on('close', () => out({ event: 'sent', bytes: total, sha256: h.digest('hex'), ms: Date.now() - start }));
  sock.on('error', (e) => {
    out({ event: 'error', message: e.message });
    process.exitCode = 1;
  });
} else {
  process.stderr.write('usage: tcp-tool.ts server PORT | client HOST PORT BYTES\n');
  process.exitCode = 2;
}
