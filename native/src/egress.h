/* Batched egress of encrypted (ESP) packets through a raw IPv4 socket with sendmmsg. Native and
 * separate from the TUN write because ESP packets cannot be coalesced (no GSO type exists for
 * them) and a TUN write runs the whole input + forwarding path per packet (~7 us here,
 * dataplane.md); a raw socket sends them as locally originated packets (one route lookup, no
 * TUN allocation, no second input pass), many per system call. */
#ifndef KASANE_EGRESS_H
#define KASANE_EGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct egress egress;

/* Writes a packet through the TUN instead (pkt has VNET_HDR_LEN writable bytes before it). */
typedef void (*egress_fallback_fn)(void *ctx, uint8_t *pkt, size_t len);

/* NULL when no raw socket can be opened (no CAP_NET_RAW): the caller then writes to the TUN. */
egress *egress_new(void);
void egress_free(egress *e);
/* Queues one complete IPv4 packet, decrementing its TTL as the forwarding hop it replaces.
 * Packets the kernel must handle itself (TTL <= 1: ICMP time exceeded) go to fallback. When the
 * queue fills it is flushed: *sent and *bytes grow by what the socket took. */
void egress_add(egress *e, const uint8_t *pkt, size_t len, egress_fallback_fn fallback, void *ctx, uint64_t *sent,
                uint64_t *bytes);
/* Sends everything queued; what the socket refuses (EMSGSIZE: larger than the route MTU without
 * DF, so the kernel must fragment it; a full queue) goes to fallback, in order. Returns the number
 * of packets the socket took. */
size_t egress_flush(egress *e, egress_fallback_fn fallback, void *ctx, uint64_t *bytes);

#endif
