/*  y4m.h: write a YUV4MPEG2 video (4:2:0, full-range "C420jpeg") the way
 *  the ref decoder needs it: into a temporary name that is renamed into
 *  place only when complete, so a reader never sees half a file, with the
 *  XXH3-128 of the contents computed on the way out rather than by reading
 *  the file back.
 *
 *  The caller fills one frame buffer (Y, then U, then V planes) and writes
 *  it as many times as the video holds that picture.  */
#ifndef DG_Y4M_H
#define DG_Y4M_H

#include <stddef.h>
#include <stdint.h>

typedef struct _dg_y4m_t dg_y4m_t;

/* Bytes of a file of `frames` pictures of width x height (both even). */
uint64_t dg_y4m_size(int width, int height, int64_t frames);

/* Start `path` (through a temporary name beside it).  NULL with a reason
 * when the file cannot be created or the size is not even. */
dg_y4m_t *dg_y4m_new(const char *path, int width, int height,
    int64_t frames, char *why, size_t whysize);

/* Discards the file unless dg_y4m_commit succeeded. */
void dg_y4m_destroy(dg_y4m_t **self_p);

/* The frame buffer: width*height bytes of Y, then U and V of
 * (width/2)*(height/2) bytes each. */
uint8_t *dg_y4m_frame(dg_y4m_t *self);

/* Append the frame buffer `count` times.  0, or -1 with a reason. */
int dg_y4m_write(dg_y4m_t *self, int64_t count, char *why, size_t whysize);

/* Check that every frame was written, close and rename into place.  The
 * file's size in `bytes`, its hex XXH3-128 (high half first, 32 digits)
 * in `digest` (at least 33 bytes).  0, or -1 with a reason. */
int dg_y4m_commit(dg_y4m_t *self, uint64_t *bytes, char *digest,
    size_t digestsize, char *why, size_t whysize);

/* Hex XXH3-128 of `len` bytes, as dg_y4m_commit prints it. */
void dg_y4m_digest(const void *data, size_t len, char *digest,
    size_t digestsize);

/* Size and hex XXH3-128 of a whole file another writer made (a Python
 * decoder's), as dg_y4m_commit reports them.  0, or -1 with a reason. */
int dg_y4m_digest_file(const char *path, uint64_t *bytes, char *digest,
    size_t digestsize, char *why, size_t whysize);

/* Remove the temporary files (.NAME.PID.tmp) that decoders killed
 * mid-write left in `dir`: those whose PID no longer runs.  Returns how
 * many were removed. */
int dg_y4m_collect(const char *dir);

/* The highest request id that names a file in `dir` ("12.y4m", or any
 * "12.EXT" a decoder wrote), 0 when none or no such folder: where a
 * controller's ids must start past, so that a new run never writes over
 * an earlier run's output. */
uint64_t dg_y4m_last_request(const char *dir);

#endif
