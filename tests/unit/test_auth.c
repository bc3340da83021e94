/*  test_auth.c: with CURVE on, a client whose key is allowed gets
 *  through and is known by its key, an admin key is recognised as one,
 *  an unknown key is refused; keygen never overwrites a key and keeps
 *  the secret private.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "scratch.h"

static void
s_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", s_dir, name);
}

static int
s_setup(void **state)
{
	char err[256], keys[128], clients[128], admins[128];

	(void)state;
	if (s_scratch_make("dg-auth") < 0)
		return -1;
	s_path(keys, sizeof keys, "keys");
	s_path(clients, sizeof clients, "clients");
	s_path(admins, sizeof admins, "admins");
	if (dg_auth_keygen(keys, "server", err, sizeof err) < 0 ||
	    dg_auth_keygen(clients, "alice", err, sizeof err) < 0 ||
	    dg_auth_keygen(admins, "root", err, sizeof err) < 0 ||
	    dg_auth_keygen(s_dir, "mallory", err, sizeof err) < 0)
		return -1;
	return 0;
}

static void
test_keygen(void **state)
{
	char err[256] = "", path[128];
	struct stat st;

	(void)state;
	s_path(path, sizeof path, "keys/server_secret");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	s_path(path, sizeof path, "keys");
	assert_int_equal(dg_auth_keygen(path, "server", err, sizeof err), -1);
	assert_non_null(strstr(err, "not overwriting"));
	assert_int_equal(dg_auth_keygen(path, "a/b", err, sizeof err), -1);
}

static void
test_missing_keys(void **state)
{
	dg_security_conf_t sec = { .curve = true };
	char err[256] = "";

	(void)state;
	s_path(sec.key_dir, sizeof sec.key_dir, "nokeys");
	assert_null(dg_auth_new(&sec, s_dir, err, sizeof err));
	assert_non_null(strstr(err, "disagg keygen"));
}

/* A client with the key in `secret` sends one frame; the server's frame,
 * or NULL when the handshake was refused. */
static zframe_t *
s_exchange(dg_auth_t *auth, const char *secret, int n)
{
	char ep[160], err[256], key[128];
	zsock_t *srv = zsock_new(ZMQ_ROUTER);

	snprintf(ep, sizeof ep, "ipc://%s/s%d.sock", s_dir, n);
	dg_auth_server(auth, srv);
	assert_true(zsock_bind(srv, "%s", ep) == 0);
	assert_int_equal(dg_auth_ipc_private(ep), 0);
	struct stat st;
	assert_int_equal(stat(ep + 6, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	s_path(key, sizeof key, secret);
	setenv("DISAGG_KEY", key, 1);
	s_path(key, sizeof key, "keys/server");
	setenv("DISAGG_SERVER_KEY", key, 1);
	zsock_t *cl = zsock_new(ZMQ_DEALER);
	assert_int_equal(dg_auth_client_from_env(cl, err, sizeof err), 0);
	assert_true(zsock_connect(cl, "%s", ep) == 0);
	zstr_send(cl, "hello");
	zsock_set_rcvtimeo(srv, 1500);
	zmsg_t *m = zmsg_recv(srv);
	zframe_t *body = NULL;
	if (m) {
		zframe_t *id = zmsg_pop(m);
		zframe_destroy(&id);
		body = zmsg_pop(m);
		zmsg_destroy(&m);
	}
	zsock_destroy(&cl);
	zsock_destroy(&srv);
	unsetenv("DISAGG_KEY");
	unsetenv("DISAGG_SERVER_KEY");
	return body;
}

static void
test_curve(void **state)
{
	dg_security_conf_t sec = { .curve = true };
	char err[256] = "", path[128];

	(void)state;
	s_path(sec.key_dir, sizeof sec.key_dir, "keys");
	s_path(sec.client_keys, sizeof sec.client_keys, "clients");
	s_path(sec.admin_keys, sizeof sec.admin_keys, "admins");
	dg_auth_t *auth = dg_auth_new(&sec, s_dir, err, sizeof err);
	if (!auth)
		fail_msg("%s", err);

	zframe_t *f = s_exchange(auth, "clients/alice_secret", 1);
	assert_non_null(f);
	assert_true(zframe_streq(f, "hello"));
	s_path(path, sizeof path, "clients/alice");
	zcert_t *alice = zcert_load(path);
	assert_string_equal(dg_auth_user(f), zcert_public_txt(alice));
	assert_false(dg_auth_is_admin(auth, dg_auth_user(f)));
	assert_false(dg_auth_is_daemon(auth, dg_auth_user(f)));
	zcert_destroy(&alice);
	zframe_destroy(&f);

	f = s_exchange(auth, "admins/root_secret", 2);
	assert_non_null(f);
	assert_true(dg_auth_is_admin(auth, dg_auth_user(f)));
	zframe_destroy(&f);

	f = s_exchange(auth, "mallory_secret", 3);
	assert_null(f);

	dg_auth_destroy(&auth);
	assert_null(auth);
	assert_true(dg_auth_is_admin(NULL, ""));
	assert_true(dg_auth_is_daemon(NULL, ""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_missing_keys),
		cmocka_unit_test(test_curve),
	};

	zsys_init();
	zsys_set_linger(0);
	return cmocka_run_group_tests(tests, s_setup, s_scratch_remove);
}
