/* IPv6 for the executor and the datapath: the fixed header, the bounded extension-header walk, what
 * is never intercepted, and the v6 pseudo-header sum (docs/protocol.md, V6 decisions of issue 14).
 * The walk mirrors the TypeScript one exactly: both executors pass the same vectors. */
#ifndef KASANE_IPV6_H
#define KASANE_IPV6_H

#include <stddef.h>
#include <stdint.h>

#include "ip.h"

#define IPV6_HDR_LEN 40
#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_NONE_ 59
#define IPV6_EXT_MAX 16 /* more extension headers than this: malformed */
#define IPV6_MIN_MTU 1280

enum { V6_FRAG_NONE = 0, V6_FRAG_FIRST = 1, V6_FRAG_LATER = 2 };

typedef struct {
  size_t tot;           /* 40 + payload length: the bytes the packet covers */
  uint8_t nh;           /* the fixed header's next header */
  uint8_t upper_proto;  /* the first header that is not an extension header (6, 17, 58, 59, 50, ...) */
  int has_upper;        /* 0 for a non-first fragment: its upper-layer header is in another fragment */
  size_t upper_off;     /* offset of the upper-layer header from the start of the packet */
  int fragment;         /* V6_FRAG_* */
  size_t ext_len;       /* bytes of extension headers */
} ipv6_info;

/* The fixed header (version 6, payload length within the buffer) and the extension-header walk:
 * hop-by-hop (only first), routing, destination options, fragment (8 bytes), AH ((len + 2) * 4
 * bytes), each bounded by the packet; more than IPV6_EXT_MAX of them, or one running past the end,
 * is malformed. 0, or -1 when malformed. Reads nothing outside pkt[0..len). */
int ipv6_parse(const uint8_t *pkt, size_t len, ipv6_info *ip);

/* 1 when the packet is the link's business and passes untouched: a link-local source or
 * destination, a multicast destination, the unspecified source, or link-scoped ICMPv6 (neighbour
 * and router discovery, MLD, inverse ND, SEND, multicast router discovery, RPL). */
int ipv6_never_intercepted(const uint8_t *pkt, const ipv6_info *ip);

/* Partial sum of the v6 pseudo-header (RFC 8200 section 8.1): addresses, upper-layer length,
 * next header. */
static inline uint64_t ipv6_pseudo_sum(const uint8_t *pkt, uint32_t upper_len, uint8_t proto) {
  uint64_t sum = csum_add(0, pkt + 8, 32);
  return sum + (upper_len >> 16) + (upper_len & 0xffff) + proto;
}

/* Writes the full UDP checksum of the datagram udp[0..len) of an IPv6 packet (0 becomes 0xffff:
 * RFC 8200 forbids a zero UDP checksum over IPv6). */
static inline void ipv6_udp_checksum(const uint8_t *pkt, uint8_t *udp, size_t len) {
  udp[6] = udp[7] = 0;
  uint16_t c = csum_finish(csum_add(ipv6_pseudo_sum(pkt, (uint32_t)len, IPPROTO_UDP_), udp, len));
  wr16(udp + 6, c ? c : 0xffff);
}

/* Traffic class (8 bits across the first two bytes) and hop limit. */
static inline uint8_t ipv6_tclass(const uint8_t *pkt) { return (uint8_t)((pkt[0] & 15) << 4 | pkt[1] >> 4); }
static inline void ipv6_set_tclass(uint8_t *pkt, uint8_t tc) {
  pkt[0] = (uint8_t)(0x60 | tc >> 4);
  pkt[1] = (uint8_t)((tc & 15) << 4 | (pkt[1] & 15));
}

#endif
