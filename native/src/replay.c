/* Anti-replay windows (see replay.h). */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#define WORDS (REPLAY_WINDOW_MAX / 64)

void replay_init(replay_window *w, uint32_t size) {
  w->top = 0;
  w->size = size;
  w->bits = NULL;
}

void replay_free(replay_window *w) {
  free(w->bits);
  w->bits = NULL;
}

void replay_move(replay_window *w, replay_window *from) {
  replay_free(w);
  *w = *from;
  from->bits = NULL;
}

int replay_check(const replay_window *w, uint64_t seq) {
  if (seq > w->top) return 1;
  if (!w->bits || w->top - seq >= w->size) return 0;
  uint64_t bit = seq % REPLAY_WINDOW_MAX;
  return !(w->bits[bit / 64] >> (bit % 64) & 1);
}

void replay_accept(replay_window *w, uint64_t seq) {
  if (!w->bits && seq > w->top) {
    /* Every number up to top counts as received: all slots set, then the move below clears the
     * ones it skips over. */
    w->bits = malloc(WORDS * sizeof *w->bits);
    if (!w->bits) {
      w->top = seq;
      return;
    }
    memset(w->bits, 0xff, WORDS * sizeof *w->bits);
  }
  if (!w->bits) return; /* seq <= top: already counted as received */
  if (seq > w->top) {
    if (seq - w->top >= REPLAY_WINDOW_MAX) {
      memset(w->bits, 0, WORDS * sizeof *w->bits);
    } else {
      /* Clear the slots of the numbers skipped over (they were last used a whole array ago), a word
       * at a time where a whole word is skipped. */
      for (uint64_t q = w->top + 1; q < seq;) {
        uint64_t b = q % REPLAY_WINDOW_MAX;
        if (b % 64 == 0 && seq - q >= 64) {
          w->bits[b / 64] = 0;
          q += 64;
        } else {
          w->bits[b / 64] &= ~((uint64_t)1 << (b % 64));
          q++;
        }
      }
    }
    w->top = seq;
  } else if (w->top - seq >= w->size) {
    return;
  }
  uint64_t bit = seq % REPLAY_WINDOW_MAX;
  w->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
}

/* Without a bitmap every number up to the new top counts as received, which is what a floor says. */
void replay_raise_floor(replay_window *w, uint64_t floor) {
  if (floor < 2 || floor - 1 <= w->top) return;
  w->top = floor - 1;
  replay_free(w);
}
