/*
 * conn_handshake.c — a conn's handshake (include/byol/conn.h has the contract):
 * the server's hello with a fresh nonce, the client's answer with its HMAC of
 * the token, the server's verdict with its own proof; what each side offers
 * (attachment frames, shared memory) is settled here too.
 */
#include <stdio.h>
#include <string.h>

#include "byol/auth.h"
#include "conn_internal.h"

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

void conn_send_hello(conn *c)
{
	Byol__ServerHello h = BYOL__SERVER_HELLO__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	char err[BYOL_ERR_LEN];
	auth_nonce(c->nonce);
	h.nonce.data = c->nonce;
	h.nonce.len = AUTH_NONCE_LEN;
	h.version = c->cfg->version;
	h.auth_required = c->cfg->token != NULL;
	h.protocol = CONN_PROTOCOL;
	h.attachments = 1;
	h.shm = c->shm_offered = conn_shm_possible(c);
	e.msg_case = BYOL__ENVELOPE__MSG_SERVER_HELLO;
	e.server_hello = &h;
	c->state = ST_AWAIT_AUTH;
	int rc = conn_send_frame(c, &e, err);
	if (rc < 0)
		conn_close_error(c, rc, err);
}


/* Server: the one message allowed before the conn is open. */
int conn_on_client_auth(conn *c, const Byol__ClientAuth *a)
{
	const config_copy *k = c->cfg;
	char r[BYOL_ERR_LEN];
	if (a->protocol != CONN_PROTOCOL) {
		snprintf(r, sizeof(r), "peer speaks protocol %u, this server %d",
			 a->protocol, CONN_PROTOCOL);
		return conn_close_error(c, -EPROTO, r);
	}
	if (a->role != BYOL__ROLE__ROLE_WORKER && a->role != BYOL__ROLE__ROLE_CLIENT) {
		snprintf(r, sizeof(r), "client_auth with a bad role %d", (int)a->role);
		return conn_close_error(c, -EPROTO, r);
	}
	if (strlen(a->name) > CONN_NAME_MAX || !printable(a->name))
		return conn_close_error(c, -EPROTO, "client_auth with a bad name (not printable "
					"ASCII of at most 63 bytes)");
	snprintf(c->name, sizeof(c->name), "%s", a->name);
	c->role = a->role;
	c->peer_attachments = a->attachments;
	c->shm = c->shm_agreed = c->shm_offered && a->shm;
	Byol__AuthResult res = BYOL__AUTH_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	uint8_t proof[AUTH_MAC_LEN];
	e.msg_case = BYOL__ENVELOPE__MSG_AUTH_RESULT;
	e.auth_result = &res;
	if (k->token) {
		if (a->hmac.len != AUTH_MAC_LEN || a->client_nonce.len != AUTH_NONCE_LEN ||
		    auth_verify(a->hmac.data, k->token, k->toklen, c->nonce,
				(uint8_t)a->role) < 0) {
			snprintf(r, sizeof(r), "authentication failed: %s",
				 a->hmac.len ? "wrong token" : "no token given");
			/* the refusal is the answer: an AuthResult, not an Error */
			res.reason = r;
			conn_try_send_now(c, &e);
			return conn_close_now(c, -EACCES, r, 1, 0);
		}
		auth_mac(proof, k->token, k->toklen, a->client_nonce.data, AUTH_ROLE_SERVER);
		res.server_hmac.data = proof;
		res.server_hmac.len = AUTH_MAC_LEN;
	}
	res.ok = 1;
	int rc = conn_send_frame(c, &e, r);
	if (rc < 0)
		return conn_close_error(c, rc, r);
	c->state = ST_OPEN;
	c->opened = 1;
	frame_reader_set_max(&c->rd, c->cfg->c.max_frame);
	uv_timer_stop(&c->timer);
	if (k->c.on_open)
		k->c.on_open(c);
	return 0;
}

/* Client: the server's hello; answer it. */
int conn_on_server_hello(conn *c, const Byol__ServerHello *h)
{
	const config_copy *k = c->cfg;
	char r[BYOL_ERR_LEN];
	conn_clean(c->name, sizeof(c->name), h->version);
	if (h->protocol != CONN_PROTOCOL) {
		snprintf(r, sizeof(r), "server speaks protocol %u, this client %d",
			 h->protocol, CONN_PROTOCOL);
		return conn_close_error(c, -EPROTO, r);
	}
	if (h->nonce.len != AUTH_NONCE_LEN) {
		snprintf(r, sizeof(r), "server_hello with a %zu-byte nonce", h->nonce.len);
		return conn_close_error(c, -EPROTO, r);
	}
	if (h->auth_required && !k->token)
		return conn_close_error(c, -EACCES, "the server requires a token and none is "
					"configured here");
	if (!h->auth_required && k->token)
		return conn_close_error(c, -EACCES, "the server has no token, so it cannot prove "
					"itself; refused because a token is configured here");
	Byol__ClientAuth a = BYOL__CLIENT_AUTH__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	uint8_t mac[AUTH_MAC_LEN];
	a.role = (Byol__Role)k->c.role;
	a.name = k->name;
	a.version = k->version;
	a.protocol = CONN_PROTOCOL;
	a.attachments = 1;
	c->peer_attachments = h->attachments;
	a.shm = conn_shm_possible(c);
	c->shm = c->shm_agreed = a.shm && h->shm;
	auth_nonce(c->nonce);
	a.client_nonce.data = c->nonce;
	a.client_nonce.len = AUTH_NONCE_LEN;
	if (k->token) {
		auth_mac(mac, k->token, k->toklen, h->nonce.data, (uint8_t)k->c.role);
		a.hmac.data = mac;
		a.hmac.len = AUTH_MAC_LEN;
	}
	e.msg_case = BYOL__ENVELOPE__MSG_CLIENT_AUTH;
	e.client_auth = &a;
	c->state = ST_AWAIT_RESULT;
	int rc = conn_send_frame(c, &e, r);
	if (rc < 0)
		conn_close_error(c, rc, r);
	return 0;
}

/* Client: the verdict. */
int conn_on_auth_result(conn *c, const Byol__AuthResult *res)
{
	const config_copy *k = c->cfg;
	char r[BYOL_ERR_LEN], t[256];
	if (!res->ok) {
		snprintf(r, sizeof(r), "refused by the server: %s",
			 conn_clean(t, sizeof(t), res->reason));
		return conn_close_now(c, -EACCES, r, 1, 0);
	}
	if (k->token && (res->server_hmac.len != AUTH_MAC_LEN ||
			 auth_verify(res->server_hmac.data, k->token, k->toklen, c->nonce,
				     AUTH_ROLE_SERVER) < 0))
		return conn_close_error(c, -EACCES,
					"the server failed to prove it holds the token");
	c->state = ST_OPEN;
	c->opened = 1;
	frame_reader_set_max(&c->rd, c->cfg->c.max_frame);
	c->role = AUTH_ROLE_SERVER;
	uv_timer_stop(&c->timer);
	conn_connect_cb cb = c->connect_cb;
	c->connect_cb = NULL;
	if (cb)
		cb(c, 0, NULL);
	return 0;
}
