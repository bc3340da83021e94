/*  xfer_local.c: zero copy on one host (ARCHITECTURE.md, "Zero copy on
 *  one host").  A receiver offers its pool; a sender on the same host
 *  maps it and writes its output there, and the transfer becomes a
 *  handoff of the extent.
 *
 *  The receiver listens on an abstract unix socket named in its
 *  manifests (`share`: "disagg-pool-PID-NONCE", so a restarted receiver
 *  is never mistaken for the last one).  Abstract names have no file
 *  modes, so the check is the kernel's word on the caller: both ends
 *  read SO_PEERCRED and talk only to their own user.  On connection the
 *  receiver sends its pool: a sealed memfd over SCM_RIGHTS (the sender
 *  checks it like a trusted file: a regular file of ours, of the size
 *  announced, that cannot shrink under its mapping), or a CUDA IPC
 *  handle for device memory.  The connection then stays open, so each
 *  side learns of the other's death from the kernel (POLLHUP), at once.
 *
 *  On it travel 16-byte records (SOCK_SEQPACKET, one per message):
 *
 *      sender -> receiver   HOLD token     keep this extent for my write
 *                           HANDOFF token  it is written: the receive is done
 *                           DROP token     I let go without finishing
 *      receiver -> sender   ACK / NACK token, the answer to a HOLD
 *
 *  A receive held by a sender that ends otherwise (cancel, deadline) is
 *  kept out of the pool until that sender says HANDOFF or DROP, or dies:
 *  its worker may still be writing there.  A dead receiver's pool stays
 *  mapped (writes to it are harmless) until the last lease or send on
 *  it ends, then is unmapped.
 *
 *  Written by hand: no library does fd passing with these checks.  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cuda.h"
#include "log.h"
#include "xfer.h"
#include "xfer_impl.h"

#define HELLO_MAGIC     "DGSHARE1"
#define HOLD_WAIT_MS    100     /* a receiver's answer to a HOLD */
#define HOLD_PAUSE_MS   1000    /* no holds after one went unanswered */
#define HELLO_WAIT_MS   500     /* its pool, once connected */
#define HELLO_RETRY_MS  5000    /* after a receiver that did not say it */
#define COPY_TURN       4       /* chunks a local copy moves per turn */
#define REFUSED_KEEP    64      /* names known not to be on this host */

enum { W_HOLD = 1, W_HANDOFF, W_DROP, W_ACK, W_NACK };

typedef struct {
	uint32_t op;
	uint32_t pad;
	uint64_t token;
} s_word_t;

typedef struct {
	char magic[8];
	uint64_t size;
	uint32_t device;        /* 1: a CUDA IPC handle, no fd */
	int32_t cuda_device;
	unsigned char ipc[DG_CUDA_IPC_HANDLE];
} s_hello_t;

/* A sender's connection, as the receiver's share thread keeps it. */
typedef struct {
	int fd;
	uint32_t serial;        /* names it in held_by (never 0) */
} s_conn_t;

static int
s_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);

	if (n == 0 || n + 1 > sizeof sa->sun_path)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, n);      /* abstract: a NUL first */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return 0;
}

static bool
s_same_user(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    cred.uid == geteuid();
}

static int
s_put(int fd, uint32_t op, uint64_t token)
{
	s_word_t w = { .op = op, .token = token };

	return send(fd, &w, sizeof w, MSG_NOSIGNAL | MSG_DONTWAIT) ==
	    (ssize_t)sizeof w ? 0 : -1;
}

/* ---- the receiver's side (share thread) -------------------------------- */

/* Under rx_lock: the open receive `token` names, or NULL. */
static s_recv_t *
s_recv_of(dg_xfer_t *self, uint64_t token, uint32_t *index)
{
	uint32_t i = (uint32_t)token & 0xffff;
	uint16_t gen = (uint16_t)(token >> 16);

	if (token >> 32 || i >= self->rx_hi)
		return NULL;
	s_recv_t *rx = &self->recvs[i];
	if (!rx->active || rx->gen != gen)
		return NULL;
	*index = i;
	return rx;
}

