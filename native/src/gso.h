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
#define VNET_GSO_ECN 0x80

void vnet_read(vnet_hdr *h, const uint8_t *p);

/* Completes a partial checksum (NEEDS_CSUM): sums from csum_start to the end and stores the result
 * at csum_start + csum_offset. 0, or -1 when the offsets fall outside the packet. */
int gso_complete_csum(const vnet_hdr *h, uint8_t *pkt, size_t len);

/* Number of segments and total bytes on the wire for a TCP GSO super-packet; 0 when malformed. */
uint32_t gso_count(const vnet_hdr *h, const uint8_t *pkt, size_t len, uint64_t *wire_bytes);

/* Segments a TCP GSO super-packet (IPv4 or IPv6 without extension headers). Each segment is built
 * at seg (capacity cap) with complete IP and TCP checksums, then passed to emit. Returns the number
 * of segments, or -1 when the super-packet is malformed (nothing emitted). */
typedef void (*gso_emit_fn)(void *ctx, uint8_t *seg, size_t len);
int gso_segment(const vnet_hdr *h, const uint8_t *pkt, size_t len, uint8_t *seg, size_t cap, gso_emit_fn emit,
                void *ctx);

#endif
