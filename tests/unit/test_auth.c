/*
 * test_auth.c — the cluster token and the handshake HMACs: RFC 4231 known
 * answers, the handshake MAC pinned to a value computed independently (Python's
 * hmac module), verification of good and bad MACs, and every token file check.
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
#include <sys/stat.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/error.h"

static void hex(uint8_t *out, const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* RFC 4231 test case 2 (a key shorter than the block) and 6 (a key longer than
 * the block, which HMAC hashes first: tokens may be long). */
static void test_rfc4231(void **state)
{
	(void)state;
	uint8_t mac[AUTH_MAC_LEN], want[AUTH_MAC_LEN];
	const char *msg2 = "what do ya want for nothing?";
	auth_hmac_sha256(mac, "Jefe", 4, msg2, strlen(msg2));
	hex(want, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32);
	assert_memory_equal(mac, want, 32);

	uint8_t key[131];
	memset(key, 0xaa, sizeof(key));
	const char *msg6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	auth_hmac_sha256(mac, key, sizeof(key), msg6, strlen(msg6));
	hex(want, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32);
	assert_memory_equal(mac, want, 32);
}

static const char *TOKEN = "byold-test-token-0123456789";

/* The handshake MAC is HMAC-SHA256(token, nonce || role byte); values from
 * Python: hmac.new(token, bytes(range(32)) + b'\x01', sha256). */
static void test_handshake_mac_known_answer(void **state)
{
	(void)state;
	uint8_t nonce[AUTH_NONCE_LEN], mac[AUTH_MAC_LEN], want[AUTH_MAC_LEN];
	for (int i = 0; i < AUTH_NONCE_LEN; i++)
		nonce[i] = (uint8_t)i;
	auth_mac(mac, TOKEN, strlen(TOKEN), nonce, AUTH_ROLE_WORKER);
	hex(want, "a4203a0423c4260ea43e38bdb069c82268ddc74b5a20b7fcd7d8538fec54333d", 32);
	assert_memory_equal(mac, want, 32);
	auth_mac(mac, TOKEN, strlen(TOKEN), nonce, AUTH_ROLE_SERVER);
	hex(want, "0e7fa2ce5ebd418e9a33e1a3508194801575000128435c9f5fe65387a6b084ce", 32);
	assert_memory_equal(mac, want, 32);
}

static void test_verify(void **state)
{
	(void)state;
	uint8_t nonce[AUTH_NONCE_LEN], mac[AUTH_MAC_LEN];
	auth_nonce(nonce);
	auth_mac(mac, TOKEN, strlen(TOKEN), nonce, AUTH_ROLE_CLIENT);
	assert_int_equal(auth_verify(mac, TOKEN, strlen(TOKEN), nonce, AUTH_ROLE_CLIENT), 0);
	/* another role, another token, another nonce, any flipped bit: refused */
	assert_int_equal(auth_verify(mac, TOKEN, strlen(TOKEN), nonce, AUTH_ROLE_WORKER),
			 -EACCES);
	const char *other = "byold-test-token-0123456780";
	assert_int_equal(auth_verify(mac, other, strlen(other), nonce, AUTH_ROLE_CLIENT),
			 -EACCES);
	uint8_t n2[AUTH_NONCE_LEN];
	memcpy(n2, nonce, sizeof(n2));
	n2[31] ^= 1;
	assert_int_equal(auth_verify(mac, TOKEN, strlen(TOKEN), n2, AUTH_ROLE_CLIENT),
			 -EACCES);
	for (int bit = 0; bit < 256; bit += 37) {
		uint8_t bad[AUTH_MAC_LEN];
		memcpy(bad, mac, sizeof(bad));
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(auth_verify(bad, TOKEN, strlen(TOKEN), nonce,
					     AUTH_ROLE_CLIENT), -EACCES);
	}
}

