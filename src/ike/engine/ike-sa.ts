// One IKE SA: who we are in it, what IKE_SA_INIT negotiated, its keys, its Child SAs, the request
// it has in flight (one at a time: window size 1, RFC 7296 §2.3) and the protection of every later
// message (the SK payload, §3.14, with AES-GCM per RFC 5282; SKF fragments per RFC 7383).
import { err, ok, type WireError } from '../../base/result.js';
import type { Prefix } from '../../base/addr.js';
import {
  decodePayloadChain,
  encodeEncryptedPrefix,
  encodeMessage,
  encodePayloadChain,
  type DecodedMessage,
  type IkeDecodeError,
  type IkeHeader,
  type Payload,
} from '../message/index.js';
import { skBodyLength, skOpen, skSeal, SkIvCounter } from '../crypto/aead.js';
import { ikeSkKeys, type AeadKey, type IkeSaKeys } from '../crypto/keys.js';
import type { DhKeyPair } from '../crypto/dh.js';
import type { AeadAlgorithm, IkeSuite } from '../crypto/transforms.js';
import { maxMessageBytes, Reassembler, ReassemblyPool, sealFragments } from './fragments.js';
import type { Endpoint, IkeOutput, IkePeer } from './types.js';

/**
 * A received protected message opened: its inner payloads (undefined while fragments are
 * missing), or why not. `malformed` is set when the message authenticated but its inner payloads
 * do not decode: the peer is owed an answer (INVALID_SYNTAX or UNSUPPORTED_CRITICAL_PAYLOAD).
 */
export type Unprotected =
  { ok: true; value: Payload[] | undefined } | { ok: false; error: WireError; malformed?: IkeDecodeError };

export type IkeSaState = 'init-sent' | 'init-done' | 'auth-sent' | 'established' | 'deleting' | 'dead';

/** One ESP Child SA of an IKE SA (tunnel mode, ESP in UDP). */
export interface ChildSa {
  /** The SPI the peer sends with (our inbound), and the one we send with. */
  inboundSpi: number;
  outboundSpi: number;
  inboundKey: AeadKey;
  outboundKey: AeadKey;
  encr: AeadAlgorithm;
  localPrefixes: Prefix[];
  remotePrefixes: Prefix[];
  createdAt: number;
  /** When this side starts rekeying it, and when it must be gone (hard lifetime). */
  rekeyAt: number;
  expiresAt: number;
  state: 'installed' | 'rekeying' | 'rekeyed';
}

/**
 * One exchange this side starts, as the exchange layer (exchange.ts) runs it: strongSwan's task
 * shape for the initiator's role. `build` makes the request's inner payloads when its turn comes
 * (window 1); `process` takes the answer's. The responder's role of each task is its `answer*`
 * function (tasks/*.ts), which processes the request and returns the response.
 */
export interface ExchangeTask {
  /** The task's name, for logs and for finding it in the queue (`ike-rekey`, `liveness`, ...). */
  task: string;
  exchange: number;
  build: (now: number) => Payload[];
  process: (inner: Payload[], now: number, out: IkeOutput) => void;
}

