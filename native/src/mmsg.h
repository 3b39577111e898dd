/* One datagram of a recvmmsg/sendmmsg batch: its address and its single buffer. */
#ifndef KASANE_MMSG_H
#define KASANE_MMSG_H

#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Points `m` at `name` (namelen bytes: where it came from, or where it goes) and the one buffer `iov`. */
static inline void mmsg_single(struct mmsghdr *m, void *name, socklen_t namelen, struct iovec *iov) {
  memset(m, 0, sizeof *m);
  m->msg_hdr.msg_name = name;
  m->msg_hdr.msg_namelen = namelen;
  m->msg_hdr.msg_iov = iov;
  m->msg_hdr.msg_iovlen = 1;
}

#endif
