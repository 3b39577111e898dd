/* The executor's state, shared by its three parts: executor.c (installs, statistics, the order of
 * docs/executor.md's steps), executor_inside.c (packets from the terminals: encryption) and
 * executor_outside.c (packets and datagrams from the network: decryption). Internal to native/. */
#ifndef KASANE_EXECUTOR_STATE_H
#define KASANE_EXECUTOR_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "esp.h"
#include "executor.h"
#include "ip.h"
#include "ipv6.h"
#include "replay.h"
#include "table.h"

typedef struct {
  char name[ID_NAME_MAX + 1];
  uint8_t len;
  uint32_t refs; /* 0: free slot */
} id_slot;

/* A path rule, in ex->rules keyed by path_key() (table.h: pathtable). */
typedef struct {
  int action;
  uint32_t vpn;
  int32_t peer; /* id index or -1 */
  int64_t mtu; /* -1: none */
  int64_t tunnel; /* -1: group mode; else the SPI of the tunnel sending SA */
  uint64_t packets, bytes;
  double last_used;
} rule;

/* Group mode: what a VPN's sending SA and its receiving SAs hold alike. */
typedef struct {
  tnode node; /* key: the VPN id (sending SA) or the SPI (receiving SA) */
  uint32_t spi, vpn, epoch;
  aead a;
} group_sa_state;

typedef struct {
  group_sa_state sa; /* first: the table holds &sa.node */
  uint64_t next_seq;
  size_t udp; /* GROUP_UDP_HEADER: ESP in UDP (the default); 0: raw ESP */
} txsa;

typedef struct {
  group_sa_state sa; /* first: the table holds &sa.node */
  int32_t sender;
  pthread_spinlock_t wlock; /* the window, checked and moved by several reader threads */
  replay_window w; /* GROUP_REPLAY_WINDOW packets, 64-bit sequence numbers */
} rxsa;

/* Tunnel mode: what the two halves of an IKE Child SA (ESP in UDP) hold alike. */
typedef struct {
  tnode node; /* key: SPI */
  uint32_t spi, vpn;
  int32_t peer;
  int family; /* of the outer header: 4 or 6 */
  uint8_t laddr[16], raddr[16];
  uint16_t lport, rport;
  aead a;
  uint64_t packets, bytes;
  double last_used;
} tunnel_sa_state;

typedef struct {
  tunnel_sa_state sa; /* first: the table holds &sa.node */
  uint64_t next_seq; /* 2^32: exhausted */
  uint64_t soft;
} ttxsa;

/* Where a tunnel-mode datagram came from: the peer's address as last seen (NAT may move it). */
typedef struct {
  int family; /* 4 or 6; 0: none */
  uint8_t addr[16];
  uint16_t port;
} datagram_source;

typedef struct {
  tunnel_sa_state sa; /* first: the table holds &sa.node */
  pthread_spinlock_t wlock; /* the window, the drop counts, the last source */
  replay_window w; /* 64..4096 packets, 32-bit sequence numbers */
  tunnel_range *ranges; /* nlocal then nremote */
  uint32_t nlocal, nremote;
  uint64_t replay_drops, auth_failures, selector_drops;
  datagram_source last; /* of the last datagram accepted (family 0: none yet) */
} ttrxsa;

/* A row of counters per thread slot (esp.h), a whole number of cache lines: no two threads write one. */
#define COUNTER_ROW ((C_COUNT + 7) & ~7)

struct executor {
  /* Packets take it to read (several reader threads at once: crypto runs in parallel, each thread
   * with its own cipher contexts); installs and removals take it to write, and are preferred, so a
   * stream of packets cannot hold an install off. */
  pthread_rwlock_t lock;
  atomic_int refs;
  pathtable rules;
  table tx, rx, ttx, trx;
  id_slot *ids;
  size_t nids, ids_cap;
  _Alignas(64) uint64_t counters[AEAD_THREADS + 1][COUNTER_ROW];
};

/* Adds n to counter c in the calling thread's row: a plain add for a thread of its own slot, an atomic
 * one in the row the threads beyond AEAD_THREADS share. */
