/*
 * auth.h — the cluster token and the handshake's HMACs (libsodium).
 *
 * The cluster shares one secret token, kept in a file readable by its owner only.
 * On every connection the server sends a fresh 32-byte nonce; the peer answers
 * with HMAC-SHA256(token, nonce || role byte) and its own 32-byte nonce, and the
 * server proves it holds the token too with HMAC-SHA256(token, client_nonce ||
 * AUTH_ROLE_SERVER). The role byte separates the two directions, so neither
 * answer can be replayed as the other. The token is the HMAC key as is (any
 * length; HMAC hashes keys longer than 64 bytes). Verification is constant-time.
 *
 * Tokens are text: AUTH_TOKEN_MIN..AUTH_TOKEN_MAX bytes after trimming leading
 * and trailing whitespace, no NUL byte. `head -c 32 /dev/urandom | base64 > token;
 * chmod 600 token` makes a good one.
 */
#ifndef BYOL_AUTH_H
#define BYOL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_NONCE_LEN 32
#define AUTH_MAC_LEN 32
#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 4096

/* Role bytes; the same values as byol.Role in proto/byol.proto. */
enum {
	AUTH_ROLE_SERVER = 0,   /* ROLE_UNSPECIFIED: only the server's proof */
	AUTH_ROLE_WORKER = 1,
	AUTH_ROLE_CLIENT = 2,
};

/* Initialises libsodium (once per process; thread-safe, cheap after the first
 * call). Every function below calls it too; call it yourself at start-up to get
 * the error early. Returns 0 or -EIO. */
int auth_init(char *err);

/* Reads the token from the file at path: refuses (with a message naming the
 * file) a file that is not a regular file, has any permission bit for group or
 * others (-EPERM, "token file /etc/byold/token has mode 0644: it must not be
 * accessible to group or others (chmod 600 /etc/byold/token)"), is larger than
 * AUTH_TOKEN_MAX plus whitespace, or holds a NUL byte (-EINVAL); trims leading
 * and trailing whitespace; refuses an empty token or one shorter than
 * AUTH_TOKEN_MIN bytes (-EINVAL). Open/read errors give -errno ("path: No such
 * file or directory"). On success *token is a NUL-terminated string of *len
 * bytes owned by the caller, to be released with auth_token_free; on failure it
 * is NULL. len may be NULL. */
int auth_token_load(const char *path, char **token, size_t *len, char *err);

/* Checks a token given some other way (a config value): -EINVAL unless it is
 * AUTH_TOKEN_MIN..AUTH_TOKEN_MAX bytes. `what` names its source in the message. */
int auth_token_check(const char *token, const char *what, char *err);

/* Wipes and frees a token from auth_token_load. NULL is harmless. */
void auth_token_free(char *token);

/* HMAC-SHA256 of msg under key (keylen may be anything, 0 included). */
void auth_hmac_sha256(uint8_t out[AUTH_MAC_LEN], const void *key, size_t keylen,
		      const void *msg, size_t msglen);

/* The handshake MAC: HMAC-SHA256(token, nonce || role), over 33 bytes. */
void auth_mac(uint8_t out[AUTH_MAC_LEN], const char *token, size_t toklen,
	      const uint8_t nonce[AUTH_NONCE_LEN], uint8_t role);

/* Checks mac against auth_mac(token, nonce, role) in constant time. Returns 0
 * when it matches, -EACCES otherwise. */
int auth_verify(const uint8_t mac[AUTH_MAC_LEN], const char *token, size_t toklen,
		const uint8_t nonce[AUTH_NONCE_LEN], uint8_t role);

/* Fills out with AUTH_NONCE_LEN bytes from the system's random source. */
void auth_nonce(uint8_t out[AUTH_NONCE_LEN]);

#endif
