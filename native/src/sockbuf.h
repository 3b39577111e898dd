/* Socket buffers for the datapath's sockets (the tunnel port, the raw egress): one size and one rule
 * for all of them. */
#ifndef KASANE_SOCKBUF_H
#define KASANE_SOCKBUF_H

#include <sys/socket.h>

/* 8 MiB (~7 ms at 10 Gbit/s; ~10,000 small packets), past net.core.rmem_max / wmem_max (212 KB on a
 * stock kernel) since the gateway may (CAP_NET_ADMIN, as for its TUN devices); capped by them
 * otherwise. */
#define SOCKBUF_BYTES (8 << 20)

/* which: SO_RCVBUF or SO_SNDBUF. */
static inline void sockbuf_set(int fd, int which) {
  int bytes = SOCKBUF_BYTES;
  int force = which == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) != 0)
    (void)setsockopt(fd, SOL_SOCKET, which, &bytes, sizeof bytes);
}

#endif
