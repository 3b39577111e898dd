/* Byte access, Internet checksums and the IPv4/TCP option walk shared by the executor and GSO segmentation.
 * Native because the per-packet work (checksums over every segment) is what the TUN fast path
 * spends its time on besides crypto (docs/dataplane.md, "Why native"). */
#ifndef KASANE_IP_H
#define KASANE_IP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ESP_ 50

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

/* Options in the form IPv4 (RFC 791) and TCP (RFC 9293) share: kind 0 ends the list, kind 1 is one
 * byte of padding, any other kind is followed by the option's whole length. Finds the option at or
 * after h[*at] before `end`, skipping padding: 1 with *at on its kind and *olen its length, 0 at the
 * end of the list or at an option that is too short or overruns `end`. */
static inline int next_option(const uint8_t *h, size_t end, size_t *at, size_t *olen) {
  while (*at < end && h[*at] == 1) (*at)++;
  if (*at + 1 >= end || h[*at] == 0) return 0;
  *olen = h[*at + 1];
  return *olen >= 2 && *at + *olen <= end;
}

/* The protocol of an IPv4 header, or the next header of an IPv6 fixed header (at least 20 bytes). */
static inline uint8_t ip_first_proto(const uint8_t *pkt) { return pkt[(pkt[0] >> 4) == 6 ? 6 : 9]; }
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((uint16_t)p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)(v >> 32)); wr32(p + 4, (uint32_t)v); }
static inline uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }

/* One's-complement partial sum of big-endian 16-bit words (an odd tail byte is padded with zero),
 * added to sum. The bulk is summed as native 64-bit loads (two 32-bit halves into a 64-bit
 * accumulator: no overflow for any IP-sized buffer) and byte-swapped once at the end, which the
 * one's-complement sum allows (RFC 1071 section 2(B)): the datapath sums every byte of every
 * segment at least once, and byte-by-byte big-endian loads made that a tenth of a gateway's time. */
static inline uint16_t csum_fold(uint64_t sum);
/* The sum of the native-endian 32-bit words of p[0..len), len a multiple of 64 (checksum.c: AVX2
 * when the CPU has it, four to five times the scalar loop's speed). */
uint64_t csum_words(const uint8_t *p, size_t len);
static inline uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  uint64_t acc = 0;
  if (len >= 256) {
    size_t bulk = len & ~(size_t)63;
    acc = csum_words(p, bulk);
    p += bulk;
    len -= bulk;
  }
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    acc += (v & 0xffffffffu) + (v >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    acc += v;
    p += 4;
    len -= 4;
  }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint16_t folded = csum_fold(acc);
  sum += (uint16_t)(folded << 8 | folded >> 8);
#else
  sum += csum_fold(acc);
#endif
  if (len >= 2) { sum += rd16(p); p += 2; len -= 2; }
  if (len) sum += (uint64_t)p[0] << 8;
  return sum;
}

/* Folds a partial sum to 16 bits (not complemented). */
static inline uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* The checksum value to store in a header whose checksum field is zero. */
static inline uint16_t csum_finish(uint64_t sum) { return (uint16_t)~csum_fold(sum); }

/* Recomputes the IPv4 header checksum in place (ihl bytes). */
static inline void ipv4_set_checksum(uint8_t *ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  wr16(ip + 10, csum_finish(csum_add(0, ip, ihl)));
}

/* RFC 1624 incremental update of a stored checksum when a 16-bit field changes from old to new. */
static inline uint16_t csum_replace16(uint16_t check, uint16_t old, uint16_t new_) {
  uint64_t sum = (uint16_t)~check;
  sum += (uint16_t)~old;
  sum += new_;
  return (uint16_t)~csum_fold(sum);
}

#endif
