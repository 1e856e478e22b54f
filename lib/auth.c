/*
 * auth.c — the cluster token file and the handshake HMACs, over libsodium.
 * See include/byol/auth.h.
 */
#include "byol/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byol/error.h"

int auth_init(char *err)
{
	/* sodium_init is thread-safe and returns 1 when already initialised */
	if (sodium_init() < 0)
		return byol_err(err, -EIO, "libsodium failed to initialise");
	return 0;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int auth_token_check(const char *token, const char *what, char *err)
{
	size_t n = token ? strlen(token) : 0;
	if (n == 0)
		return byol_err(err, -EINVAL, "%s: the token is empty", what);
	if (n < AUTH_TOKEN_MIN)
		return byol_err(err, -EINVAL, "%s: the token is %zu bytes; at least %d are "
				"required", what, n, AUTH_TOKEN_MIN);
	if (n > AUTH_TOKEN_MAX)
		return byol_err(err, -EINVAL, "%s: the token is %zu bytes; at most %d are "
				"allowed", what, n, AUTH_TOKEN_MAX);
	return 0;
}

int auth_token_load(const char *path, char **token, size_t *len, char *err)
{
	/* room for a maximal token and generous whitespace around it */
	enum { CAP = AUTH_TOKEN_MAX + 1024 };
	char *buf = NULL;
	int rc, fd = -1;
	struct stat st;

	*token = NULL;
	if (len)
		*len = 0;
	if ((rc = auth_init(err)) < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = byol_err(err, -errno, "token file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = byol_err(err, -errno, "token file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = byol_err(err, -EINVAL, "token file %s is not a regular file", path);
		goto fail;
	}
	if (st.st_mode & 077) {
		rc = byol_err(err, -EPERM, "token file %s has mode %04o: it must not be "
			      "accessible to group or others (chmod 600 %s)", path,
			      (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	if (st.st_size > CAP) {
		rc = byol_err(err, -EINVAL, "token file %s is %lld bytes; a token is at most "
			      "%d", path, (long long)st.st_size, AUTH_TOKEN_MAX);
		goto fail;
	}
	buf = malloc(CAP + 1);
	if (!buf) {
		rc = byol_err(err, -ENOMEM, "token file %s: out of memory", path);
		goto fail;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, CAP + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = byol_err(err, -errno, "token file %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CAP) {
			rc = byol_err(err, -EINVAL, "token file %s is too long; a token is at "
				      "most %d bytes", path, AUTH_TOKEN_MAX);
			goto fail;
		}
	}
	if (memchr(buf, '\0', n)) {
		rc = byol_err(err, -EINVAL, "token file %s holds a NUL byte", path);
		goto fail;
	}
	size_t b = 0, e = n;
	while (b < e && is_space((unsigned char)buf[b]))
		b++;
	while (e > b && is_space((unsigned char)buf[e - 1]))
		e--;
	memmove(buf, buf + b, e - b);
	sodium_memzero(buf + (e - b), CAP + 1 - (e - b));
	if ((rc = auth_token_check(buf, path, err)) < 0)
		goto fail;
	close(fd);
	*token = buf;
	if (len)
		*len = e - b;
	return 0;
fail:
	if (buf) {
		sodium_memzero(buf, CAP + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

void auth_token_free(char *token)
{
	if (!token)
		return;
	sodium_memzero(token, strlen(token));
	free(token);
}

void auth_hmac_sha256(uint8_t out[AUTH_MAC_LEN], const void *key, size_t keylen,
		      const void *msg, size_t msglen)
{
	crypto_auth_hmacsha256_state st;
	auth_init(NULL);
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, msg, msglen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

void auth_mac(uint8_t out[AUTH_MAC_LEN], const char *token, size_t toklen,
	      const uint8_t nonce[AUTH_NONCE_LEN], uint8_t role)
{
	uint8_t msg[AUTH_NONCE_LEN + 1];
	memcpy(msg, nonce, AUTH_NONCE_LEN);
	msg[AUTH_NONCE_LEN] = role;
	auth_hmac_sha256(out, token, toklen, msg, sizeof(msg));
}

int auth_verify(const uint8_t mac[AUTH_MAC_LEN], const char *token, size_t toklen,
		const uint8_t nonce[AUTH_NONCE_LEN], uint8_t role)
{
	uint8_t want[AUTH_MAC_LEN];
	auth_mac(want, token, toklen, nonce, role);
	int ok = crypto_verify_32(mac, want) == 0;
	sodium_memzero(want, sizeof(want));
	return ok ? 0 : -EACCES;
}

void auth_nonce(uint8_t out[AUTH_NONCE_LEN])
{
	auth_init(NULL);
	randombytes_buf(out, AUTH_NONCE_LEN);
}
