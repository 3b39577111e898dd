/* Coalescing of forwarded TCP segments (IPv4, and IPv6 without extension headers) into GSO super-packets before they are written to the
 * TUN (userspace GRO). Native because every TUN write costs ~7 us of kernel forwarding work here
 * (dataplane.md: ~130 k writes/s per core, ~1.2 Gbit/s), whereas one write of a 64 KB super-packet
 * carries ~45 segments; decrypted ESP arrives one packet per read, so without this the receiving
 * gateway would write every segment separately. */
#ifndef KASANE_GRO_H
#define KASANE_GRO_H

#include <stddef.h>
#include <stdint.h>

#define GRO_FLOWS 8

typedef struct {
  uint8_t *buf; /* VNET_HDR_LEN headroom + the super-packet being built */
  size_t len;   /* IP length so far */
  size_t ihl, thl;
  size_t gso_size;
  uint32_t next_seq;
  int segs;
  int closed; /* PSH seen: nothing more may be appended */
} gro_flow;

typedef struct {
  gro_flow f[GRO_FLOWS];
  int n;      /* flows in use (f[0..n)) */
  int victim; /* next flow to evict when all are in use */
  uint8_t *last;          /* buf of the flow appended to last: where the next segment most likely goes */
  uint8_t *slot_of;       /* buf of the flow a slot was handed out for */
  uint8_t saved[60 + 60]; /* that flow's bytes the slot's headers cover */
  size_t saved_len;
} gro_table;

/* Writes one frame (virtio_net_hdr + packet) to the TUN. */
typedef void (*gro_write_fn)(void *ctx, uint8_t *frame, size_t len);

int gro_init(gro_table *g);
void gro_free(gro_table *g);
/* Forwards one complete IPv4 or IPv6 packet (with VNET_HDR_LEN writable bytes before it): either
 * coalesced with earlier segments of its flow, or written at once. Order within a flow is kept. */
void gro_add(gro_table *g, uint8_t *pkt, size_t len, gro_write_fn write, void *ctx);
/* Decryption straight into the flow (no copy): the slot is where a packet is to be written so that,
 * if it continues the flow appended to last, its TCP payload already lies where the flow goes on
 * (the flow's end minus its IP and TCP header lengths; those bytes are kept). NULL when there is no
 * such flow. At most GRO_SLOT_ROOM bytes may be written there. */
#define GRO_SLOT_ROOM (65536 + 8192)
uint8_t *gro_slot(gro_table *g);
/* The packet written at the slot: 1 when it joined that flow in place (its headers give way to the
 * flow's kept bytes), the flow written if that completes it; 0 when it did not (it is still at the
 * slot: the caller moves it elsewhere, calls gro_unslot, then gro_add). */
int gro_take(gro_table *g, uint8_t *pkt, size_t len, gro_write_fn write, void *ctx);
void gro_unslot(gro_table *g);
/* Writes everything pending (at the end of each read burst). */
void gro_flush(gro_table *g, gro_write_fn write, void *ctx);

#endif
