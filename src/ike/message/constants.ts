// IKEv2 registry values (RFC 7296 and the extensions we speak), named as in the IANA registries.
// Plain `as const` objects rather than enums: the values go straight onto the wire and
// unknown values from the wire stay ordinary numbers.

export const IKE_VERSION_MAJOR = 2;
export const IKE_HEADER_BYTES = 28;
export const IKE_SPI_BYTES = 8;
/** Upper bound on any IKE message we decode or encode (UDP cannot carry more). */
export const MAX_MESSAGE_BYTES = 65535;
/** Upper bound on payloads in one chain (outer or decrypted inner): legitimate messages use ~15. */
export const MAX_PAYLOADS = 64;

export const ExchangeType = {
  IKE_SA_INIT: 34,
  IKE_AUTH: 35,
  CREATE_CHILD_SA: 36,
  INFORMATIONAL: 37,
} as const;

/** Header flag bits (RFC 7296 §3.1). */
export const HeaderFlag = {
  INITIATOR: 0x08,
  VERSION: 0x10,
  RESPONSE: 0x20,
} as const;

export const PayloadType = {
  NONE: 0,
  SA: 33,
  KE: 34,
  IDi: 35,
  IDr: 36,
  CERT: 37,
  CERTREQ: 38,
  AUTH: 39,
  NONCE: 40,
  N: 41,
  D: 42,
  V: 43,
  TSi: 44,
  TSr: 45,
  SK: 46,
  CP: 47,
  EAP: 48,
  SKF: 53, // RFC 7383
} as const;

export const NotifyType = {
  // Errors (RFC 7296 §3.10.1)
  UNSUPPORTED_CRITICAL_PAYLOAD: 1,
  INVALID_IKE_SPI: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_SYNTAX: 7,
  INVALID_MESSAGE_ID: 9,
  INVALID_SPI: 11,
  NO_PROPOSAL_CHOSEN: 14,
  INVALID_KE_PAYLOAD: 17,
  AUTHENTICATION_FAILED: 24,
  SINGLE_PAIR_REQUIRED: 34,
  NO_ADDITIONAL_SAS: 35,
  INTERNAL_ADDRESS_FAILURE: 36,
  FAILED_CP_REQUIRED: 37,
  TS_UNACCEPTABLE: 38,
  INVALID_SELECTORS: 39,
  TEMPORARY_FAILURE: 43,
  CHILD_SA_NOT_FOUND: 44,
  // Status
  INITIAL_CONTACT: 16384,
  SET_WINDOW_SIZE: 16385,
  ADDITIONAL_TS_POSSIBLE: 16386,
  IPCOMP_SUPPORTED: 16387,
  NAT_DETECTION_SOURCE_IP: 16388,
  NAT_DETECTION_DESTINATION_IP: 16389,
  COOKIE: 16390,
  USE_TRANSPORT_MODE: 16391,
  HTTP_CERT_LOOKUP_SUPPORTED: 16392,
  REKEY_SA: 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED: 16394,
  NON_FIRST_FRAGMENTS_ALSO: 16395,
  // Status types strongSwan sends by default; named so logs are readable.
  MOBIKE_SUPPORTED: 16396, // RFC 4555
  AUTH_LIFETIME: 16403, // RFC 4478
  MULTIPLE_AUTH_SUPPORTED: 16404, // RFC 4739
  REDIRECT_SUPPORTED: 16406, // RFC 5685
  EAP_ONLY_AUTHENTICATION: 16417, // RFC 5998
  CHILDLESS_IKEV2_SUPPORTED: 16418, // RFC 6023
  FRAGMENTATION_SUPPORTED: 16430, // RFC 7383 (IANA: IKEV2_FRAGMENTATION_SUPPORTED)
  SIGNATURE_HASH_ALGORITHMS: 16431, // RFC 7427
} as const;

/** Notify types below this are errors (RFC 7296 §3.10.1). */
export const NOTIFY_ERROR_MAX = 16383;

export const ProtocolId = {
  NONE: 0, // Notify payloads about the IKE SA itself
  IKE: 1,
  AH: 2,
  ESP: 3,
} as const;

export const TransformType = {
  ENCR: 1,
  PRF: 2,
  INTEG: 3,
  DH: 4,
  ESN: 5,
} as const;

