/*  auth.c: CurveZMQ on the control endpoints; see auth.h.  */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "proto.h"
#include "trust.h"

#define ZAP_DOMAIN "disagg"

static char s_yes[] = "admin";    /* the admins table's one value */

struct dg_auth {
	zactor_t *zap;
	zcert_t *cert;                  /* the deployment's server pair */
	zhashx_t *admins;               /* public key (Z85) -> "" */
	char allowed[DG_PATH_MAX];      /* what zauth reads */
	zlistx_t *monitors;             /* zactor_t *, one per watched sock */
	zlistx_t *watches;              /* s_watch_t *, their log state */
};

static int
s_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
s_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static bool
s_is_secret(const char *name)
{
	size_t n = strlen(name);

	return n >= 7 && strcmp(name + n - 7, "_secret") == 0;
}

/* Copy every public key file of `dir` into self->allowed, prefixed so
 * that two folders' files of the same name do not clash; admin keys
 * are remembered as such.  -1 with the reason in err. */
static int
s_gather(dg_auth_t *self, const char *dir, const char *prefix, bool admin,
    char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return s_err(err, errlen, "cannot read key folder %s: %s", dir,
		    strerror(errno));
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || s_is_secret(de->d_name))
			continue;
		char from[DG_PATH_MAX * 2], to[DG_PATH_MAX * 2];
		snprintf(from, sizeof from, "%s/%s", dir, de->d_name);
		zcert_t *c = zcert_load(from);
		if (!c) {
			dg_log_warn("%s: not a public key file, ignored", from);
			continue;
		}
		snprintf(to, sizeof to, "%s/%s%s", self->allowed, prefix,
		    de->d_name);
		if (zcert_save_public(c, to) < 0) {
			zcert_destroy(&c);
			closedir(d);
			return s_err(err, errlen, "cannot write %s: %s", to,
			    strerror(errno));
		}
		if (admin)
			zhashx_update(self->admins, zcert_public_txt(c), s_yes);
		zcert_destroy(&c);
		n++;
	}
	closedir(d);
	dg_log_info("curve: %d %s key%s from %s", n, admin ? "admin" :
	    "client", n == 1 ? "" : "s", dir);
	return 0;
}

