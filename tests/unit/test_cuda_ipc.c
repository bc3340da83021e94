/*  test_cuda_ipc.c: zero copy between device pools on one host, through
 *  CUDA IPC (xfer_local.c).  Without a CUDA build the calls fail with a
 *  reason naming the fix.  With a device (only on a GPU machine; skipped
 *  elsewhere, as GPU-only tests are) a receiver in a second process
 *  shares its device pool, this process maps it, writes a tensor there
 *  with cudaMemcpy and hands it over, and the receiver finds every byte.
 *  It also skips when the fabric cannot register device memory
 *  (Debian's libfabric 1.17): such a stage gets a pinned host pool, and
 *  its zero copy is the memfd's.  */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda.h"
#include "log.h"
#include "pool.h"
#include "xfer.h"

#define BYTES (1u << 20)

static void
test_without_cuda(void **state)
{
	(void)state;
	unsigned char h[DG_CUDA_IPC_HANDLE];
	char why[160] = "";

	if (dg_cuda_built())
		skip();
	assert_int_equal(dg_cuda_ipc_handle(NULL, 0, h, why, sizeof why), -1);
	assert_non_null(strstr(why, "make CUDA=1"));
	assert_null(dg_cuda_ipc_open(h, 0, why, sizeof why));
	assert_int_equal(dg_cuda_copy(h, h, 1, why, sizeof why), -1);
}

static dg_xfer_t *
s_engine(dg_pool_t *pool, char *why, size_t whysize)
{
	dg_fabric_conf_t conf = { .rails = 1, .chunk = BYTES, .inflight = 4,
	    .transfer_timeout_ms = 10000, .transfer_attempts = 1,
	    .zero_copy = true };

	snprintf(conf.provider, sizeof conf.provider, "shm");
	return dg_xfer_new(&conf, pool, "127.0.0.1", why, whysize);
}

/* The receiver: a device pool, the manifest down the pipe, and 0 when
 * every byte it is handed is 0xA5. */
static int
s_receiver(int fd)
{
	char why[256];
	dg_pool_t *pool = dg_pool_new_shared(4 * BYTES, BYTES, DG_MEM_DEVICE,
	    0, true, why, sizeof why);
	dg_xfer_t *x = pool ? s_engine(pool, why, sizeof why) : NULL;
	dg_extent_t ext;
	uint64_t id;

	if (!x) {
		fprintf(stderr, "# receiver: %s\n", why);
		return 77;
	}
	dg_pool_reserve(pool, BYTES, &ext);
	dg_tensor_row_t row = { .name = "t", .dtype = "u8", .bytes = BYTES,
	    .offset = ext.offset };
	dg_manifest_msg_t m = { .room = 1, .phase = 1, .tensors = &row,
	    .n_tensors = 1 };
	if (dg_xfer_expect(x, &ext, &m, 10000, &id, why, sizeof why) < 0 ||
	    !m.share)
		return 2;
	char line[128];
	int n = snprintf(line, sizeof line, "%s %llu %llu\n", m.share,
	    (unsigned long long)m.token, (unsigned long long)ext.offset);
	if (write(fd, line, (size_t)n) != n)
		return 2;
	dg_xfer_event_t ev;
	struct pollfd p = { .fd = dg_xfer_fd(x), .events = POLLIN };
	while (!dg_xfer_next_event(x, &ev))
		if (poll(&p, 1, 10000) <= 0)
			return 3;
	unsigned char *host = malloc(BYTES);
	if (ev.status != DG_XFER_DONE || !host ||
	    dg_cuda_copy(host, (uint8_t *)dg_pool_base(pool) + ext.offset,
	    BYTES, why, sizeof why) < 0)
		return 4;
	for (size_t i = 0; i < BYTES; i++)
		if (host[i] != 0xA5)
			return 5;
	return 0;
}

static void
test_device_handoff(void **state)
{
	(void)state;
	int sv[2];

	/* Forked before this process touches CUDA. */
	if (!dg_cuda_built() || pipe(sv) < 0)
		skip();
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(dg_cuda_device_count(NULL, 0) ? s_receiver(sv[1]) : 77);
	}
	close(sv[1]);
	char line[128] = "", share[64];
	unsigned long long token, offset;
	ssize_t got = read(sv[0], line, sizeof line - 1);
	close(sv[0]);
	if (got <= 0) {
		int st;
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
			skip();
		fail_msg("the receiver exited %d", WEXITSTATUS(st));
	}
	assert_int_equal(sscanf(line, "%63s %llu %llu", share, &token,
	    &offset), 3);
	char why[256];
	dg_pool_t *pool = dg_pool_new(4 * BYTES, BYTES);
	dg_xfer_t *x = s_engine(pool, why, sizeof why);
	assert_non_null(x);
	dg_tensor_row_t row = { .name = "t", .dtype = "u8", .bytes = BYTES,
	    .offset = offset };
	dg_manifest_msg_t m = { .room = 1, .phase = 1, .tensors = &row,
	    .n_tensors = 1, .token = token, .share = share, .chunk = BYTES };
	void *at;
	dg_xfer_lease_t *lease = dg_xfer_lease(x, &m, &at);
	assert_non_null(lease);
	unsigned char *host = malloc(BYTES);
	memset(host, 0xA5, BYTES);
	assert_int_equal(dg_cuda_copy(at, host, BYTES, why, sizeof why), 0);
	uint64_t id;
	assert_int_equal(dg_xfer_send_placed(x, &m, &lease, 10000, &id, why,
	    sizeof why), 0);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	free(host);
	dg_xfer_destroy(&x);
	dg_pool_destroy(&pool);
}

int
main(void)
{
	dg_log_init("test_cuda_ipc", true, DG_LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_without_cuda),
		cmocka_unit_test(test_device_handoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