export const EncrId = {
  ENCR_3DES: 3,
  ENCR_NULL: 11,
  ENCR_AES_CBC: 12,
  ENCR_AES_CTR: 13,
  ENCR_AES_GCM_8: 18,
  ENCR_AES_GCM_12: 19,
  ENCR_AES_GCM_16: 20,
  ENCR_CHACHA20_POLY1305: 28, // RFC 7634
} as const;

export const PrfId = {
  PRF_HMAC_SHA1: 2,
  PRF_HMAC_SHA2_256: 5,
  PRF_HMAC_SHA2_384: 6,
  PRF_HMAC_SHA2_512: 7,
} as const;

export const IntegId = {
  NONE: 0,
  AUTH_HMAC_SHA1_96: 2,
  AUTH_HMAC_SHA2_256_128: 12,
  AUTH_HMAC_SHA2_384_192: 13,
  AUTH_HMAC_SHA2_512_256: 14,
} as const;

export const DhGroup = {
  NONE: 0,
  MODP_2048: 14,
  MODP_3072: 15,
  MODP_4096: 16,
  ECP_256: 19,
  ECP_384: 20,
  ECP_521: 21,
  CURVE25519: 31,
  CURVE448: 32,
} as const;

export const EsnId = {
  NO_ESN: 0,
  ESN: 1,
} as const;

/** Transform attribute types (RFC 7296 §3.3.5). */
export const TransformAttr = {
  KEY_LENGTH: 14,
} as const;

export const IdType = {
  ID_IPV4_ADDR: 1,
  ID_FQDN: 2,
  ID_RFC822_ADDR: 3,
  ID_IPV6_ADDR: 5,
  ID_DER_ASN1_DN: 9,
  ID_DER_ASN1_GN: 10,
  ID_KEY_ID: 11,
} as const;

export const CertEncoding = {
  PKCS7_X509: 1,
  X509_SIGNATURE: 4,
  CRL: 7,
  X509_ATTRIBUTE: 10,
  /** Hash and URL of X.509 certificate: decoded like any CERT, ignored by us. */
  HASH_URL_X509: 12,
  HASH_URL_X509_BUNDLE: 13,
  RAW_PUBLIC_KEY: 15, // RFC 7670
} as const;

export const AuthMethod = {
  RSA_SIGNATURE: 1,
  SHARED_KEY_MIC: 2,
  DSS_SIGNATURE: 3,
  ECDSA_SHA256_P256: 9, // RFC 4754
  ECDSA_SHA384_P384: 10,
  ECDSA_SHA512_P521: 11,
  NULL_AUTH: 13, // RFC 7619
  DIGITAL_SIGNATURE: 14, // RFC 7427
} as const;

/** Hash algorithm identifiers of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4). */
export const HashAlgorithm = {
  SHA1: 1,
  SHA2_256: 2,
  SHA2_384: 3,
  SHA2_512: 4,
  IDENTITY: 5, // RFC 8420
} as const;

export const TsType = {
  TS_IPV4_ADDR_RANGE: 7,
  TS_IPV6_ADDR_RANGE: 8,
} as const;

export const CfgType = {
  CFG_REQUEST: 1,
  CFG_REPLY: 2,
  CFG_SET: 3,
  CFG_ACK: 4,
} as const;

export const CfgAttr = {
  INTERNAL_IP4_ADDRESS: 1,
  INTERNAL_IP4_NETMASK: 2,
  INTERNAL_IP4_DNS: 3,
  INTERNAL_IP6_ADDRESS: 8,
  INTERNAL_IP6_DNS: 10,
  INTERNAL_IP4_SUBNET: 13,
  SUPPORTED_ATTRIBUTES: 14,
  INTERNAL_IP6_SUBNET: 15,
} as const;

function reverse(table: Record<string, number>): Map<number, string> {
  return new Map(Object.entries(table).map(([k, v]) => [v, k]));
}

const exchangeNames = reverse(ExchangeType);
const payloadNames = reverse(PayloadType);
const notifyNames = reverse(NotifyType);

/** Names for logs; unknown values print as their number. */
export function exchangeTypeName(t: number): string {
  return exchangeNames.get(t) ?? `exchange(${t})`;
}

export function payloadTypeName(t: number): string {
  return payloadNames.get(t) ?? `payload(${t})`;
}

export function notifyTypeName(t: number): string {
  return notifyNames.get(t) ?? `notify(${t})`;
}

export function isErrorNotify(t: number): boolean {
  return t > 0 && t <= NOTIFY_ERROR_MAX;
}
