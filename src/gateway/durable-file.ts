// A small state file that must be on disk before the gateway acts on it (sequence reservations,
// the receive journal): written to a temporary file, fsynced, then renamed over the old one, so a
// crash leaves either the old or the new content, never a torn one.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

export function writeFileDurably(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