/* Under rx_lock: give back the kept extents of `conn` (all of them, or
 * the one of `token`). */
static void
s_unkeep(dg_xfer_t *self, uint32_t conn, bool all, uint64_t token)
{
	for (s_kept_t **pp = &self->kept; *pp;) {
		s_kept_t *k = *pp;
		if (k->conn != conn || (!all && k->token != token)) {
			pp = &k->next;
			continue;
		}
		(void)dg_pool_free(self->pool, &k->ext);
		*pp = k->next;
		free(k);
	}
}

bool
dg_xfer_local_keep(dg_xfer_t *self, uint32_t index)
{
	s_recv_t *rx = &self->recvs[index];

	if (!rx->held_by)
		return false;
	s_kept_t *k = calloc(1, sizeof *k);
	if (!k) {
		/* Better a slot another room may share for a while than
		 * one lost for good: the sender is told to stop anyway. */
		dg_log_error("xfer: out of memory keeping slot %u for a local "
		    "sender; freeing it", rx->ext.slot);
		return false;
	}
	k->token = ((uint64_t)rx->gen << 16) | index;
	k->conn = rx->held_by;
	k->ext = rx->ext;
	k->next = self->kept;
	self->kept = k;
	return true;
}

static void
s_on_word(dg_xfer_t *self, s_conn_t *c, const s_word_t *w)
{
	uint32_t index;

	pthread_mutex_lock(&self->rx_lock);
	s_recv_t *rx = s_recv_of(self, w->token, &index);
	switch (w->op) {
	case W_HOLD: {
		bool ok = rx && !rx->held_by && rx->nrecv == 0;
		if (ok)
			rx->held_by = c->serial;
		pthread_mutex_unlock(&self->rx_lock);
		if (s_put(c->fd, ok ? W_ACK : W_NACK, w->token) < 0)
			dg_log_warn("xfer: cannot answer a local sender: %s",
			    strerror(errno));
		return;
	}
	case W_HANDOFF:
		if (rx && (!rx->held_by || rx->held_by == c->serial)) {
			/* The sender wrote it all through its mapping; the
			 * write before its message makes the bytes ours. */
			rx->nrecv = rx->nchunks;
			rx->bytes = rx->bytes_total;
			rx->held_by = 0;
			dg_xfer_recv_finish(self, index, DG_XFER_DONE, NULL);
		} else {
			s_unkeep(self, c->serial, false, w->token);
		}
		break;
	case W_DROP:
		if (rx && rx->held_by == c->serial)
			rx->held_by = 0;
		else
			s_unkeep(self, c->serial, false, w->token);
		break;
	default:
		dg_log_warn("xfer: local sender sent op %u; ignored", w->op);
		break;
	}
	pthread_mutex_unlock(&self->rx_lock);
}

/* A sender went away: what it held fails or goes back to the pool. */
static void
s_on_gone(dg_xfer_t *self, s_conn_t *c)
{
	pthread_mutex_lock(&self->rx_lock);
	for (uint32_t i = 0; i < self->rx_hi; i++) {
		s_recv_t *rx = &self->recvs[i];
		if (rx->active && rx->held_by == c->serial) {
			rx->held_by = 0;
			dg_xfer_recv_finish(self, i, DG_XFER_FAILED,
			    "the local sender holding it went away");
		}
	}
	s_unkeep(self, c->serial, true, 0);
	pthread_mutex_unlock(&self->rx_lock);
	close(c->fd);
}

static int
s_hello(dg_xfer_t *self, int fd)
{
	s_hello_t h = { .size = dg_pool_size(self->pool) };
	int pfd = dg_pool_fd(self->pool);
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &h, sizeof h };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	memcpy(h.magic, HELLO_MAGIC, sizeof h.magic);
	if (pfd >= 0) {
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof cbuf;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pfd, sizeof pfd);
	} else {
		char why[160];
		h.device = 1;
		h.cuda_device = dg_pool_device(self->pool);
		if (dg_cuda_ipc_handle(dg_pool_base(self->pool), h.cuda_device,
		    h.ipc, why, sizeof why) < 0) {
			dg_log_warn("xfer: cannot share the device pool: %s",
			    why);
			return -1;
		}
	}
	return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) ==
	    (ssize_t)sizeof h ? 0 : -1;
}

