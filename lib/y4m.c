/*  y4m.c: see y4m.h.  */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "y4m.h"

#define FRAME_TAG     "FRAME\n"
#define FRAME_TAG_LEN 6

struct _dg_y4m_t {
	char *path, *tmp;
	int fd;                 /* -1 once closed */
	int64_t frames, written;
	uint64_t bytes;
	size_t frame_bytes;     /* planes only */
	uint8_t *buf;           /* FRAME_TAG then the planes: one write */
	XXH3_state_t *hash;
};

static int
s_header(char *buf, size_t size, int width, int height)
{
	/* F16:1 is Wan's frame rate; A1:1 square pixels; Ip progressive. */
	return snprintf(buf, size, "YUV4MPEG2 W%d H%d F16:1 Ip A1:1 C420jpeg\n",
	    width, height);
}

uint64_t
dg_y4m_size(int width, int height, int64_t frames)
{
	char head[96];
	uint64_t planes = (uint64_t)width * (uint64_t)height * 3 / 2;
	return (uint64_t)s_header(head, sizeof head, width, height) +
	    (uint64_t)frames * (FRAME_TAG_LEN + planes);
}

static int
s_write_all(dg_y4m_t *self, const void *data, size_t len, char *why,
    size_t whysize)
{
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(self->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whysize, "%s: write: %s", self->tmp,
			    strerror(errno));
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	XXH3_128bits_update(self->hash, data, len);
	self->bytes += len;
	return 0;
}

/* The temporary file, made here and nowhere else: O_EXCL|O_NOFOLLOW, so
 * that a link planted at its name in a shared folder is never written
 * through.  A regular file of ours there is a dead process's (it had
 * our pid): it goes.  Anything else is refused. */
static int
s_open_tmp(const char *tmp)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	struct stat st;
	int fd = open(tmp, flags, 0644);

	if (fd >= 0 || errno != EEXIST)
		return fd;
	if (lstat(tmp, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_uid == geteuid() && unlink(tmp) == 0)
		return open(tmp, flags, 0644);
	errno = EEXIST;
	return -1;
}

dg_y4m_t *
dg_y4m_new(const char *path, int width, int height, int64_t frames,
    char *why, size_t whysize)
{
	if (width <= 0 || height <= 0 || width % 2 || height % 2 ||
	    frames < 1) {
		snprintf(why, whysize, "%s: bad video size %dx%d x %" PRId64
		    " frames", path, width, height, frames);
		return NULL;
	}
	dg_y4m_t *self = calloc(1, sizeof *self);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	self->fd = -1;
	self->frames = frames;
	self->frame_bytes = (size_t)width * (size_t)height * 3 / 2;
	/* The pid keeps two decoders sharing a directory off each other's
	 * temporary files; the leading dot keeps globs off it. */
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	if (asprintf(&self->tmp, "%.*s.%s.%ld.tmp", dirlen, path,
	    path + dirlen, (long)getpid()) < 0)
		self->tmp = NULL;
	self->path = strdup(path);
	self->buf = malloc(FRAME_TAG_LEN + self->frame_bytes);
	self->hash = XXH3_createState();
	if (!self->tmp || !self->path || !self->buf || !self->hash) {
		snprintf(why, whysize, "out of memory");
		dg_y4m_destroy(&self);
		return NULL;
	}
	memcpy(self->buf, FRAME_TAG, FRAME_TAG_LEN);
	XXH3_128bits_reset(self->hash);
	self->fd = s_open_tmp(self->tmp);
	if (self->fd < 0) {
		snprintf(why, whysize, "%s: %s", self->tmp, errno == EEXIST ?
		    "exists and is not a file of ours (a link, or another "
		    "user's): not written through" : strerror(errno));
		dg_y4m_destroy(&self);
		return NULL;
	}
	char head[96];
	int n = s_header(head, sizeof head, width, height);
	if (s_write_all(self, head, (size_t)n, why, whysize) < 0) {
		dg_y4m_destroy(&self);
		return NULL;
	}
	return self;
}