/** The request this SA sent and waits an answer for. */
export interface InFlight extends ExchangeTask {
  messageId: number;
  packets: Buffer[];
  localPort: number;
  sentAt: number;
  tries: number;
  nextAt: number;
}

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
  /** A cookie the responder asked for (§2.6): the initiator repeats IKE_SA_INIT with it. */
  cookie?: Buffer;
  /** The initiator's peer is known from the start; the responder's from IKE_AUTH. */
  peer?: IkePeer;
  /** Our inbound ESP SPI for the first Child SA, while IKE_AUTH runs. */
  childSpi?: number;
  readonly children: ChildSa[] = [];
  /** NAT detection's finding in IKE_SA_INIT (undefined: the peer sent no NAT_DETECTION payloads). */
  nat?: { local: boolean; remote: boolean };
  /** The peer announced RFC 7383 support in IKE_SA_INIT. */
  peerFragmentation = false;
  /** Next message id we send a request with, and the one we expect from the peer. */
  nextRequestId = 0;
  expectRequestId = 0;
  /** The last response we sent, for a retransmitted request (RFC 7296 §2.1). */
  lastResponse?: { messageId: number; packets: Buffer[]; localPort: number };
  inFlight?: InFlight;
  readonly queue: ExchangeTask[] = [];
  /** When the peer last sent us anything that authenticated (liveness). */
  lastHeardAt: number;
  establishedAt?: number;
  /** IKE SA rekey time (CREATE_CHILD_SA, §1.3.2). */
  rekeyAt = Infinity;
  /** A replacement SA was started because the permits near their end (reauthentication). */
  reauthStarted = false;
  /** When the first of the two permits (the peer's, and ours) expires: the SA does not outlive it. */
  permitNotAfter = Infinity;
  /** Local port our messages leave from: 500 for IKE_SA_INIT, 4500 afterwards (§2.23). */
  localPort: number;
  private sk?: { seal: AeadKey; open: AeadKey };
  private readonly iv = new SkIvCounter(1n);
  private readonly fragments: Reassembler;

  constructor(
    readonly role: 'initiator' | 'responder',
    readonly spiI: Buffer,
    /** Where the peer is; follows the source of authenticated messages (NAT, port floating). */
    public remote: Endpoint,
    /** When this SA (or, after IKE rekeys, its first predecessor) began. */
    public createdAt: number,
    localPort: number,
    /** Where the bytes of incomplete fragmented messages are counted (the engine's, bounded in total). */
    readonly pool: ReassemblyPool = new ReassemblyPool(),
  ) {
    this.fragments = new Reassembler(pool);
    this.state = role === 'initiator' ? 'init-sent' : 'init-done';
    this.lastHeardAt = createdAt;
    this.localPort = localPort;
  }

  get key(): string {
    return IkeSa.keyOf(this.spiI, this.remote);
  }

  /** SAs are found by the initiator's SPI and the peer's address (responder SPIs come later). */
  static keyOf(spiI: Buffer, remote: Endpoint): string {
    return `${spiI.toString('hex')}@${remote.address}`;
  }

  /** An authenticated message came from the peer: it is alive, and (NAT rebinding, §2.23) this is where it is now. */
  heard(from: Endpoint, now: number): void {
    this.lastHeardAt = now;
    if (from.address === this.remote.address) this.remote = { address: from.address, port: from.port };
  }

  get hasKeys(): boolean {
    return this.sk !== undefined;
  }

  setKeys(keys: IkeSaKeys): void {
    this.keys = keys;
    this.sk = ikeSkKeys(this.suite!.encr, keys, this.role);
  }

  header(exchangeType: number, response: boolean, messageId: number): IkeHeader {
    return {
      spiI: this.spiI,
      spiR: this.spiR,
      exchangeType,
      initiator: this.role === 'initiator',
      response,
      higherVersion: false,
      messageId,
    };
  }

  /**
   * An encrypted message: inner payloads in one SK payload, or in SKF fragments when the peer
   * supports them and the message would not fit `fragmentSize` (whole IP packet, as strongSwan counts).
   */
  protect(exchangeType: number, response: boolean, messageId: number, inner: Payload[], fragmentSize = 1280): Buffer[] {
    if (!this.sk) throw new Error('IKE SA has no keys yet');
    const chain = encodePayloadChain(inner);
    const header = this.header(exchangeType, response, messageId);
    const encrypted = { kind: 'SK' as const, firstPayload: chain.firstPayload };
    const bodyLength = skBodyLength(this.suite!.encr, chain.bytes.length);
    const max = maxMessageBytes(fragmentSize, this.remote.address.includes(':'), this.localPort !== 500);
    if (this.peerFragmentation && 28 + 4 + bodyLength > max) {
      return sealFragments(header, chain.firstPayload, chain.bytes, this.sk.seal, this.iv, max);
    }
    const ad = encodeEncryptedPrefix({ header, encrypted }, bodyLength);
    const body = skSeal(this.sk.seal, this.iv.next(), ad, chain.bytes);
    return [encodeMessage({ header, payloads: [], encrypted: { ...encrypted, body } })];
  }

  /**
   * The inner payloads of a received SK message, or of the SKF fragment that completes a message
   * (undefined while fragments are missing); an error when it does not authenticate.
   */
  unprotect(d: DecodedMessage, now: number): Unprotected {
    if (!this.sk) return err('ike-no-keys', 'no keys for this IKE SA yet');
    const e = d.message.encrypted;
    if (!e || !d.associatedData) return err('ike-not-encrypted', 'expected an SK payload');
    let chain: { firstPayload: number; inner: Buffer };
    if (e.kind === 'SKF') {
      const h = d.message.header;
      this.fragments.expire(now, 30_000);
      const r = this.fragments.add(`${h.response ? 'r' : 'q'}${h.messageId}`, e, d.associatedData, this.sk.open, now);
      if (!r.ok) return r;
      if (!r.value) return ok(undefined);
      chain = r.value;
    } else {
      const plain = skOpen(this.sk.open, d.associatedData, e.body);
      if (!plain.ok) return plain;
      chain = { firstPayload: e.firstPayload, inner: plain.value };
    }
    const inner = decodePayloadChain(chain.inner, chain.firstPayload);
    return inner.ok ? ok(inner.value) : { ...err(inner.error.code, inner.error.message), malformed: inner.error };
  }

  /** Drops incomplete fragmented messages (the SA is gone: their bytes go back to the pool). */
  discardFragments(): void {
    this.fragments.clear();
  }
}