/* Senders we write to: a hang-up means the receiver died. */
static size_t
s_poll_maps(dg_xfer_t *self, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&self->map_lock);
	for (s_map_t *m = self->maps; m && n < max; m = m->next)
		if (m->conn >= 0 && !atomic_load(&m->dead))
			fds[n++] = (struct pollfd){ .fd = m->conn };
	pthread_mutex_unlock(&self->map_lock);
	return n;
}

static void
s_unmap(s_map_t *m)
{
	if (m->base) {
		if (m->device)
			dg_cuda_ipc_close(m->base);
		else
			munmap(m->base, m->size);
	}
	if (m->conn >= 0)
		close(m->conn);
	free(m);
}

/* Unmap the pools of dead receivers no one uses any more. */
static void
s_reap(dg_xfer_t *self, const struct pollfd *fds, size_t n)
{
	pthread_mutex_lock(&self->map_lock);
	for (size_t i = 0; i < n; i++) {
		if (!(fds[i].revents & (POLLHUP | POLLERR | POLLIN)))
			continue;
		for (s_map_t *m = self->maps; m; m = m->next)
			if (m->conn == fds[i].fd && !atomic_load(&m->dead)) {
				atomic_store(&m->dead, true);
				dg_log_info("xfer: receiver %s went away; its "
				    "pool is unmapped once unused", m->name);
			}
	}
	for (s_map_t **pp = &self->maps; *pp;) {
		s_map_t *m = *pp;
		if (atomic_load(&m->dead) && m->refs == 0 && !m->busy) {
			*pp = m->next;
			s_unmap(m);
		} else {
			pp = &m->next;
		}
	}
	pthread_mutex_unlock(&self->map_lock);
}

