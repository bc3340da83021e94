/*  metrics_http.c: GET /metrics over HTTP (metrics_http.h).  */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "metrics_http.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct _dg_metrics_http_t {
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	char *text;
	size_t len;
	int port;
};

static enum MHD_Result
s_reply(struct MHD_Connection *c, unsigned int status, const char *body,
    size_t len, const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len,
	    (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	dg_metrics_http_t *self = cls;
	static const char not_found[] = "not found: try /metrics\n";
	static const char not_allowed[] = "only GET\n";

	(void)version;
	(void)upload;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		*upload_size = 0;
		return s_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
		    sizeof not_allowed - 1, "text/plain");
	}
	if (strcmp(url, "/metrics") != 0)
		return s_reply(c, MHD_HTTP_NOT_FOUND, not_found,
		    sizeof not_found - 1, "text/plain");
	pthread_mutex_lock(&self->lock);
	enum MHD_Result ok = s_reply(c, MHD_HTTP_OK,
	    self->text ? self->text : "", self->text ? self->len : 0,
	    CONTENT_TYPE);
	pthread_mutex_unlock(&self->lock);
	return ok;
}

/* "host:port", "[v6]:port" or ":port" into a socket address. */
static int
s_resolve(const char *hostport, struct sockaddr_storage *ss, socklen_t *len,
    char *why, size_t whysize)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');

	if (!colon || !colon[1]) {
		snprintf(why, whysize, "metrics '%s': expected HOST:PORT",
		    hostport);
		return -1;
	}
	size_t hl = (size_t)(colon - hostport);
	if (hl >= sizeof host) {
		snprintf(why, whysize, "metrics '%s': host too long", hostport);
		return -1;
	}
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE |
	    AI_NUMERICSERV }, *res = NULL;
	int rc = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
	if (rc != 0) {
		snprintf(why, whysize, "metrics '%s': %s", hostport,
		    gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

dg_metrics_http_t *
dg_metrics_http_new(const char *hostport, char *why, size_t whysize)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (s_resolve(hostport, &ss, &sl, why, whysize) < 0)
		return NULL;
	dg_metrics_http_t *self = calloc(1, sizeof *self);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&self->lock, NULL);
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	self->mhd = MHD_start_daemon(flags, 0, NULL, NULL, s_handle, self,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
	    MHD_OPTION_END);
	if (!self->mhd) {
		snprintf(why, whysize, "metrics: cannot listen on %s: %s",
		    hostport, errno ? strerror(errno) :
		    "libmicrohttpd refused");
		pthread_mutex_destroy(&self->lock);
		free(self);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd,
	    MHD_DAEMON_INFO_BIND_PORT);
	self->port = info ? info->port : 0;
	return self;
}

void
dg_metrics_http_destroy(dg_metrics_http_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_metrics_http_t *self = *self_p;
	MHD_stop_daemon(self->mhd);
	pthread_mutex_destroy(&self->lock);
	free(self->text);
	free(self);
	*self_p = NULL;
}

void
dg_metrics_http_publish(dg_metrics_http_t *self, const char *text,
    size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return;         /* the scrapes keep the last text */
	memcpy(copy, text, len);
	copy[len] = '\0';
	pthread_mutex_lock(&self->lock);
	free(self->text);
	self->text = copy;
	self->len = len;
	pthread_mutex_unlock(&self->lock);
}

int
dg_metrics_http_port(const dg_metrics_http_t *self)
{
	return self->port;
}