static void test_nonces_differ(void **state)
{
	(void)state;
	uint8_t a[AUTH_NONCE_LEN], b[AUTH_NONCE_LEN];
	auth_nonce(a);
	auth_nonce(b);
	assert_memory_not_equal(a, b, AUTH_NONCE_LEN);
}

/* ---- token files ---- */

static char dir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/byol-auth-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *write_token(const char *name, const void *data, size_t n, mode_t mode)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_token_good_trimmed(void **state)
{
	(void)state;
	const char *text = " \t0123456789abcdef-token\r\n\n";
	const char *path = write_token("good", text, strlen(text), 0600);
	char *tok = NULL, err[BYOL_ERR_LEN];
	size_t len = 0;
	assert_int_equal(auth_token_load(path, &tok, &len, err), 0);
	assert_string_equal(tok, "0123456789abcdef-token");
	assert_int_equal(len, strlen("0123456789abcdef-token"));
	auth_token_free(tok);
	/* 0400 is fine too */
	path = write_token("ro", text, strlen(text), 0400);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), 0);
	auth_token_free(tok);
}

static void test_token_mode_refused(void **state)
{
	(void)state;
	const char *text = "0123456789abcdef-token\n";
	mode_t modes[] = {0644, 0640, 0604, 0660, 0602};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const char *path = write_token("open", text, strlen(text), modes[i]);
		char *tok = (char *)1, err[BYOL_ERR_LEN] = "", mode[16];
		assert_int_equal(auth_token_load(path, &tok, NULL, err), -EPERM);
		assert_null(tok);
		snprintf(mode, sizeof(mode), "mode 0%o", (unsigned)modes[i]);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, mode));
	}
}

static void test_token_empty_short_nul_long(void **state)
{
	(void)state;
	char *tok, err[BYOL_ERR_LEN];
	const char *path = write_token("empty", "", 0, 0600);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), -EINVAL);
	assert_non_null(strstr(err, "empty"));
	assert_non_null(strstr(err, path));

	path = write_token("blank", " \n\t\n", 4, 0600);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), -EINVAL);
	assert_non_null(strstr(err, "empty"));

	/* 15 bytes after trimming: one short */
	path = write_token("short", "  0123456789abcde\n", 18, 0600);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), -EINVAL);
	assert_non_null(strstr(err, "15 bytes"));
	assert_non_null(strstr(err, "at least 16"));
	assert_non_null(strstr(err, path));

	/* exactly 16 is enough */
	path = write_token("sixteen", "0123456789abcdef", 16, 0600);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), 0);
	auth_token_free(tok);

	path = write_token("nul", "0123456789\0abcdefgh", 19, 0600);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), -EINVAL);
	assert_non_null(strstr(err, "NUL"));

	size_t n = AUTH_TOKEN_MAX + 2000;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, 'x', n);
	path = write_token("big", big, n, 0600);
	free(big);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_null(tok);
}

static void test_token_missing_and_dir(void **state)
{
	(void)state;
	char *tok, err[BYOL_ERR_LEN], path[128];
	snprintf(path, sizeof(path), "%s/nope", dir);
	assert_int_equal(auth_token_load(path, &tok, NULL, err), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(auth_token_load(dir, &tok, NULL, err), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_token_check(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	assert_int_equal(auth_token_check("0123456789abcdef", "cfg", err), 0);
	assert_int_equal(auth_token_check("short", "byold.conf:3", err), -EINVAL);
	assert_non_null(strstr(err, "byold.conf:3"));
	assert_int_equal(auth_token_check("", "cfg", err), -EINVAL);
	assert_int_equal(auth_token_check(NULL, "cfg", err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_handshake_mac_known_answer),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_nonces_differ),
		cmocka_unit_test(test_token_good_trimmed),
		cmocka_unit_test(test_token_mode_refused),
		cmocka_unit_test(test_token_empty_short_nul_long),
		cmocka_unit_test(test_token_missing_and_dir),
		cmocka_unit_test(test_token_check),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