static void *
s_share_loop(void *arg)
{
	dg_xfer_t *self = arg;
	s_conn_t *conns = NULL;
	size_t nconns = 0, cap = 0;
	uint32_t serial = 0;
	struct pollfd *fds = NULL;
	size_t fcap = 0;

	dg_thread_register("share");
	while (!atomic_load(&self->stop)) {
		size_t want = 2 + nconns + 256;
		if (want > fcap) {
			struct pollfd *f = realloc(fds, want * sizeof *f);
			if (!f) {
				dg_log_error("xfer: share thread out of memory");
				break;
			}
			fds = f;
			fcap = want;
		}
		fds[0] = (struct pollfd){ .fd = self->share_wake, .events =
		    POLLIN };
		fds[1] = (struct pollfd){ .fd = self->share_fd, .events =
		    POLLIN };
		for (size_t i = 0; i < nconns; i++)
			fds[2 + i] = (struct pollfd){ .fd = conns[i].fd,
			    .events = POLLIN };
		size_t nmaps = s_poll_maps(self, fds + 2 + nconns, 256);
		dg_thread_set(DG_THREAD_IDLE, 0);
		if (poll(fds, 2 + nconns + nmaps, -1) < 0 && errno != EINTR)
			break;
		dg_thread_set(DG_THREAD_BUSY, 0);
		if (fds[0].revents & POLLIN)
			dg_xfer_drain_fd(self->share_wake);
		/* The maps' entries follow the connections polled, however
		 * many of those go below. */
		size_t polled = nconns;
		for (size_t i = nconns; i-- > 0;) {
			short ev = fds[2 + i].revents;
			if (!ev)
				continue;
			s_word_t w;
			ssize_t got = ev & POLLIN ? recv(conns[i].fd, &w,
			    sizeof w, MSG_DONTWAIT) : 0;
			if (got == (ssize_t)sizeof w) {
				s_on_word(self, &conns[i], &w);
				continue;
			}
			if (got < 0 && errno == EAGAIN)
				continue;
			s_on_gone(self, &conns[i]);
			conns[i] = conns[--nconns];
		}
		s_reap(self, fds + 2 + polled, nmaps);
		if (!(fds[1].revents & POLLIN))
			continue;
		int c = accept4(self->share_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		if (!s_same_user(c)) {
			dg_log_warn("xfer: refused a pool share to another "
			    "user");
			close(c);
			continue;
		}
		if (nconns == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			s_conn_t *nc = realloc(conns, ncap * sizeof *nc);
			if (!nc) {
				close(c);
				continue;
			}
			conns = nc;
			cap = ncap;
		}
		if (s_hello(self, c) < 0) {
			close(c);
			continue;
		}
		if (++serial == 0)
			serial = 1;
		conns[nconns++] = (s_conn_t){ .fd = c, .serial = serial };
	}
	for (size_t i = 0; i < nconns; i++)
		close(conns[i].fd);
	free(conns);
	free(fds);
	dg_thread_unregister();
	return NULL;
}

int
dg_xfer_local_open(dg_xfer_t *self, char *why, size_t whysize)
{
	self->share_fd = self->share_wake = -1;
	pthread_mutex_init(&self->map_lock, NULL);
	if (!self->conf.zero_copy)
		return 0;
	self->share_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (self->share_wake < 0) {
		snprintf(why, whysize, "eventfd: %s", strerror(errno));
		return -1;
	}
	bool device = dg_pool_kind(self->pool) == DG_MEM_DEVICE;
	if (dg_pool_fd(self->pool) < 0 && !(device && dg_cuda_built()))
		goto thread;    /* we can still map others' pools */
	uint64_t nonce;
	if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) {
		snprintf(why, whysize, "getrandom: %s", strerror(errno));
		return -1;
	}
	snprintf(self->share_name, sizeof self->share_name,
	    "disagg-pool-%ld-%016llx", (long)getpid(),
	    (unsigned long long)nonce);
	struct sockaddr_un sa;
	socklen_t len = 0;
	(void)s_addr(self->share_name, &sa, &len);
	self->share_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (self->share_fd < 0 || bind(self->share_fd, (struct sockaddr *)&sa,
	    len) < 0 || listen(self->share_fd, 64) < 0) {
		snprintf(why, whysize, "share socket: %s", strerror(errno));
		return -1;
	}
	self->sharing = true;
thread:;
	int rc = pthread_create(&self->share_thread, NULL, s_share_loop, self);
	if (rc) {
		snprintf(why, whysize, "share thread: %s", strerror(rc));
		return -1;
	}
	self->share_started = true;
	return 0;
}

void
dg_xfer_local_close(dg_xfer_t *self)
{
	if (self->share_started) {
		dg_xfer_kick(self->share_wake);
		pthread_join(self->share_thread, NULL);
		self->share_started = false;
	}
	while (self->maps) {
		s_map_t *m = self->maps;
		self->maps = m->next;
		s_unmap(m);
	}
	while (self->kept) {
		s_kept_t *k = self->kept;
		self->kept = k->next;
		free(k);
	}
	if (self->share_fd >= 0)
		close(self->share_fd);
	if (self->share_wake >= 0)
		close(self->share_wake);
	self->share_fd = self->share_wake = -1;
	pthread_mutex_destroy(&self->map_lock);
}

/* ---- the sender's side ------------------------------------------------- */

/* Connect to `name` and map its pool: a map with its connection, or one
 * with conn -1 when the name is not on this host or not to be trusted. */
