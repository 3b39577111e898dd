/**
 * IKEv2 wire codec (RFC 7296), pure and sans-I/O. Decoders never throw on wire data: they return
 * a Result whose error names the notify to answer with (INVALID_SYNTAX,
 * UNSUPPORTED_CRITICAL_PAYLOAD, INVALID_MAJOR_VERSION), the payload and the offset. Encoders
 * throw a TypeError only on programmer error (a field out of range). Decoded Buffers are copies.
 *
 * Payloads, each decoded into a typed object and encoded back:
 *   SA (33)       proposals → transforms → attributes (TV and TLV); substructure markers checked
 *   KE (34)       DH group, key exchange data
 *   IDi/IDr (35/36) ID type, identification data
 *   CERT (37), CERTREQ (38)  encoding, data
 *   AUTH (39)     method, authentication data
 *   Nonce (40)    16..256 bytes
 *   N (41)        protocol ID, SPI, notify type, data
 *   D (42)        protocol ID, SPI size, SPIs
 *   V (43)        vendor ID
 *   TSi/TSr (44/45) IPv4/IPv6 address ranges (unknown selector types kept opaque)
 *   CP (47)       CFG type, attributes
 *   EAP (48)      opaque
 *   SK (46), SKF (53, RFC 7383)  last payload, kept as first-inner-type + opaque IV|ciphertext|ICV;
 *                 decodePayloadChain decodes the decrypted inner chain
 *   anything else kept opaque with its critical bit; critical ones are refused.
 * Limits: 64 KiB per message (MAX_MESSAGE_BYTES), 64 payloads per chain (MAX_PAYLOADS).
 * Also: UDP 4500 framing (non-ESP marker, ESP, NAT-keepalive) in framing.ts.
 */
export * from './constants.js';
export type { IkeDecodeError, IkeErrorCode, IkeResult } from './errors.js';
export * from './header.js';
export * from './ike-header.js';
export * from './sa.js';
export * from './ts.js';
export * from './notify.js';
export * from './payloads.js';
export * from './message.js';
export * from './framing.js';
