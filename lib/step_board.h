/*  step_board.h: how far each running request is, from the compute
 *  threads to the control loop (ARCHITECTURE.md, "Progress").
 *
 *  A worker says "room R is at step k of n" through the stage ABI's
 *  env->step, as often as it likes; the board keeps only the latest word
 *  per room, and the control loop takes the lot now and then (at most
 *  every 100 ms) and sends it on.  So a stage that steps every
 *  millisecond costs the controller ten messages a second per room, not
 *  a thousand, and a worker never waits on the loop.  */
#ifndef DG_STEP_BOARD_H
#define DG_STEP_BOARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct _dg_step_board_t dg_step_board_t;

dg_step_board_t *dg_step_board_new(void);
void dg_step_board_destroy(dg_step_board_t **self_p);

/* Any thread.  -1 when out of memory (the word is lost: the next one
 * says more anyway). */
int dg_step_board_set(dg_step_board_t *self, uint64_t room, int64_t step,
    int64_t steps);

/* Any thread: the room suspended after `step` steps (stage.h,
 * DG_STAGE_YIELD).  -1 when out of memory. */
int dg_step_board_suspend(dg_step_board_t *self, uint64_t room,
    int64_t step);

/* The control loop: each room's latest word since the last take, handed
 * to `fn` (suspended: the step it suspended after, else 0), then
 * forgotten.  Returns how many. */
size_t dg_step_board_take(dg_step_board_t *self,
    void (*fn)(void *arg, uint64_t room, int64_t step, int64_t steps,
    int64_t suspended), void *arg);

#endif