static s_map_t *
s_connect(dg_xfer_t *self, const char *name)
{
	s_map_t *m = calloc(1, sizeof *m);
	struct sockaddr_un sa;
	socklen_t len = 0;
	int fd = -1, pfd = -1;

	if (!m)
		return NULL;
	snprintf(m->name, sizeof m->name, "%s", name);
	m->conn = -1;
	if (s_addr(name, &sa, &len) < 0)
		return m;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0)
		goto refuse;    /* another host, or gone: the fabric then */
	if (!s_same_user(fd)) {
		dg_log_warn("xfer: pool %s belongs to another user; not "
		    "mapped", name);
		goto refuse;
	}
	struct timeval tv = { HELLO_WAIT_MS / 1000, HELLO_WAIT_MS % 1000 *
	    1000 };
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	s_hello_t h;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &h, sizeof h };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	ssize_t got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		/* Alive but not answering (stopped?): the fabric for now. */
		dg_log_warn("xfer: pool %s sent no hello within %d ms; trying "
		    "again in %d s", name, HELLO_WAIT_MS, HELLO_RETRY_MS / 1000);
		m->retry_at = dg_xfer_now_ms() + HELLO_RETRY_MS;
		goto refuse;
	}
	if (got != (ssize_t)sizeof h ||
	    memcmp(h.magic, HELLO_MAGIC, sizeof h.magic) != 0) {
		dg_log_warn("xfer: pool %s sent no valid hello", name);
		goto refuse;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
	    cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&pfd, CMSG_DATA(cm), sizeof pfd);
	if (h.device) {
		char why[160];
		m->base = dg_cuda_ipc_open(h.ipc, h.cuda_device, why,
		    sizeof why);
		if (!m->base) {
			dg_log_warn("xfer: pool %s: %s", name, why);
			goto refuse;
		}
		m->device = true;
	} else {
		struct stat st;
		int seals = pfd >= 0 ? fcntl(pfd, F_GET_SEALS) : -1;
		if (pfd < 0 || fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid() || (uint64_t)st.st_size != h.size ||
		    seals < 0 || !(seals & F_SEAL_SHRINK)) {
			dg_log_warn("xfer: pool %s: its memory is not a sealed "
			    "memfd of ours of %llu bytes; not mapped", name,
			    (unsigned long long)h.size);
			goto refuse;
		}
		void *p = mmap(NULL, h.size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, pfd, 0);
		if (p == MAP_FAILED) {
			dg_log_warn("xfer: pool %s: mmap: %s", name,
			    strerror(errno));
			goto refuse;
		}
		m->base = p;
		close(pfd);
		pfd = -1;
	}
	m->size = h.size;
	m->conn = fd;
	(void)self;
	dg_log_info("xfer: receiver pool %s mapped (%llu bytes%s)", name,
	    (unsigned long long)m->size, m->device ? ", CUDA IPC" : "");
	return m;
refuse:
	if (pfd >= 0)
		close(pfd);
	if (fd >= 0)
		close(fd);
	return m;
}

s_map_t *
dg_xfer_map_get(dg_xfer_t *self, const char *share)
{
	if (!self->conf.zero_copy || !share || !*share || !self->share_started)
		return NULL;
	if (strcmp(share, self->share_name) == 0)
		return NULL;    /* our own pool: the fabric loops back */
	pthread_mutex_lock(&self->map_lock);
	size_t refused = 0;
	for (s_map_t **pp = &self->maps; *pp; pp = &(*pp)->next) {
		s_map_t *m = *pp;
		if (strcmp(m->name, share) != 0) {
			refused += m->conn < 0;
			continue;
		}
		if (m->conn < 0 && m->retry_at &&
		    dg_xfer_now_ms() >= m->retry_at) {
			*pp = m->next;
			free(m);
			break;          /* forgotten: connect again below */
		}
		if (m->conn < 0 || atomic_load(&m->dead)) {
			pthread_mutex_unlock(&self->map_lock);
			return NULL;
		}
		m->refs++;
		pthread_mutex_unlock(&self->map_lock);
		return m;
	}
	pthread_mutex_unlock(&self->map_lock);
	/* Connecting is local and quick; done outside the lock, so the
	 * share thread never waits on it. */
	s_map_t *m = s_connect(self, share);
	if (!m)
		return NULL;
	pthread_mutex_lock(&self->map_lock);
	if (m->conn < 0 && refused >= REFUSED_KEEP) {
		/* Forget the oldest refusal: names are never reused, so
		 * one forgotten costs at most a connect that fails again. */
		s_map_t **pp = &self->maps, **last = NULL;
		for (; *pp; pp = &(*pp)->next)
			if ((*pp)->conn < 0)
				last = pp;
		if (last) {
			s_map_t *old = *last;
			*last = old->next;
			free(old);
		}
	}
	m->next = self->maps;
	self->maps = m;
	bool ok = m->conn >= 0;
	if (ok)
		m->refs++;
	pthread_mutex_unlock(&self->map_lock);
	if (!ok)
		return NULL;
	pthread_mutex_lock(&self->st_lock);
	self->stats.peers_mapped++;
	pthread_mutex_unlock(&self->st_lock);
	dg_xfer_kick(self->share_wake);         /* watch it for a hang-up */
	return m;
}

