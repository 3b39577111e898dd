// One IKE SA: who we are in it, what IKE_SA_INIT negotiated, its keys, and the protection of every
// later message (the SK payload, RFC 7296 §3.14, with AES-GCM per RFC 5282).
import { err, ok, type Result } from '../../core/result.js';
import {
  decodePayloadChain,
  encodeEncryptedPrefix,
  encodeMessage,
  encodePayloadChain,
  type DecodedMessage,
  type IkeHeader,
  type Payload,
} from '../message/index.js';
import { skBodyLength, skOpen, skSeal, SkIvCounter } from '../crypto/aead.js';
import { ikeSkKeys, type AeadKey, type IkeSaKeys } from '../crypto/keys.js';
import type { DhKeyPair } from '../crypto/dh.js';
import type { IkeSuite } from '../crypto/transforms.js';
import type { Endpoint, IkePeer } from './types.js';

export type IkeSaState = 'init-sent' | 'init-done' | 'auth-sent' | 'established' | 'dead';

export class IkeSa {
  spiR: Buffer = Buffer.alloc(8);
  state: IkeSaState;
  suite?: IkeSuite;
  dh?: DhKeyPair;
  ni?: Buffer;
  nr?: Buffer;
  keys?: IkeSaKeys;
  /** The IKE_SA_INIT request and response exactly as on the wire (both AUTHs sign one of them). */
  initRequest?: Buffer;
  initResponse?: Buffer;
  /** The initiator's peer is known from the start; the responder's from IKE_AUTH. */
  peer?: IkePeer;
  /** Our inbound ESP SPI for the first Child SA. */
  childSpi?: number;
  /** Next message id we send a request with, and the one we expect from the peer. */
  nextRequestId = 0;
  expectRequestId = 0;
  /** The last response we sent, for a retransmitted request (RFC 7296 §2.1). */
  lastResponse?: { messageId: number; bytes: Buffer };
  private sk?: { seal: AeadKey; open: AeadKey };
  private readonly iv = new SkIvCounter(1n);

  constructor(
    readonly role: 'initiator' | 'responder',
    readonly spiI: Buffer,
    readonly remote: Endpoint,
    readonly createdAt: number,
  ) {
    this.state = role === 'initiator' ? 'init-sent' : 'init-done';
  }

  get key(): string {
    return IkeSa.keyOf(this.spiI, this.remote);
  }

  /** SAs are found by the initiator's SPI and the peer's address (responder SPIs come later). */
  static keyOf(spiI: Buffer, remote: Endpoint): string {
    return `${spiI.toString('hex')}@${remote.address}`;
  }

  setKeys(keys: IkeSaKeys): void {
    this.keys = keys;
    this.sk = ikeSkKeys(this.suite!.encr, keys, this.role);
  }

  header(exchangeType: number, response: boolean, messageId: number): IkeHeader {
    return { spiI: this.spiI, spiR: this.spiR, exchangeType, initiator: this.role === 'initiator', response, higherVersion: false, messageId };
  }

  /** An encrypted message: inner payloads in one SK payload. */
  protect(exchangeType: number, response: boolean, messageId: number, inner: Payload[]): Buffer {
    if (!this.sk) throw new Error('IKE SA has no keys yet');
    const chain = encodePayloadChain(inner);
    const header = this.header(exchangeType, response, messageId);
    const encrypted = { kind: 'SK' as const, firstPayload: chain.firstPayload };
    const ad = encodeEncryptedPrefix({ header, encrypted }, skBodyLength(this.suite!.encr, chain.bytes.length));
    const body = skSeal(this.sk.seal, this.iv.next(), ad, chain.bytes);
    return encodeMessage({ header, payloads: [], encrypted: { ...encrypted, body } });
  }

  /** The inner payloads of a received SK message; an error when it does not authenticate. */
  unprotect(d: DecodedMessage): Result<Payload[]> {
    if (!this.sk) return err('ike-no-keys', 'no keys for this IKE SA yet');
    const e = d.message.encrypted;
    if (!e || e.kind !== 'SK' || !d.associatedData) return err('ike-not-encrypted', 'expected an SK payload');
    const plain = skOpen(this.sk.open, d.associatedData, e.body);
    if (!plain.ok) return plain;
    const inner = decodePayloadChain(plain.value, e.firstPayload);
    return inner.ok ? ok(inner.value) : err(inner.error.code, inner.error.message);
  }
}
