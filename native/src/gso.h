/* GSO super-packet segmentation and checksum completion for frames read from a TUN with
 * IFF_VNET_HDR. Native because GSO is the big lever on this machine (dataplane.md: 17.4 Gbit/s
 * with 64 KB super-packets vs ~1.2 Gbit/s one packet at a time), and every segment must be a
 * complete packet before it is encrypted. */
#ifndef KASANE_GSO_H
#define KASANE_GSO_H

#include <stddef.h>
#include <stdint.h>

/* struct virtio_net_hdr, legacy layout (host-endian 16-bit fields), as the TUN reads and writes it. */
typedef struct {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
} vnet_hdr;
#define VNET_HDR_LEN 10

#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_UDP_L4 5 /* UDP segmentation offload (kernel >= 6.2 on a TUN: TUN_F_USO4/6) */
#define VNET_GSO_ECN 0x80

void vnet_read(vnet_hdr *h, const uint8_t *p);

/* Completes a partial checksum (NEEDS_CSUM): sums from csum_start to the end and stores the result
 * at csum_start + csum_offset. 0, or -1 when the offsets fall outside the packet. */
int gso_complete_csum(const vnet_hdr *h, uint8_t *pkt, size_t len);

/* Number of segments and total bytes on the wire for a TCP or UDP GSO super-packet; 0 when malformed. */
uint32_t gso_count(const vnet_hdr *h, const uint8_t *pkt, size_t len, uint64_t *wire_bytes);

/* Segments a TCP or UDP GSO super-packet (IPv4 or IPv6 without extension headers) in place, without
 * copying payloads: segment k's headers are written into the bytes just before its payload, which
 * belong to segment k-1, so emit must be done with a segment before it returns (the datapath's
 * per-packet path is: whatever it keeps, it copies). Each segment has complete IP and TCP/UDP
 * checksums. The VNET_HDR_LEN bytes before pkt must be writable. Returns the number of segments,
 * or -1 when the super-packet is malformed (nothing emitted). */
typedef void (*gso_emit_fn)(void *ctx, uint8_t *seg, size_t len);
int gso_segment(const vnet_hdr *h, uint8_t *pkt, size_t len, gso_emit_fn emit, void *ctx);

/* A UDP GSO super-packet over IPv4 or IPv6 whose segments are group ESP in UDP (destination port
 * 4500): 1 and the header length (IP + UDP), or 0 for anything else. */
int gso_is_esp_in_udp(const vnet_hdr *h, const uint8_t *pkt, size_t len, size_t *hlen);

/* Splits such a super-packet in place, without copying payloads: segment k's IPv4 and UDP headers
 * are written into the bytes just before its payload, which belong to segment k-1, so emit must be
 * done with a segment before it returns (the datapath's per-packet path is). The UDP checksum of
 * every segment is 0, as RFC 3948 allows (the ESP ICV protects the content); over IPv6 too, because
 * the segments go to the executor, which does not verify it, and never back on the wire. The VNET_HDR_LEN bytes
 * before pkt must be writable. Returns the number of segments, or -1 when malformed. */
int gso_split_esp_in_udp(const vnet_hdr *h, uint8_t *pkt, size_t len, size_t hlen, gso_emit_fn emit, void *ctx);

#endif
