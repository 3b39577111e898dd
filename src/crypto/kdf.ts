// Key derivation for group mode (kasane's own construction).
//
// The authority hands every member gateway of a group VPN the same 32-byte VPN key per epoch.
// AES-GCM must never see a (key, nonce) pair twice, and every member numbers its packets from 1,
// so members cannot share a sending key. Each sender therefore derives its own key and salt:
//
//   HKDF-SHA256 (RFC 5869)
//     IKM  = VPN key (32 bytes)
//     salt = ASCII "kasane/v1"
//     info = ASCII "esp sender" || u32be vpnId || u32be epoch || u8 len || UTF-8 sender
//            (len = byte length of sender, 1..63)
//     L    = 36 -> key = OKM[0..32), salt = OKM[32..36)     (RFC 4106 key || 4-byte salt)
//
// One key has one sender, and a sender never repeats a 64-bit sequence number (the ESP IV) under
// it, so nonces (salt || IV) never repeat under one key. Receivers derive the same key for each
// member they accept ESP from.
//
// Key search proofs use a separate key from the same VPN key, so that a proof can never be
// confused with anything the ESP key protects:
//
//   HKDF-SHA256(IKM = VPN key, salt = "kasane/v1",
//               info = ASCII "search auth" || u32be vpnId || u32be epoch, L = 32)
//
// Domain separation: the two info labels differ in their first byte, every field after a label
// has a fixed width except the sender, which is last and length-prefixed, so distinct inputs
// always give distinct info strings.

import { hkdfSync } from 'node:crypto';

const HKDF_SALT = Buffer.from('kasane/v1', 'ascii');
const SENDER_LABEL = Buffer.from('esp sender', 'ascii');
const SEARCH_LABEL = Buffer.from('search auth', 'ascii');

export const VPN_KEY_LENGTH = 32;
export const SENDER_MAX_BYTES = 63;

function checkVpnKey(vpnKey: Uint8Array): void {
  if (!(vpnKey instanceof Uint8Array) || vpnKey.length !== VPN_KEY_LENGTH) {
    throw new TypeError(`kdf: the VPN key must be ${VPN_KEY_LENGTH} bytes`);
  }
}

function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new TypeError(`kdf: ${name} must be an integer in 0..2^32-1, got ${v}`);
}

/** vpnId || epoch as two big-endian u32 after a label. */
function labelled(label: Buffer, vpnId: number, epoch: number, extra = 0): Buffer {
  const b = Buffer.alloc(label.length + 8 + extra);
  label.copy(b, 0);
  b.writeUInt32BE(vpnId, label.length);
  b.writeUInt32BE(epoch, label.length + 4);
  return b;
}

/** Sender ids are UTF-8 on the wire; a lone surrogate would be silently replaced and could alias another id. */
function senderBytes(sender: string): Buffer {
  if (typeof sender !== 'string' || /\p{Surrogate}/u.test(sender))
    throw new TypeError('kdf: sender must be a well-formed string');
  const b = Buffer.from(sender, 'utf8');
  if (b.length < 1 || b.length > SENDER_MAX_BYTES)
    throw new TypeError(`kdf: sender must be 1..${SENDER_MAX_BYTES} bytes of UTF-8`);
  return b;
}

/** The sending key and salt of `sender` in one VPN epoch (see the header for the construction). */
export function deriveSenderKey(
  vpnKey: Uint8Array,
  vpnId: number,
  epoch: number,
  sender: string,
): { key: Uint8Array; salt: Uint8Array } {
  checkVpnKey(vpnKey);
  checkU32('vpnId', vpnId);
  checkU32('epoch', epoch);
  const s = senderBytes(sender);
  const info = labelled(SENDER_LABEL, vpnId, epoch, 1 + s.length);
  info[SENDER_LABEL.length + 8] = s.length;
  s.copy(info, SENDER_LABEL.length + 9);
  const okm = new Uint8Array(hkdfSync('sha256', vpnKey, HKDF_SALT, info, 36));
  return { key: okm.slice(0, 32), salt: okm.slice(32, 36) };
}

/** The key-search proof key of one VPN epoch (see the header for the construction). */
export function deriveSearchKey(vpnKey: Uint8Array, vpnId: number, epoch: number): Uint8Array {
  checkVpnKey(vpnKey);
  checkU32('vpnId', vpnId);
  checkU32('epoch', epoch);
  return new Uint8Array(hkdfSync('sha256', vpnKey, HKDF_SALT, labelled(SEARCH_LABEL, vpnId, epoch), 32));
}
