/*  test_metrics.c: the Prometheus text exposition (lib/metrics.c) and its
 *  HTTP server (lib/metrics_http.c): exact text, escaped labels,
 *  cumulative buckets, and GET /metrics on a real socket.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "metrics_http.h"

static void
test_text(void **state)
{
	(void)state;
	dg_metrics_t *m = dg_metrics_new();
	assert_non_null(m);
	static const char *const done[] = { "status", "done" };
	static const char *const odd[] = { "role", "a\"b\\c\nd" };
	dg_metrics_family(m, "disagg_requests_total", DG_METRIC_COUNTER,
	    "Requests ended, by status.");
	dg_metrics_sample(m, "disagg_requests_total",
	    (dg_labels_t){ done, 1 }, 3);
	dg_metrics_family(m, "disagg_odd", DG_METRIC_GAUGE, "back\\slash");
	dg_metrics_sample(m, "disagg_odd", (dg_labels_t){ odd, 1 }, 0.5);
	dg_metrics_sample(m, "disagg_odd", (dg_labels_t){ NULL, 0 }, 1e300);
	assert_string_equal(dg_metrics_text(m, NULL),
	    "# HELP disagg_requests_total Requests ended, by status.\n"
	    "# TYPE disagg_requests_total counter\n"
	    "disagg_requests_total{status=\"done\"} 3\n"
	    "# HELP disagg_odd back\\\\slash\n"
	    "# TYPE disagg_odd gauge\n"
	    "disagg_odd{role=\"a\\\"b\\\\c\\nd\"} 0.5\n"
	    "disagg_odd 1.0000000000000001e+300\n");
	dg_metrics_reset(m);
	assert_string_equal(dg_metrics_text(m, NULL), "");
	dg_metrics_destroy(&m);
	assert_null(m);
}

static void
test_histogram(void **state)
{
	static const double bounds[] = { 0.1, 1, 10 };
	static const char *const l[] = { "role", "transformer" };
	dg_hist_t h;
	(void)state;

	dg_hist_init(&h, bounds, 3);
	dg_hist_observe(&h, 0.05);
	dg_hist_observe(&h, 0.5);
	dg_hist_observe(&h, 0.7);
	dg_hist_observe(&h, 100);
	dg_metrics_t *m = dg_metrics_new();
	dg_metrics_histogram(m, "x_seconds", (dg_labels_t){ l, 1 }, &h);
	assert_string_equal(dg_metrics_text(m, NULL),
	    "x_seconds_bucket{role=\"transformer\",le=\"0.1\"} 1\n"
	    "x_seconds_bucket{role=\"transformer\",le=\"1\"} 3\n"
	    "x_seconds_bucket{role=\"transformer\",le=\"10\"} 3\n"
	    "x_seconds_bucket{role=\"transformer\",le=\"+Inf\"} 4\n"
	    "x_seconds_sum{role=\"transformer\"} 101.25\n"
	    "x_seconds_count{role=\"transformer\"} 4\n");
	dg_metrics_destroy(&m);
}

/* Large text grows the buffer as often as it needs. */
static void
test_large(void **state)
{
	static const char *const l[] = { "instance", "t0" };
	(void)state;
	dg_metrics_t *m = dg_metrics_new();
	for (int i = 0; i < 20000; i++)
		dg_metrics_sample(m, "disagg_x", (dg_labels_t){ l, 1 }, i);
	size_t len;
	const char *t = dg_metrics_text(m, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	assert_non_null(strstr(t, "disagg_x{instance=\"t0\"} 19999\n"));
	dg_metrics_destroy(&m);
}

/* One HTTP/1.0 request to 127.0.0.1:port; the whole answer. */
static char *
s_get(int port, const char *request)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_true(write(fd, request, strlen(request)) ==
	    (ssize_t)strlen(request));
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	ssize_t n;
	while ((n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	return buf;
}

static void
test_http(void **state)
{
	char why[256];
	(void)state;

	dg_metrics_http_t *h = dg_metrics_http_new("127.0.0.1:0", why,
	    sizeof why);
	assert_non_null(h);
	int port = dg_metrics_http_port(h);
	assert_true(port > 0);
	char *got = s_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(got, "HTTP/1.0 200") ? got :
	    strstr(got, "HTTP/1.1 200"));
	free(got);
	dg_metrics_http_publish(h, "disagg_up 1\n", 12);
	got = s_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(got, "text/plain; version=0.0.4"));
	assert_non_null(strstr(got, "\r\n\r\ndisagg_up 1\n"));
	free(got);
	got = s_get(port, "GET /other HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(got, " 404 "));
	free(got);
	got = s_get(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	assert_non_null(strstr(got, " 405 "));
	free(got);
	dg_metrics_http_destroy(&h);
	assert_null(h);
	/* A bad address names itself. */
	assert_null(dg_metrics_http_new("nonsense", why, sizeof why));
	assert_string_equal(why, "metrics 'nonsense': expected HOST:PORT");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_http),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
