/* Coalescing of group ESP in UDP into UDP GSO super-packets before they are written to the TUN
 * (VIRTIO_NET_HDR_GSO_UDP_L4). Native because a TUN write or a raw-socket send costs one pass
 * through the kernel's forwarding path per packet (~7 us on the measured machine, dataplane.md),
 * while a super-packet of N equal-size ESP packets crosses the stack, the veth pairs and the
 * forwarding routers whole, is segmented only where it must be (a physical NIC, or nowhere when
 * the receiving gateway's TUN takes USO too), and is read by the receiving gateway in one read().
 * One TCP super-packet read from the inside becomes N equal-size segments, so N equal-size ESP
 * packets: exactly what one UDP GSO super-packet can carry. */
#ifndef KASANE_USO_H
#define KASANE_USO_H

#include <stddef.h>
#include <stdint.h>

#define USO_MAX_SEGS 64

typedef struct {
  uint8_t *buf;    /* VNET_HDR_LEN + the super-packet being built */
  size_t len;      /* IP length so far */
  size_t hlen;     /* IP (v4 with options, or the v6 fixed header) + UDP header length */
  size_t seg;      /* ESP length of the first segment: every segment but the last has it */
  int segs;
  int closed;      /* a shorter segment ended the run */
} uso_batch;

/* Writes one frame (virtio_net_hdr + packet) to the TUN. */
typedef void (*uso_write_fn)(void *ctx, uint8_t *frame, size_t len);
/* Sends one packet as it is (a run of one: no GSO needed). pkt has VNET_HDR_LEN writable bytes
 * before it. */
typedef void (*uso_single_fn)(void *ctx, uint8_t *pkt, size_t len);

int uso_init(uso_batch *b);
void uso_free(uso_batch *b);
/* Adds one group ESP-in-UDP packet over IPv4 or IPv6 (from the executor): appended to the run when its
 * headers match the run's (but id, length and checksums) and its ESP is not longer than the run's
 * segments; otherwise the run is flushed first and this packet starts the next. */
void uso_add(uso_batch *b, const uint8_t *pkt, size_t len, uso_write_fn write, uso_single_fn single, void *ctx);
/* Writes the run: a super-packet with NEEDS_CSUM and GSO_UDP_L4 (the kernel computes every
 * segment's UDP checksum), or a run of one through single. */
void uso_flush(uso_batch *b, uso_write_fn write, uso_single_fn single, void *ctx);

#endif
