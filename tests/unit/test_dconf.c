/*
 * test_dconf.c — byold.conf: defaults, a full file, every error with its line,
 * command-line settings, the derived values and --help.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byol/dconf.h"
#include "byol/error.h"

static void test_defaults(void **state)
{
	(void)state;
	dconf c;
	dconf_defaults(&c);
	assert_string_equal(c.listen, "127.0.0.1:7070");
	assert_string_equal(c.socket, "");
	assert_string_equal(c.state_dir, "/var/lib/byold");
	assert_string_equal(c.token_file, "");
	assert_int_equal(c.max_frame_mb, 256);
	assert_int_equal(c.heartbeat_ms, 2000);
	assert_int_equal(c.worker_timeout_ms, 0);
	assert_int_equal(dconf_worker_timeout(&c), 6000);
	assert_int_equal(c.apply_threads, 2);
	assert_int_equal(c.log_level, DLOG_INFO);
	char path[DCONF_STR_LEN];
	dconf_socket_path(&c, path);
	assert_string_equal(path, "/var/lib/byold/byold.sock");
}

static void test_full_file(void **state)
{
	(void)state;
	dconf c;
	char err[BYOL_ERR_LEN] = "";
	dconf_defaults(&c);
	const char *text =
		"; byold.conf\n"
		"[byold]\n"
		"listen = 0.0.0.0:7000       ; all interfaces\n"
		"  state_dir = /srv/byold    # indented, hash comment\n"
		"socket = none\n"
		"token_file = /etc/byold/token\n"
		"heartbeat_ms = 500\n"
		"worker_timeout_ms = 4000\n"
		"max_frame_mb = 64\n"
		"apply_threads = 1\n"
		"log_level = debug\n";
	assert_int_equal(dconf_parse_string(&c, text, "b.conf", err), 0);
	assert_string_equal(c.listen, "0.0.0.0:7000");
	assert_string_equal(c.state_dir, "/srv/byold");
	assert_string_equal(c.token_file, "/etc/byold/token");
	assert_int_equal(c.heartbeat_ms, 500);
	assert_int_equal(dconf_worker_timeout(&c), 4000);
	assert_int_equal(c.max_frame_mb, 64);
	assert_int_equal(c.apply_threads, 1);
	assert_int_equal(c.log_level, DLOG_DEBUG);
	char path[DCONF_STR_LEN];
	dconf_socket_path(&c, path);
	assert_string_equal(path, "");
	/* keys before any section are [byold] keys too */
	dconf_defaults(&c);
	assert_int_equal(dconf_parse_string(&c, "socket = /run/b.sock\n", "x", err), 0);
	dconf_socket_path(&c, path);
	assert_string_equal(path, "/run/b.sock");
}

/* text must fail with exactly `want` as its message */
static void expect_error(const char *text, const char *want)
{
	dconf c;
	char err[BYOL_ERR_LEN] = "";
	dconf_defaults(&c);
	int rc = dconf_parse_string(&c, text, "byold.conf", err);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("[byold]\nheartbeat_ms = 5\n",
		     "byold.conf:2: heartbeat_ms: 5 is below the minimum 50");
	expect_error("[byold]\n\nmax_frame_mb = 9000\n",
		     "byold.conf:3: max_frame_mb: 9000 is above the maximum 2047");
	expect_error("[byold]\nheartbeat_ms = 2s\n", "byold.conf:2: heartbeat_ms: '2s' is not an integer");
	expect_error("[byold]\nlisten_on = x\n", "byold.conf:2: listen_on: unknown key");
	expect_error("[byold]\nlisten = a:1\nlisten = b:2\n",
		     "byold.conf:3: listen: duplicate key (first on line 2)");
	expect_error("[server]\nlisten = a:1\n",
		     "byold.conf:1: unknown section [server]");
	expect_error("[byold]\nlog_level = loud\n",
		     "byold.conf:2: log_level: 'loud' is not one of debug, info, warn, error");
	expect_error("[byold]\nthis is not ini\n",
		     "byold.conf:2: expected '[section]' or 'key = value'");
}

static void test_file_errors(void **state)
{
	(void)state;
	dconf c;
	char err[BYOL_ERR_LEN] = "";
	dconf_defaults(&c);
	assert_int_equal(dconf_parse_file(&c, "/nonexistent/byold.conf", err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/byold.conf"));

	char path[] = "/tmp/test_dconf_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "[byold]\nstall_ms = 2000\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(dconf_parse_file(&c, path, err), 0);
	assert_int_equal(c.stall_ms, 2000);
	unlink(path);
}

static void test_set(void **state)
{
	(void)state;
	dconf c;
	char err[BYOL_ERR_LEN] = "";
	dconf_defaults(&c);
	assert_int_equal(dconf_set(&c, "state_dir", "/tmp/x", err), 0);
	assert_string_equal(c.state_dir, "/tmp/x");
	char path[DCONF_STR_LEN];
	dconf_socket_path(&c, path);
	assert_string_equal(path, "/tmp/x/byold.sock");
	assert_int_equal(dconf_set(&c, "log_level", "warn", err), 0);
	assert_int_equal(c.log_level, DLOG_WARN);
	/* a refused value leaves the struct unchanged */
	assert_int_equal(dconf_set(&c, "apply_threads", "0", err), -EINVAL);
	assert_string_equal(err, "apply_threads: 0 is below the minimum 1");
	assert_int_equal(c.apply_threads, 2);
	assert_int_equal(dconf_set(&c, "nope", "1", err), -EINVAL);
	assert_string_equal(err, "nope: unknown key");
	char big[DCONF_STR_LEN + 10];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dconf_set(&c, "listen", big, err), -EINVAL);
	assert_string_equal(c.listen, "127.0.0.1:7070");
}

static void test_help(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	dconf_print_help(f);
	fclose(f);
	const char *keys[] = { "listen", "socket", "state_dir", "token_file", "max_frame_mb",
			       "heartbeat_ms", "worker_timeout_ms", "log_level" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_non_null(strstr(buf, keys[i]));
	assert_non_null(strstr(buf, "int 50..3600000"));
	assert_non_null(strstr(buf, "127.0.0.1:7070"));
	free(buf);
	assert_string_equal(dconf_level_name(DLOG_ERROR), "error");
	assert_string_equal(dconf_level_name((dlog_level)9), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