void
dg_xfer_map_unref(dg_xfer_t *self, s_map_t *map)
{
	pthread_mutex_lock(&self->map_lock);
	bool reap = --map->refs == 0 && atomic_load(&map->dead);
	pthread_mutex_unlock(&self->map_lock);
	if (reap)
		dg_xfer_kick(self->share_wake);
}

bool
dg_xfer_map_covers(const s_map_t *map, const dg_manifest_msg_t *m)
{
	for (size_t i = 0; i < m->n_tensors; i++) {
		const dg_tensor_row_t *t = &m->tensors[i];
		if (t->offset > map->size || t->bytes > map->size - t->offset)
			return false;
	}
	return true;
}

void
dg_xfer_local_drop(dg_xfer_t *self, s_map_t *map, uint64_t token)
{
	(void)self;
	if (!atomic_load(&map->dead) && s_put(map->conn, W_DROP, token) < 0)
		dg_log_debug("xfer: drop to %s: %s", map->name,
		    strerror(errno));
}

/* Wait for the answer to our HOLD of `token`; older answers (to holds
 * that timed out) are skipped. */
static bool
s_hold(s_map_t *map, uint64_t token)
{
	if (s_put(map->conn, W_HOLD, token) < 0) {
		errno = EPIPE;
		return false;
	}
	int64_t until = dg_xfer_now_ms() + HOLD_WAIT_MS;
	for (;;) {
		int64_t left = until - dg_xfer_now_ms();
		struct pollfd p = { .fd = map->conn, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			errno = ETIMEDOUT;
			return false;
		}
		if (!(p.revents & POLLIN)) {
			errno = EPIPE;
			return false;
		}
		s_word_t w;
		if (recv(map->conn, &w, sizeof w, MSG_DONTWAIT) !=
		    (ssize_t)sizeof w) {
			errno = EPIPE;
			return false;
		}
		if (w.token == token) {
			errno = 0;
			return w.op == W_ACK;
		}
	}
}

dg_xfer_lease_t *
dg_xfer_lease(dg_xfer_t *self, const dg_manifest_msg_t *m, void **ptrs)
{
	s_map_t *map = dg_xfer_map_get(self, m->share);

	if (!map)
		return NULL;
	/* A receiver that did not answer (stopped, or swamped) is not
	 * asked again for a while: the control loop must not wait on it
	 * room after room, and the send's copy does not need it. */
	dg_xfer_lease_t *l = dg_xfer_now_ms() >= map->hold_after ?
	    calloc(1, sizeof *l) : NULL;
	if (!l || !dg_xfer_map_covers(map, m)) {
		free(l);
		dg_xfer_map_unref(self, map);
		return NULL;
	}
	/* `busy` keeps the share thread from unmapping it under us. */
	pthread_mutex_lock(&self->map_lock);
	map->busy = true;
	pthread_mutex_unlock(&self->map_lock);
	bool held = s_hold(map, m->token);
	pthread_mutex_lock(&self->map_lock);
	map->busy = false;
	pthread_mutex_unlock(&self->map_lock);
	if (!held && errno == ETIMEDOUT) {
		map->hold_after = dg_xfer_now_ms() + HOLD_PAUSE_MS;
		dg_log_warn("xfer: receiver %s did not answer a hold in %d ms; "
		    "copying to it for %d ms", map->name, HOLD_WAIT_MS,
		    HOLD_PAUSE_MS);
	}
	if (!held) {
		/* A late ACK would leave it held: let go to be sure. */
		dg_xfer_local_drop(self, map, m->token);
		free(l);
		dg_xfer_map_unref(self, map);
		return NULL;
	}
	l->map = map;
	l->token = m->token;
	snprintf(l->share, sizeof l->share, "%s", m->share);
	for (size_t i = 0; i < m->n_tensors; i++)
		ptrs[i] = map->base + m->tensors[i].offset;
	return l;
}