void
dg_y4m_destroy(dg_y4m_t **self_p)
{
	dg_y4m_t *self = *self_p;
	if (!self)
		return;
	if (self->fd >= 0) {
		/* Still open: never committed, the half file goes. */
		close(self->fd);
		unlink(self->tmp);
	}
	if (self->hash)
		XXH3_freeState(self->hash);
	free(self->buf);
	free(self->tmp);
	free(self->path);
	free(self);
	*self_p = NULL;
}

uint8_t *
dg_y4m_frame(dg_y4m_t *self)
{
	return self->buf + FRAME_TAG_LEN;
}

int
dg_y4m_write(dg_y4m_t *self, int64_t count, char *why, size_t whysize)
{
	if (count < 0 || count > self->frames - self->written) {
		snprintf(why, whysize, "%s: %" PRId64 " more frames would make "
		    "%" PRId64 ", the video has %" PRId64, self->path, count,
		    self->written + count, self->frames);
		return -1;
	}
	for (int64_t i = 0; i < count; i++)
		if (s_write_all(self, self->buf, FRAME_TAG_LEN +
		    self->frame_bytes, why, whysize) < 0)
			return -1;
	self->written += count;
	return 0;
}

static void
s_hex(XXH128_hash_t h, char *digest, size_t digestsize)
{
	snprintf(digest, digestsize, "%016llx%016llx",
	    (unsigned long long)h.high64, (unsigned long long)h.low64);
}

int
dg_y4m_commit(dg_y4m_t *self, uint64_t *bytes, char *digest,
    size_t digestsize, char *why, size_t whysize)
{
	if (self->written != self->frames) {
		snprintf(why, whysize, "%s: %" PRId64 " frames written, %"
		    PRId64 " expected", self->path, self->written,
		    self->frames);
		return -1;
	}
	/* No fsync: the rename is for readers, not for crash safety, and a
	 * request whose file a crash lost is simply asked again. */
	int rc = close(self->fd);
	self->fd = -1;
	if (rc < 0) {
		snprintf(why, whysize, "%s: close: %s", self->tmp,
		    strerror(errno));
		unlink(self->tmp);
		return -1;
	}
	if (rename(self->tmp, self->path) < 0) {
		snprintf(why, whysize, "rename %s to %s: %s", self->tmp,
		    self->path, strerror(errno));
		unlink(self->tmp);
		return -1;
	}
	if (bytes)
		*bytes = self->bytes;
	if (digest)
		s_hex(XXH3_128bits_digest(self->hash), digest, digestsize);
	return 0;
}

void
dg_y4m_digest(const void *data, size_t len, char *digest, size_t digestsize)
{
	s_hex(XXH3_128bits(data, len), digest, digestsize);
}

int
dg_y4m_digest_file(const char *path, uint64_t *bytes, char *digest,
    size_t digestsize, char *why, size_t whysize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whysize, "%s: %s", path, strerror(errno));
		return -1;
	}
	XXH3_state_t *h = XXH3_createState();
	char *buf = malloc(1 << 20);
	uint64_t total = 0;
	int rc = -1;
	if (!h || !buf) {
		snprintf(why, whysize, "out of memory");
		goto done;
	}
	XXH3_128bits_reset(h);
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whysize, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	*bytes = total;
	s_hex(XXH3_128bits_digest(h), digest, digestsize);
	rc = 0;
done:
	free(buf);
	XXH3_freeState(h);
	close(fd);
	return rc;
}

int
dg_y4m_collect(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int removed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		size_t n = strlen(name);
		if (name[0] != '.' || n < 6 || strcmp(name + n - 4, ".tmp"))
			continue;
		/* .NAME.PID.tmp: the PID sits between the last two dots. */
		const char *end = name + n - 4, *p = end;
		while (p > name && p[-1] >= '0' && p[-1] <= '9')
			p--;
		if (p == end || p == name || p[-1] != '.')
			continue;
		long pid = strtol(p, NULL, 10);
		/* Alive, or not ours to judge (EPERM): leave it. */
		if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if (unlink(path) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

uint64_t
dg_y4m_last_request(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t last = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		char *end;
		if (name[0] < '0' || name[0] > '9')
			continue;
		errno = 0;
		unsigned long long id = strtoull(name, &end, 10);
		if (*end == '.' && errno == 0 && id > last)
			last = id;
	}
	closedir(d);
	return last;
}
