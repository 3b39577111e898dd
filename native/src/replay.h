/* The anti-replay window of RFC 4303 section 3.4.3, one for every receiving SA: group SAs (64-bit
 * sequence numbers, 32768 packets: several queues open one SA, docs/executor.md) and IKE Child SAs
 * (32-bit, 64..4096 packets). Native because it runs for every packet received, under the SA's
 * spinlock (executor_state.h). */
#ifndef KASANE_REPLAY_H
#define KASANE_REPLAY_H

#include <stdint.h>

#define REPLAY_WINDOW_MAX 32768

/* The bitmap (4 KB) is allocated with the first number accepted: a gateway holds a receiving SA for
 * every member of its VPNs, and most never send to it. Without one, every number up to top counts as
 * received (the state after replay_init, and after a floor). */
typedef struct {
  uint64_t top;   /* highest sequence number accepted (0: none yet) */
  uint32_t size;  /* packets below top that are still told apart: 64..REPLAY_WINDOW_MAX */
  uint64_t *bits; /* REPLAY_WINDOW_MAX bits, bit (seq % REPLAY_WINDOW_MAX) set: seq accepted; or NULL */
} replay_window;

void replay_init(replay_window *w, uint32_t size);
void replay_free(replay_window *w);
/* Moves the window (bitmap included) from `from`, which is left without one. */
void replay_move(replay_window *w, replay_window *from);
/* 1 when seq is new: above the top, or inside the window and not seen. */
int replay_check(const replay_window *w, uint64_t seq);
/* Records seq (after its ICV verified), moving the window when it is the highest. If the bitmap
 * cannot be allocated, every number up to seq counts as received from then on: late packets are
 * refused, a replay never taken. */
void replay_accept(replay_window *w, uint64_t seq);
/* Every sequence number below floor counts as received; only ever raises the window. */
void replay_raise_floor(replay_window *w, uint64_t floor);

#endif