void
dg_xfer_lease_drop(dg_xfer_t *self, dg_xfer_lease_t **lease_p)
{
	if (!lease_p || !*lease_p)
		return;
	dg_xfer_lease_t *l = *lease_p;
	dg_xfer_local_drop(self, l->map, l->token);
	dg_xfer_map_unref(self, l->map);
	free(l);
	*lease_p = NULL;
}

int
dg_xfer_local_handoff(dg_xfer_t *self, s_send_t *tx, uint64_t *id)
{
	dg_xfer_event_t ev = {
		.dir = DG_XFER_SEND, .status = DG_XFER_DONE, .id = tx->id,
		.room = tx->room, .phase = tx->phase,
		.bytes = tx->bytes_total, .attempts = 1,
	};

	if (atomic_load(&tx->map->dead))
		return -1;      /* the progress thread says why, in order */
	if (s_put(tx->map->conn, W_HANDOFF, tx->token) < 0)
		return -1;
	ev.ms = dg_xfer_now_ms() - tx->started;
	ev.us = dg_xfer_now_us() - tx->started_us;
	pthread_mutex_lock(&self->st_lock);
	self->stats.handoffs++;
	self->stats.sends_done++;
	self->stats.bytes_sent += tx->bytes_total;
	pthread_mutex_unlock(&self->st_lock);
	dg_xfer_map_unref(self, tx->map);
	*id = tx->id;
	dg_xfer_send_free(tx);
	dg_xfer_emit(self, &ev);
	return 0;
}

int
dg_xfer_local_post(dg_xfer_t *self, s_send_t *tx)
{
	char *base = dg_pool_base(self->pool);
	int moved = 0;

	if (atomic_load(&tx->map->dead)) {
		snprintf(tx->error, sizeof tx->error, "local receiver %s went "
		    "away", tx->map->name);
		dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
		return -1;
	}
	/* A copy goes a few chunks a turn, so other transfers keep
	 * moving beside a large one. */
	while (!tx->placed && tx->next_chunk < tx->nchunks &&
	    moved < COPY_TURN) {
		uint32_t c = tx->next_chunk++;
		uint64_t off, clen;
		size_t t = dg_xfer_chunk_at(tx->ntensors, tx->first, tx->len,
		    tx->chunk_size, c, &off, &clen);
		void *dst = tx->map->base + tx->dst[t] + off;
		const void *src = base + tx->src[t] + off;
		if (tx->map->device || dg_pool_kind(self->pool) ==
		    DG_MEM_DEVICE) {
			char why[160];
			if (dg_cuda_copy(dst, src, clen, why, sizeof why) < 0) {
				snprintf(tx->error, sizeof tx->error, "%s", why);
				dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
				return -1;
			}
		} else {
			memcpy(dst, src, clen);
		}
		tx->done[c] = 1;
		tx->ndone++;
		tx->bytes_done += clen;
		moved++;
	}
	if (!tx->placed && tx->next_chunk < tx->nchunks)
		return moved;
	if (tx->placed) {
		tx->next_chunk = tx->ndone = tx->nchunks;
		tx->bytes_done = tx->bytes_total;
	}
	if (s_put(tx->map->conn, W_HANDOFF, tx->token) < 0) {
		if (errno == EAGAIN)
			return moved;   /* its queue is full: next turn */
		snprintf(tx->error, sizeof tx->error, "local receiver %s: %s",
		    tx->map->name, strerror(errno));
		dg_xfer_send_finish(self, tx, DG_XFER_FAILED);
		return -1;
	}
	STAT_ADD(self, bytes_sent, tx->bytes_total);
	dg_xfer_send_finish(self, tx, DG_XFER_DONE);
	return -1;              /* ended: tx is freed */
}
