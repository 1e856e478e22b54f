/*
 * test_conn_fd.c — conn_listen_fd: listening sockets handed over (systemd's
 * socket activation). A TCP and a Unix listener are taken and served (a real
 * connection reaches the server's conn), a Unix socket's file stays with its
 * owner when the server closes, and what is not a listening stream socket is
 * refused with its reason, as is a socket beyond loopback without a token.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <uv.h>

#include "byol/auth.h"
#include "byol/conn.h"
#include "byol/error.h"

#define TOKEN "cluster-token-for-tests-0123456789"

static uv_loop_t loop;
static int opened, closed;

static void on_open(conn *c)
{
	(void)c;
	opened++;
}

static void on_message(conn *c, Byol__Envelope *e)
{
	(void)c;
	(void)e;
}

static void on_close(conn *c, int code, const char *reason)
{
	(void)c;
	(void)code;
	(void)reason;
	closed++;
}

static conn_config cfg_with(const char *token)
{
	conn_config k = {0};
	k.token = token;
	k.version = "byold-test";
	k.on_open = on_open;
	k.on_message = on_message;
	k.on_close = on_close;
	return k;
}

/* A socket of the given kind bound to 127.0.0.1:0 or 0.0.0.0:0. */
static int inet_socket(int type, const char *ip, int listening)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static int setup(void **state)
{
	(void)state;
	opened = closed = 0;
	return uv_loop_init(&loop);
}

static int teardown(void **state)
{
	(void)state;
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* ---- a client that connects, authenticates and goes ---- */

static void on_connected(conn *c, int status, const char *reason)
{
	assert_int_equal(status, 0);
	(void)reason;
	conn_close(c, 0, "done");
}

/* A byolctl-like client connects through the taken-over listener; the server
 * side must see it authenticated (on_open). Then the server closes. */
static void serve_one(conn_server *s, const char *pipe_path)
{
	char err[BYOL_ERR_LEN], addr[64];
	conn_config cc = cfg_with(TOKEN);
	cc.role = AUTH_ROLE_CLIENT;
	cc.name = "test";
	int rc;
	if (pipe_path) {
		rc = conn_connect_pipe(&loop, pipe_path, &cc, on_connected, NULL, err);
	} else {
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", conn_server_port(s));
		rc = conn_connect_tcp(&loop, addr, &cc, on_connected, NULL, err);
	}
	assert_int_equal(rc, 0);
	while (opened < 1 && uv_run(&loop, UV_RUN_ONCE))
		;
	assert_int_equal(opened, 1);
	conn_server_close(s);
}

static void test_tcp_taken_over(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	conn_server *s;
	conn_config cfg = cfg_with(TOKEN);
	int fd = inet_socket(SOCK_STREAM, "127.0.0.1", 1);
	assert_int_equal(conn_listen_fd(&loop, fd, &cfg, &s, err), 0);
	int port = conn_server_port(s);
	assert_true(port > 0);
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	assert_string_equal(conn_server_address(s), want);
	serve_one(s, NULL);
}

static void test_unix_taken_over_file_stays(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN], dir[] = "/tmp/byol-connfd-XXXXXX", path[64];
	conn_server *s;
	conn_config cfg = cfg_with(TOKEN);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/act.sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(conn_listen_fd(&loop, fd, &cfg, &s, err), 0);
	assert_int_equal(conn_server_port(s), -1);
	assert_string_equal(conn_server_address(s), path);
	serve_one(s, path);
	uv_run(&loop, UV_RUN_DEFAULT);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0); /* the owner's file, not the server's */
	assert_true(S_ISSOCK(st.st_mode));
	unlink(path);
	rmdir(dir);
}

static void test_refusals(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	conn_server *s = NULL;
	conn_config open_cfg = cfg_with(NULL), tok_cfg = cfg_with(TOKEN);

	int fd = inet_socket(SOCK_STREAM, "127.0.0.1", 0); /* bound, not listening */
	assert_int_equal(conn_listen_fd(&loop, fd, &open_cfg, &s, err), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "not a listening stream socket"));
	close(fd);

	fd = inet_socket(SOCK_DGRAM, "127.0.0.1", 0);
	assert_int_equal(conn_listen_fd(&loop, fd, &open_cfg, &s, err), -EINVAL);
	assert_non_null(strstr(err, "not a listening stream socket"));
	close(fd);

	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(conn_listen_fd(&loop, p[0], &open_cfg, &s, err), -ENOTSOCK);
	assert_non_null(strstr(err, "not a socket"));
	close(p[0]);
	close(p[1]);

	fd = inet_socket(SOCK_STREAM, "0.0.0.0", 1);
	assert_int_equal(conn_listen_fd(&loop, fd, &open_cfg, &s, err), -EPERM);
	assert_non_null(strstr(err, "without a token"));
	assert_int_equal(conn_listen_fd(&loop, fd, &tok_cfg, &s, err), 0);
	conn_server_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tcp_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_taken_over_file_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