static inline void count(executor *ex, int c, uint64_t n) {
  int slot = aead_thread_slot();
  uint64_t *p = &ex->counters[slot][c];
  if (slot < AEAD_THREADS)
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
  else
    __atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

/* Statistics several threads may add to at once (a rule's, a tunnel SA's). */
static inline void stat_add(uint64_t *p, uint64_t n) { __atomic_fetch_add(p, n, __ATOMIC_RELAXED); }
static inline void stat_time(double *p, double now) { __atomic_store(p, &now, __ATOMIC_RELAXED); }

static inline size_t path_key(uint8_t *key, int family, const uint8_t *local, const uint8_t *remote) {
  size_t alen = family == 6 ? 16 : 4;
  memset(key, 0, TABLE_KEY_MAX);
  key[0] = (uint8_t)family;
  memcpy(key + 1, local, alen);
  memcpy(key + 17, remote, alen);
  return TABLE_KEY_MAX;
}

static inline void u32_key(uint8_t *key, uint32_t v) { wr32(key, v); }

/* The SA under `id` (its SPI, or a group sending SA's VPN id) in an SA table, or NULL. */
static inline void *sa_find(const table *t, uint32_t id) {
  uint8_t k[4];
  u32_key(k, id);
  return table_find(t, k, 4);
}


typedef struct {
  size_t ihl, tot;
  uint8_t proto;
  uint16_t frag;
} ipv4_info;

/* Step 1: version 4, IHL >= 5, total length within the buffer, header checksum. */
static inline int parse_ipv4(const uint8_t *pkt, size_t len, ipv4_info *ip) {
  if (len < 20) return -1;
  if (pkt[0] >> 4 != 4) return -1;
  ip->ihl = (size_t)(pkt[0] & 15) * 4;
  ip->tot = rd16(pkt + 2);
  if (ip->ihl < 20 || ip->tot < ip->ihl || ip->tot > len) return -1;
  if (csum_fold(csum_add(0, pkt, ip->ihl)) != 0xffff) return -1;
  ip->proto = pkt[9];
  ip->frag = rd16(pkt + 6);
  return 0;
}

/* Step 2: ICMP echo request or reply whose data (at least 8 bytes) starts with "KSRC". */
static inline int is_search(const uint8_t *pkt, const ipv4_info *ip) {
  if (ip->proto != IPPROTO_ICMP_) return 0;
  if (ip->tot - ip->ihl < 16) return 0;
  const uint8_t *icmp = pkt + ip->ihl;
  return (icmp[0] == 8 || icmp[0] == 0) && memcmp(icmp + 8, "KSRC", 4) == 0;
}

/* ICMPv6 echo request or reply (128, 129) whose data after identifier and sequence number starts
 * with "KSRC", as in ICMP. */
static inline int is_search6(const uint8_t *pkt, const ipv6_info *ip) {
  if (ip->upper_proto != IPPROTO_ICMPV6_ || ip->fragment != V6_FRAG_NONE || ip->tot < ip->upper_off + 16) return 0;
  const uint8_t *icmp = pkt + ip->upper_off;
  return (icmp[0] == 128 || icmp[0] == 129) && memcmp(icmp + 8, "KSRC", 4) == 0;
}

/* The rule of a valid IPv4 or IPv6 packet (its version tells the family). */
static inline rule *find_rule(executor *ex, int side, const uint8_t *pkt) {
  uint8_t key[TABLE_KEY_MAX];
  int v6 = pkt[0] >> 4 == 6;
  const uint8_t *src = pkt + (v6 ? 8 : 12), *dst = pkt + (v6 ? 24 : 16);
  if (side == SIDE_INSIDE)
    path_key(key, v6 ? 6 : 4, src, dst);
  else
    path_key(key, v6 ? 6 : 4, dst, src);
  return (rule *)pathtable_find(&ex->rules, key);
}


/* Counts a packet toward its rule: only those the rule disposed of (discarded or forwarded). */
static inline void rule_used(rule *r, size_t len, double now) {
  stat_add(&r->packets, 1);
  stat_add(&r->bytes, len);
  stat_time(&r->last_used, now);
}

static inline void note_peer(executor *ex, int32_t id, exec_note *note) {
  memcpy(note->sender, ex->ids[id].name, (size_t)ex->ids[id].len + 1);
}

/* What tunnel mode needs of an inner packet of either family. */
typedef struct {
  int family;
  size_t tot;
  uint8_t tclass; /* v4 TOS, v6 traffic class */
  int df;         /* v4: the DF flag; v6: always (routers never fragment IPv6) */
  int tcp_syn_room; /* 1: an unfragmented TCP segment at tcp_off, MSS clamping applies */
  size_t tcp_off;
} inner_info;

/* executor.c: what tunnel mode needs of a valid packet (exactly one of ip, ip6 parsed, by its version). */
void inner_of(const uint8_t *pkt, const ipv4_info *ip, const ipv6_info *ip6, inner_info *in);
/* The TCP MSS clamp, one for every direction and form (executor.c): an unfragmented TCP SYN announces
 * at most the MSS whose segment fits `room` bytes of IP packet (MSS <= room - IP header of 20, or 40
 * for IPv6, - TCP header of 20); the TCP checksum is kept valid. clamp_syn_mss parses as inner_of does. */
void clamp_inner_mss(uint8_t *pkt, const inner_info *in, int64_t room);
void clamp_syn_mss(uint8_t *pkt, const ipv4_info *ip, const ipv6_info *ip6, int64_t room);

/* Packets from the inside (executor_inside.c): group ESP and tunnel mode. */
int exec_encrypt(executor *ex, rule *r, uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out, exec_note *note);
int exec_encrypt6(executor *ex, rule *r, uint8_t *pkt, size_t len, const ipv6_info *ip, uint8_t *out, exec_note *note);
int exec_tunnel_encrypt(executor *ex, rule *r, uint8_t *pkt, size_t len, const inner_info *in, uint8_t *out,
                        exec_note *note, double now);
/* Packets and datagrams from the outside (executor_outside.c). */
int exec_decrypt(executor *ex, rule *r, const uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out,
                 exec_note *note);
int exec_decrypt6(executor *ex, rule *r, const uint8_t *pkt, size_t len, const ipv6_info *ip, uint8_t *out,
                  exec_note *note);
int exec_tunnel_decrypt(executor *ex, int family, const uint8_t *src, uint16_t sport, const uint8_t *d, size_t len,
                        double now, uint8_t *out, exec_note *note);

#endif