dg_auth_t *
dg_auth_new(const dg_security_conf_t *sec, const char *scratch, char *err,
    size_t errlen)
{
	char path[DG_PATH_MAX + 16];
	dg_auth_t *self = calloc(1, sizeof *self);

	if (!self || !(self->admins = zhashx_new()) ||
	    !(self->monitors = zlistx_new()) ||
	    !(self->watches = zlistx_new())) {
		s_err(err, errlen, "out of memory");
		goto fail;
	}
	zhashx_set_duplicator(self->admins, NULL);
	zlistx_set_destructor(self->monitors, (zlistx_destructor_fn *)
	    zactor_destroy);
	if (!*sec->key_dir) {
		s_err(err, errlen, "[security] curve = on needs key_dir");
		goto fail;
	}
	snprintf(path, sizeof path, "%s/server_secret", sec->key_dir);
	/* Whoever can write these can give themselves the deployment's
	 * key or a client's. */
	if (dg_trust_if_there(sec->key_dir, "key_dir", err, errlen) < 0 ||
	    dg_trust_if_there(path, "server secret", err, errlen) < 0 ||
	    (*sec->client_keys && dg_trust_if_there(sec->client_keys,
	    "client_keys", err, errlen) < 0) ||
	    (*sec->admin_keys && dg_trust_if_there(sec->admin_keys,
	    "admin_keys", err, errlen) < 0))
		goto fail;
	if (!(self->cert = zcert_load(path)) ||
	    zcert_secret_txt(self->cert)[0] == '\0' ||
	    strcmp(zcert_secret_txt(self->cert),
	    "0000000000000000000000000000000000000000") == 0) {
		s_err(err, errlen, "cannot load the server key pair %s (make "
		    "one with: disagg keygen -d %s server)", path,
		    sec->key_dir);
		goto fail;
	}
	snprintf(self->allowed, sizeof self->allowed, "%s/curve-allowed",
	    scratch);
	zsys_dir_create("%s", self->allowed);
	(void)chmod(self->allowed, 0700);
	if (dg_trust_check(self->allowed, "allowed-keys folder", err,
	    errlen) < 0)
		goto fail;
	/* Start from an empty list: keys removed since the last run must
	 * not linger. */
	DIR *d = opendir(self->allowed);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char old[DG_PATH_MAX * 2];
		snprintf(old, sizeof old, "%s/%s", self->allowed, de->d_name);
		unlink(old);
	}
	if (d)
		closedir(d);
	/* Daemons talk to each other with the server pair. */
	snprintf(path, sizeof path, "%s/daemons", self->allowed);
	if (zcert_save_public(self->cert, path) < 0) {
		s_err(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	zhashx_update(self->admins, zcert_public_txt(self->cert), s_yes);
	if ((*sec->client_keys && s_gather(self, sec->client_keys, "client-",
	    false, err, errlen) < 0) || (*sec->admin_keys &&
	    s_gather(self, sec->admin_keys, "admin-", true, err, errlen) < 0))
		goto fail;

	self->zap = zactor_new(zauth, NULL);
	if (!self->zap) {
		s_err(err, errlen, "cannot start the ZAP handler");
		goto fail;
	}
	zstr_sendx(self->zap, "CURVE", self->allowed, NULL);
	zsock_wait(self->zap);
	return self;
fail:
	dg_auth_destroy(&self);
	return NULL;
}

void
dg_auth_destroy(dg_auth_t **self_p)
{
	dg_auth_t *self = *self_p;

	if (!self)
		return;
	zlistx_destroy(&self->monitors);
	for (void *w = self->watches ? zlistx_first(self->watches) : NULL; w;
	    w = zlistx_next(self->watches))
		free(w);
	zlistx_destroy(&self->watches);
	zactor_destroy(&self->zap);
	zcert_destroy(&self->cert);
	zhashx_destroy(&self->admins);
	free(self);
	*self_p = NULL;
}

void
dg_auth_server(dg_auth_t *self, zsock_t *sock)
{
	zcert_apply(self->cert, sock);
	zsock_set_curve_server(sock, 1);
	zsock_set_zap_domain(sock, ZAP_DOMAIN);
}

void
dg_auth_daemon_client(dg_auth_t *self, zsock_t *sock)
{
	zcert_apply(self->cert, sock);
	zsock_set_curve_serverkey(sock, zcert_public_txt(self->cert));
}

/* One watched endpoint: refusals are logged at most once a second,
 * with how many were left unsaid, so that a client retrying a bad key
 * (every 100 ms, ZeroMQ's reconnect) or a flood cannot fill the log. */
typedef struct {
	const char *what;
	int64_t last_ms;
	uint64_t unsaid;
} s_watch_t;

#define REFUSED_EVERY_MS 1000

/* A monitor event: [event name][value][address]. */
static int
s_on_monitor(zloop_t *loop, zsock_t *reader, void *arg)
{
	s_watch_t *w = arg;
	zmsg_t *m = zmsg_recv(reader);

	(void)loop;
	if (!m)
		return 0;
	char *event = zmsg_popstr(m), *value = zmsg_popstr(m),
	    *addr = zmsg_popstr(m);
	int64_t now = zclock_mono();
	if (event && strncmp(event, "HANDSHAKE_FAILED", 16) == 0 &&
	    now - w->last_ms < REFUSED_EVERY_MS) {
		w->unsaid++;
	} else if (event && strncmp(event, "HANDSHAKE_FAILED", 16) == 0) {
		dg_log_warn("curve: refused a client on the %s endpoint%s%s: "
		    "%s (its key is not in client_keys or admin_keys, or it "
		    "does not speak CURVE)%s%.0llu%s", w->what, addr && *addr ?
		    " from " : "", addr ? addr : "", event, w->unsaid ?
		    "; and " : "", (unsigned long long)w->unsaid, w->unsaid ?
		    " more refused since the last line" : "");
		w->last_ms = now;
		w->unsaid = 0;
	}
	free(event);
	free(value);
	free(addr);
	zmsg_destroy(&m);
	return 0;
}

/* Refusals left unsaid are said within a second, even when no other
 * comes to carry them. */
static int
s_on_unsaid(zloop_t *loop, int timer_id, void *arg)
{
	dg_auth_t *self = arg;
	int64_t now = zclock_mono();

	(void)loop;
	(void)timer_id;
	for (s_watch_t *w = zlistx_first(self->watches); w;
	    w = zlistx_next(self->watches)) {
		if (!w->unsaid || now - w->last_ms < REFUSED_EVERY_MS)
			continue;
		dg_log_warn("curve: refused %llu more client%s on the %s "
		    "endpoint since the last line", (unsigned long long)w->unsaid,
		    w->unsaid == 1 ? "" : "s", w->what);
		w->unsaid = 0;
		w->last_ms = now;
	}
	return 0;
}

int
dg_auth_watch(dg_auth_t *self, zsock_t *sock, const char *what,
    zloop_t *loop)
{
	zactor_t *mon = zactor_new(zmonitor, sock);

	if (!mon)
		return -1;
	zstr_sendx(mon, "LISTEN", "HANDSHAKE_FAILED_NO_DETAIL",
	    "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_AUTH", NULL);
	zstr_sendx(mon, "START", NULL);
	zsock_wait(mon);
	zlistx_add_end(self->monitors, mon);
	s_watch_t *w = calloc(1, sizeof *w);
	if (!w)
		return -1;
	w->what = what;
	if (zlistx_size(self->watches) == 0)
		zloop_timer(loop, REFUSED_EVERY_MS, 0, s_on_unsaid, self);
	zlistx_add_end(self->watches, w);
	return zloop_reader(loop, zactor_sock(mon), s_on_monitor, w);
}

const char *
dg_auth_user(zframe_t *frame)
{
	const char *u = frame ? zframe_meta(frame, "User-Id") : NULL;

	return u ? u : "";
}

bool
dg_auth_is_admin(const dg_auth_t *self, const char *user)
{
	if (!self)
		return true;
	return zhashx_lookup(self->admins, user ? user : "") != NULL;
}

bool
dg_auth_is_daemon(const dg_auth_t *self, const char *user)
{
	if (!self)
		return true;
	return user && strcmp(user, zcert_public_txt(self->cert)) == 0;
}

int
dg_auth_client_from_env(zsock_t *sock, char *err, size_t errlen)
{
	const char *key = getenv("DISAGG_KEY");
	const char *server = getenv("DISAGG_SERVER_KEY");
	char beside[DG_PATH_MAX + 16];

	if (!key || !*key)
		return 0;
	zcert_t *mine = zcert_load(key);
	if (!mine || strcmp(zcert_secret_txt(mine),
	    "0000000000000000000000000000000000000000") == 0) {
		zcert_destroy(&mine);
		return s_err(err, errlen, "DISAGG_KEY: cannot load the secret "
		    "key %s", key);
	}
	if (!server || !*server) {
		const char *slash = strrchr(key, '/');
		snprintf(beside, sizeof beside, "%.*s/server",
		    slash ? (int)(slash - key) : 1, slash ? key : ".");
		server = beside;
	}
	zcert_t *srv = zcert_load(server);
	if (!srv) {
		zcert_destroy(&mine);
		return s_err(err, errlen, "cannot load the server's public key "
		    "%s (set DISAGG_SERVER_KEY)", server);
	}
	zcert_apply(mine, sock);
	zsock_set_curve_serverkey(sock, zcert_public_txt(srv));
	zcert_destroy(&mine);
	zcert_destroy(&srv);
	return 0;
}

zsock_t *
dg_auth_sub_new(const char *endpoint, char *err, size_t errlen)
{
	zsock_t *sub = zsock_new(ZMQ_SUB);

	if (!sub) {
		s_err(err, errlen, "cannot make a SUB socket");
		return NULL;
	}
	zsock_set_linger(sub, 0);
	zsock_set_maxmsgsize(sub, DG_PROTO_MAX_FRAME);
	zsock_set_subscribe(sub, "");
	if (dg_auth_client_from_env(sub, err, errlen) < 0)
		goto fail;
	if (zsock_connect(sub, "%s", endpoint) < 0) {
		s_err(err, errlen, "cannot connect to %s", endpoint);
		goto fail;
	}
	return sub;
fail:
	zsock_destroy(&sub);
	return NULL;
}

int
dg_auth_keygen(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[DG_PATH_MAX * 2];

	if (!*name || strchr(name, '/') || s_is_secret(name))
		return s_err(err, errlen, "bad key name '%s'", name);
	if (zsys_dir_create("%s", dir) < 0)
		return s_err(err, errlen, "cannot create %s: %s", dir,
		    strerror(errno));
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (access(path, F_OK) == 0)
		return s_err(err, errlen, "%s exists; not overwriting a key",
		    path);
	zcert_t *c = zcert_new();
	if (!c)
		return s_err(err, errlen, "cannot make a key pair");
	zcert_set_meta(c, "name", "%s", name);
	/* The secret is written with a private umask, never readable by
	 * others even for an instant. */
	mode_t old = umask(077);
	int rc = zcert_save(c, path);
	umask(old);
	zcert_destroy(&c);
	if (rc < 0)
		return s_err(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
	(void)chmod(path, 0644);
	return 0;
}

int
dg_auth_ipc_private(const char *endpoint)
{
	if (strncmp(endpoint, "ipc://", 6) != 0)
		return 0;
	return chmod(endpoint + 6, 0600);
}
