/*  workers.c: a stage daemon's compute threads (workers.h).  */
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "threads.h"
#include "workers.h"

typedef struct {
	dg_workers_t *self;
	pthread_t thread;
	int index;
} s_worker_t;

struct _dg_workers_t {
	const dg_stage_ops_t *ops;
	void *plugin;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	zlistx_t *todo, *finished;      /* dg_room_batch_t */
	bool stop;
	int busy;                       /* batches out, not taken back */
	int donefd;
	s_worker_t *threads;
	int n;
};

static void
s_batch_free(dg_room_batch_t *b)
{
	if (b) {
		free(b->rooms);
		free(b);
	}
}

/* Run one batch on copies of its items: the control loop may read the
 * rooms meanwhile, never their items. */
static void
s_run(dg_workers_t *self, dg_room_batch_t *b)
{
	dg_stage_item_t *items = calloc(b->n, sizeof *items);

	if (!items) {
		for (size_t i = 0; i < b->n; i++)
			snprintf(dg_room_item(b->rooms[i])->error,
			    sizeof items[0].error, "out of memory");
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		items[i] = *dg_room_item(b->rooms[i]);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = self->ops->run(self->plugin, items, b->n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	b->compute_s = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (size_t i = 0; i < b->n; i++) {
		dg_stage_item_t *it = dg_room_item(b->rooms[i]);
		*it = items[i];
		if (rc < 0 && !*it->error)
			snprintf(it->error, sizeof it->error,
			    "stage run failed");
	}
	free(items);
}

static void *
s_thread(void *arg)
{
	s_worker_t *w = arg;
	dg_workers_t *self = w->self;
	char name[16];

	snprintf(name, sizeof name, "worker%d", w->index);
	if (!dg_thread_register(name))
		dg_log_warn("%s: the thread registry is full (%d): its stalls "
		    "go unseen", name, DG_THREADS_MAX);
	pthread_mutex_lock(&self->lock);
	for (;;) {
		while (!self->stop && zlistx_size(self->todo) == 0)
			pthread_cond_wait(&self->cond, &self->lock);
		if (self->stop)
			break;
		dg_room_batch_t *b = zlistx_first(self->todo);
		zlistx_delete(self->todo, zlistx_cursor(self->todo));
		pthread_mutex_unlock(&self->lock);

		/* A batch shows its first room. */
		dg_thread_set(DG_THREAD_BUSY, dg_room_id(b->rooms[0]));
		s_run(self, b);
		dg_thread_set(DG_THREAD_IDLE, 0);

		pthread_mutex_lock(&self->lock);
		zlistx_add_end(self->finished, b);
		uint64_t one = 1;
		if (write(self->donefd, &one, sizeof one) < 0)
			dg_log_error("worker: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&self->lock);
	dg_thread_unregister();
	return NULL;
}

dg_workers_t *
dg_workers_new(int n, const dg_stage_ops_t *ops, void *plugin)
{
	dg_workers_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->ops = ops;
	self->plugin = plugin;
	self->donefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&self->lock, NULL);
	pthread_cond_init(&self->cond, NULL);
	self->todo = zlistx_new();
	self->finished = zlistx_new();
	self->threads = calloc((size_t)n, sizeof *self->threads);
	if (self->donefd < 0 || !self->todo || !self->finished ||
	    !self->threads) {
		dg_workers_destroy(&self);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		self->threads[i].self = self;
		self->threads[i].index = i;
		if (pthread_create(&self->threads[i].thread, NULL, s_thread,
		    &self->threads[i]) != 0) {
			dg_workers_destroy(&self);
			return NULL;
		}
		self->n = i + 1;
	}
	return self;
}

void
dg_workers_destroy(dg_workers_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_workers_t *self = *self_p;
	pthread_mutex_lock(&self->lock);
	self->stop = true;
	pthread_cond_broadcast(&self->cond);
	pthread_mutex_unlock(&self->lock);
	for (int i = 0; i < self->n; i++)
		pthread_join(self->threads[i].thread, NULL);
	free(self->threads);
	dg_room_batch_t *b;
	while (self->todo && (b = zlistx_first(self->todo))) {
		zlistx_delete(self->todo, zlistx_cursor(self->todo));
		s_batch_free(b);
	}
	while (self->finished && (b = zlistx_first(self->finished))) {
		zlistx_delete(self->finished, zlistx_cursor(self->finished));
		s_batch_free(b);
	}
	zlistx_destroy(&self->todo);
	zlistx_destroy(&self->finished);
	if (self->donefd >= 0)
		close(self->donefd);
	pthread_mutex_destroy(&self->lock);
	pthread_cond_destroy(&self->cond);
	free(self);
	*self_p = NULL;
}

int
dg_workers_fd(const dg_workers_t *self)
{
	return self->donefd;
}

int
dg_workers_count(const dg_workers_t *self)
{
	return self->n;
}

bool
dg_workers_free(const dg_workers_t *self)
{
	return self->busy < self->n;
}

void
dg_workers_run(dg_workers_t *self, dg_room_batch_t *b)
{
	pthread_mutex_lock(&self->lock);
	zlistx_add_end(self->todo, b);
	self->busy++;
	pthread_cond_signal(&self->cond);
	pthread_mutex_unlock(&self->lock);
}

dg_room_batch_t *
dg_workers_next_done(dg_workers_t *self)
{
	uint64_t n;

	if (read(self->donefd, &n, sizeof n) < 0 && errno != EAGAIN)
		dg_log_error("workers: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&self->lock);
	dg_room_batch_t *b = zlistx_first(self->finished);
	if (b) {
		zlistx_delete(self->finished, zlistx_cursor(self->finished));
		self->busy--;
	}
	pthread_mutex_unlock(&self->lock);
	return b;
}
