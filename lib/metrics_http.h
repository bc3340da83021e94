/*  metrics_http.h: GET /metrics over HTTP (libmicrohttpd), for
 *  Prometheus to scrape.
 *
 *  The server runs its own thread and serves the last text the daemon's
 *  loop published (metrics.h), so a scrape never waits on the loop and
 *  never reads a figure the loop is writing.  Any other path is 404, any
 *  other method 405.  */
#ifndef DG_METRICS_HTTP_H
#define DG_METRICS_HTTP_H

#include <stddef.h>

typedef struct _dg_metrics_http_t dg_metrics_http_t;

/* Listen on `hostport` ("127.0.0.1:9400", "[::1]:9400", ":9400" for
 * every address).  NULL with the reason in `why`. */
dg_metrics_http_t *dg_metrics_http_new(const char *hostport, char *why,
    size_t whysize);
void dg_metrics_http_destroy(dg_metrics_http_t **self_p);
/* What the next scrapes get (copied). */
void dg_metrics_http_publish(dg_metrics_http_t *self, const char *text,
    size_t len);
/* The port it listens on (for ":0"). */
int dg_metrics_http_port(const dg_metrics_http_t *self);

#endif
