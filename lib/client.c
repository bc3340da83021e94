/*  client.c: see client.h.  */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "log.h"
#include "config.h"
#include "run.h"
#include "wire.h"

struct _dg_client_t {
	zsock_t *sock;
	uint64_t seq;
	zlistx_t *backlog;      /* messages that were not the awaited reply */
};

static void
s_msg_destroy(void **item)
{
	dg_msg_t *m = *item;
	dg_msg_destroy(&m);
	*item = NULL;
}

dg_client_t *
dg_client_new(const char *endpoint)
{
	dg_client_t *self = calloc(1, sizeof *self);

	if (!self)
		return NULL;
	self->sock = zsock_new(ZMQ_DEALER);
	self->backlog = zlistx_new();
	if (!self->sock || !self->backlog) {
		dg_client_destroy(&self);
		return NULL;
	}
	zlistx_set_destructor(self->backlog, s_msg_destroy);
	zsock_set_linger(self->sock, 0);
	zsock_set_maxmsgsize(self->sock, DG_PROTO_MAX_FRAME);
	char err[256];
	if (dg_auth_client_from_env(self->sock, err, sizeof err) < 0) {
		dg_log_error("%s", err);
		dg_client_destroy(&self);
		return NULL;
	}
	if (zsock_connect(self->sock, "%s", endpoint) < 0) {
		dg_client_destroy(&self);
		return NULL;
	}
	/* A distinctive start, so replies to an earlier run of the same
	 * client identity are not taken for ours. */
	self->seq = ((uint64_t)getpid() << 20) ^ (uint64_t)zclock_time();
	return self;
}

void
dg_client_destroy(dg_client_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	dg_client_t *self = *self_p;
	zsock_destroy(&self->sock);
	zlistx_destroy(&self->backlog);
	free(self);
	*self_p = NULL;
}

zsock_t *
dg_client_sock(dg_client_t *self)
{
	return self->sock;
}

uint64_t
dg_client_send(dg_client_t *self, dg_msg_t *msg)
{
	msg->seq = ++self->seq;
	return dg_wire_send(self->sock, NULL, msg) < 0 ? 0 : msg->seq;
}

static dg_msg_t *
s_recv(dg_client_t *self, int timeout_ms)
{
	zpoller_t *p = zpoller_new(self->sock, NULL);
	dg_msg_t *m = NULL;

	if (!p)
		return NULL;
	int64_t deadline = zclock_mono() + timeout_ms;
	while (!m) {
		int left = (int)(deadline - zclock_mono());
		if (left < 0 || !zpoller_wait(p, left))
			break;
		dg_proto_err_t err;
		if (dg_wire_recv(self->sock, NULL, &m, &err) == 0)
			fprintf(stderr, "disagg: bad reply: %s\n", err.message);
	}
	zpoller_destroy(&p);
	return m;
}

dg_msg_t *
dg_client_call(dg_client_t *self, dg_msg_t *msg, int timeout_ms)
{
	uint64_t seq = dg_client_send(self, msg);
	int64_t deadline = zclock_mono() + timeout_ms;

	if (!seq)
		return NULL;
	for (;;) {
		int left = (int)(deadline - zclock_mono());
		dg_msg_t *m = left > 0 ? s_recv(self, left) : NULL;
		if (!m) {
			errno = ETIMEDOUT;
			return NULL;
		}
		if (m->seq == seq && m->op != DG_OP_RESULT &&
		    m->op != DG_OP_EVENT)
			return m;
		zlistx_add_end(self->backlog, m);
	}
}

dg_msg_t *
dg_client_next(dg_client_t *self, int timeout_ms)
{
	dg_msg_t *m = zlistx_first(self->backlog);

	if (m) {
		zlistx_detach_cur(self->backlog);
		return m;
	}
	return s_recv(self, timeout_ms);
}

const char *
dg_client_endpoint(const char *flag, const char *file)
{
	static char buf[DG_ENDPOINT_MAX];
	char path[DG_PATH_MAX];

	if (flag && *flag)
		return flag;
	const char *env = getenv("DISAGG_CONTROLLER");
	if (env && *env)
		return env;
	if (!file || !*file) {
		dg_run_path(path, sizeof path, "up.ini");
		if (access(path, R_OK) == 0)
			file = path;
	}
	if (file && *file) {
		dg_config_t *cfg = dg_config_load(file);
		if (cfg && dg_config_error_count(cfg) == 0) {
			snprintf(buf, sizeof buf, "%s",
			    dg_config_controller(cfg)->listen);
			dg_config_destroy(&cfg);
			return buf;
		}
		dg_config_destroy(&cfg);
	}
	return "tcp://127.0.0.1:7700";
}

void
dg_client_pub_endpoint(char *buf, size_t size, const char *pub, const char *via)
{
	const char *star = strstr(pub, "://*:");
	if (!star)
		star = strstr(pub, "://0.0.0.0:");
	const char *host = strstr(via, "://");
	const char *colon = host ? strrchr(host + 3, ':') : NULL;
	if (!star || strncmp(via, "tcp://", 6) != 0 || !colon) {
		snprintf(buf, size, "%s", pub);
		return;
	}
	const char *port = strrchr(pub, ':');
	snprintf(buf, size, "tcp://%.*s%s", (int)(colon - host - 3), host + 3,
	    port);
}
