// The option list form IPv4 (RFC 791 §3.1) and TCP (RFC 9293 §3.1) share: kind 0 ends the list, kind 1
// is one byte of padding (NOP), any other kind is followed by one byte giving the option's whole length.

const OPT_END = 0;
const OPT_NOP = 1;

/**
 * The options of p[from, end), padding skipped: each as [offset of its kind byte, its length]. Stops at the end
 * of the list, at `end`, or at an option too short or running past `end`; never reads outside p[from, end).
 */
export function* eachOption(p: Uint8Array, from: number, end: number): Generator<[at: number, length: number]> {
  for (let i = from; i < end;) {
    if (p[i] === OPT_END) return;
    if (p[i] === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return;
    const length = p[i + 1];
    if (length < 2 || i + length > end) return;
    yield [i, length];
    i += length;
  }
}
