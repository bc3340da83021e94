/*  step_board.c: see step_board.h.  A plain array under a mutex: it
 *  holds the rooms that are in a worker now (workers x max_batch), so a
 *  linear search beats a hash, and it grows when it must.  */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "step_board.h"

typedef struct {
	uint64_t room;
	int64_t step, steps;
	int64_t suspended;              /* 0, or the step it suspended after */
} s_word_t;

struct _dg_step_board_t {
	pthread_mutex_t lock;
	s_word_t *words, *spare;        /* spare: what take hands out */
	size_t n, cap, spare_cap;
};

dg_step_board_t *
dg_step_board_new(void)
{
	dg_step_board_t *self = calloc(1, sizeof *self);

	if (self)
		pthread_mutex_init(&self->lock, NULL);
	return self;
}

void
dg_step_board_destroy(dg_step_board_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_step_board_t *self = *self_p;
	pthread_mutex_destroy(&self->lock);
	free(self->words);
	free(self->spare);
	free(self);
	*self_p = NULL;
}

/* The room's word, a new one when it has none; NULL when out of
 * memory.  Under the lock. */
static s_word_t *
s_word(dg_step_board_t *self, uint64_t room)
{
	size_t i = 0;

	while (i < self->n && self->words[i].room != room)
		i++;
	if (i < self->n)
		return &self->words[i];
	if (self->n == self->cap) {
		size_t cap = self->cap ? 2 * self->cap : 16;
		s_word_t *w = realloc(self->words, cap * sizeof *w);
		if (!w)
			return NULL;
		self->words = w;
		self->cap = cap;
	}
	self->words[self->n] = (s_word_t){ .room = room };
	return &self->words[self->n++];
}

int
dg_step_board_set(dg_step_board_t *self, uint64_t room, int64_t step,
    int64_t steps)
{
	pthread_mutex_lock(&self->lock);
	s_word_t *w = s_word(self, room);
	if (w) {
		w->step = step;
		w->steps = steps;
	}
	pthread_mutex_unlock(&self->lock);
	return w ? 0 : -1;
}

int
dg_step_board_suspend(dg_step_board_t *self, uint64_t room, int64_t step)
{
	pthread_mutex_lock(&self->lock);
	s_word_t *w = s_word(self, room);
	if (w)
		w->suspended = step > 0 ? step : 1;
	pthread_mutex_unlock(&self->lock);
	return w ? 0 : -1;
}

size_t
dg_step_board_take(dg_step_board_t *self,
    void (*fn)(void *arg, uint64_t room, int64_t step, int64_t steps,
    int64_t suspended), void *arg)
{
	/* Swap the arrays under the lock and call `fn` outside it, so that
	 * workers never wait on what the loop does with the words. */
	pthread_mutex_lock(&self->lock);
	s_word_t *words = self->words;
	size_t n = self->n, cap = self->cap;
	self->words = self->spare;
	self->cap = self->spare_cap;
	self->n = 0;
	self->spare = NULL;
	self->spare_cap = 0;
	pthread_mutex_unlock(&self->lock);
	for (size_t i = 0; i < n; i++)
		fn(arg, words[i].room, words[i].step, words[i].steps,
		    words[i].suspended);
	pthread_mutex_lock(&self->lock);
	if (!self->spare) {
		self->spare = words;
		self->spare_cap = cap;
		words = NULL;
	}
	pthread_mutex_unlock(&self->lock);
	free(words);
	return n;
}
