/* Coalescing of group ESP in UDP into UDP GSO super-packets before they are written to the TUN
 * (VIRTIO_NET_HDR_GSO_UDP_L4). Native because a TUN write or a raw-socket send costs one pass
 * through the kernel's forwarding path per packet (~7 us on the measured machine, dataplane.md),
 * while a super-packet of N equal-size ESP packets crosses the stack, the veth pairs and the
 * forwarding routers whole, is segmented only where it must be (a physical NIC, or nowhere when
 * the receiving gateway's TUN takes USO too), and is read by the receiving gateway in one read().
 * One TCP super-packet read from the inside becomes N equal-size segments, so N equal-size ESP
 * packets: exactly what one UDP GSO super-packet can carry. The same holds for the datagrams of one
 * UDP flow the gateway decrypts (e.g. a stream of small packets): written as one super-packet,
 * they cross the kernel's forwarding path once, and the receiving host's UDP segments them. */
#ifndef KASANE_USO_H
#define KASANE_USO_H

#include <stddef.h>
#include <stdint.h>

#define USO_MAX_SEGS 64

typedef struct {
  uint8_t *buf;    /* VNET_HDR_LEN + the super-packet being built + room for one more packet */
  size_t len;      /* IP length so far */
  size_t hlen;     /* IP (v4 with options, or the v6 fixed header) + UDP header length */
  size_t seg;      /* ESP length of the first segment: every segment but the last has it */
  int segs;
  int closed;      /* a shorter segment ended the run */
  int forwarded;   /* UDP of the terminals (decrypted or plain), not our ESP: see uso_init_forwarded */
  uint8_t saved[60 + 8]; /* the run's bytes a slot's headers cover, put back by uso_take/uso_unslot */
  size_t saved_len;
} uso_batch;

/* Writes one frame (virtio_net_hdr + packet) to the TUN. */
typedef void (*uso_write_fn)(void *ctx, uint8_t *frame, size_t len);
/* Sends one packet as it is (a run of one: no GSO needed). pkt has VNET_HDR_LEN writable bytes
 * before it. */
typedef void (*uso_single_fn)(void *ctx, uint8_t *pkt, size_t len);

/* slot_room: the most one packet written at a slot may take. */
int uso_init(uso_batch *b, size_t slot_room);
/* A batch for forwarded UDP (decrypted, or of a plain path) instead of group ESP: the kernel
 * rewrites every segment's checksum and IPv4 id, so a datagram joins a run only if that gives back
 * exactly the datagram: a valid, non-zero UDP checksum (a corrupt one is never hidden in a
 * recomputed one), an IPv4 id one more than the previous one's, no fragment. */
int uso_init_forwarded(uso_batch *b, size_t slot_room);
void uso_free(uso_batch *b);

/* Encryption straight into the run (no copy): the slot is where the next packet is to be written
 * (slot_room bytes) so that, if it joins the run, its ESP already lies where the run goes on: the
 * run's end minus the run's header length (the previous segment's tail, whose bytes are kept), or
 * the buffer's start (VNET_HDR_LEN writable bytes before it) when no run is open. A run that can
 * take nothing more is flushed first. */
uint8_t *uso_slot(uso_batch *b, uso_write_fn write, uso_single_fn single, void *ctx);
/* A packet for the run, at the slot (then its ESP is not moved) or anywhere else (then it is copied
 * in): 1 when it joined the run or started one; 0 when it does not belong to the run (the caller
 * flushes the run, or moves a packet at the slot elsewhere before uso_unslot). */
int uso_take(uso_batch *b, const uint8_t *pkt, size_t len);
/* Puts back the run's bytes a slot covered (after a packet uso_take refused, or none was written). */
void uso_unslot(uso_batch *b);
/* Adds one group ESP-in-UDP packet over IPv4 or IPv6 (or a forwarded datagram; not at the slot):
 * appended to the run when its headers match the run's (but id, length and checksums) and its ESP
 * is not longer than the run's segments; otherwise the run is flushed first and this packet starts
 * the next. */
void uso_add(uso_batch *b, const uint8_t *pkt, size_t len, uso_write_fn write, uso_single_fn single, void *ctx);
/* Writes the run: a super-packet with NEEDS_CSUM and GSO_UDP_L4 (the kernel computes every
 * segment's UDP checksum), or a run of one through single. */
void uso_flush(uso_batch *b, uso_write_fn write, uso_single_fn single, void *ctx);

#endif
