/*
 * conn.c — authenticated Envelope connections over libuv streams. See
 * include/byol/conn.h for the contract. Sections: config, teardown, writing, the
 * handshake, reading, servers, clients, addresses.
 *
 * Life of a conn: made by an accept or a connect with two handles (the stream and
 * the deadline timer); conn_close or an error sets `closing` and uv_closes both
 * (at once, or after the orderly flush); the last close callback reports to the
 * owner (on_close, or the connect callback) and frees everything. libuv calls
 * back cancelled write requests before the close callback, so no write buffer
 * outlives its conn.
 */
#include "byol/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/frame.h"

enum {
	ST_CONNECTING,      /* client: resolving or connecting */
	ST_AWAIT_HELLO,     /* client: connected, waiting for ServerHello */
	ST_AWAIT_RESULT,    /* client: ClientAuth sent */
	ST_AWAIT_AUTH,      /* server: ServerHello sent, waiting for ClientAuth */
	ST_OPEN,
};

#define POOL_MIN ((size_t)64 << 10) /* write buffers this large are pooled */

_Static_assert((int)BYOL__ROLE__ROLE_WORKER == (int)AUTH_ROLE_WORKER &&
		       (int)BYOL__ROLE__ROLE_CLIENT == (int)AUTH_ROLE_CLIENT &&
		       (int)BYOL__ROLE__ROLE_UNSPECIFIED == (int)AUTH_ROLE_SERVER,
	       "auth.h role bytes must match byol.Role");

/* A write request owns its frame: this header, then cap bytes. */
typedef struct wreq {
	uv_write_t req;
	conn *c;
	struct wreq *next;       /* in the pool */
	size_t cap, len;
	max_align_t data[];
} wreq;

/* A config with its strings copied; a server's conns share the server's. */
typedef struct {
	conn_config c;
	char *token, *name, *version;
	size_t toklen;
} config_copy;

typedef union {
	uv_tcp_t tcp;
	uv_pipe_t pipe;
	uv_stream_t stream;
	uv_handle_t handle;
} stream_u;

struct conn_server {
	stream_u h;
	int is_pipe, closing, listener_closed;
	config_copy cfg;
	conn *conns;             /* accepted and not yet freed */
	char addr[160];
};

/* A pending name lookup; outlives its conn if the conn closes first. */
typedef struct resolve {
	conn *c;                 /* NULL once the conn is gone */
	uv_getaddrinfo_t req;
	char host[128];
} resolve;

struct conn {
	stream_u h;
	uv_timer_t timer;        /* handshake and orderly-close deadline */
	int handles;             /* handles not yet closed */
	uint64_t id;
	int is_server;           /* accepted (1) or connected (0) */
	int state;
	int closing;             /* 1 orderly, 2 immediate */
	int opened;              /* on_open ran / the connect callback said 0 */
	int eof, shut, reading;
	conn_server *srv;
	conn *prev, *next;       /* in srv->conns */
	const config_copy *cfg;
	config_copy own;         /* client conns: their config */
	conn_connect_cb connect_cb;
	resolve *res;
	uv_connect_t connect_req;
	uv_shutdown_t shutdown_req;
	frame_reader rd;
	frame_arena arena;
	uint8_t nonce[AUTH_NONCE_LEN]; /* server: the one sent; client: its own */
	int role;
	char name[CONN_NAME_MAX + 1];
	char peer[160];
	void *data;
	int code;
	char reason[BYOL_ERR_LEN];
	size_t queued;
	int above;               /* over high water */
	wreq *pool;
	size_t pooled;           /* bytes in the pool */
	char discard[4096];      /* reads while closing */
};

static uint64_t next_id; /* conns may live on loops in several threads */

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* A peer's text made safe for a log line: non-printable bytes become '?'. */
static const char *clean(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < n; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || (unsigned char)src[i] > 0x7e
				 ? '?' : src[i];
	dst[i] = '\0';
	return dst;
}

/* A write to a peer that has gone raises SIGPIPE, which would end the process:
 * ignore it, unless the program has chosen a handler of its own. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* ---- config --------------------------------------------------------------- */

static void config_free(config_copy *k)
{
	if (k->token) {
		memset(k->token, 0, k->toklen);
		free(k->token);
	}
	free(k->name);
	free(k->version);
	memset(k, 0, sizeof(*k));
}

static int config_copy_in(config_copy *k, const conn_config *cfg, char *err)
{
	int has_token = cfg->token && cfg->token[0];
	int rc;
	memset(k, 0, sizeof(*k));
	if (has_token && (rc = auth_token_check(cfg->token, "conn config", err)) < 0)
		return rc;
	if (cfg->name && strlen(cfg->name) > CONN_NAME_MAX)
		return byol_err(err, -EINVAL, "name \"%.80s\" is longer than %d bytes",
				cfg->name, CONN_NAME_MAX);
	if ((rc = auth_init(err)) < 0)
		return rc;
	ignore_sigpipe();
	k->c = *cfg;
	if (!k->c.max_frame || k->c.max_frame > FRAME_MAX_LIMIT)
		k->c.max_frame = k->c.max_frame ? FRAME_MAX_LIMIT : FRAME_MAX_DEFAULT;
	if (!k->c.high_water)
		k->c.high_water = CONN_HIGH_WATER_DEFAULT;
	if (!k->c.handshake_ms)
		k->c.handshake_ms = CONN_HANDSHAKE_MS_DEFAULT;
	k->token = has_token ? strdup(cfg->token) : NULL;
	k->toklen = has_token ? strlen(cfg->token) : 0;
	k->name = strdup(cfg->name ? cfg->name : "");
	k->version = strdup(cfg->version ? cfg->version : "byold");
	if ((has_token && !k->token) || !k->name || !k->version) {
		config_free(k);
		return byol_err(err, -ENOMEM, "out of memory");
	}
	k->c.token = k->token;
	k->c.name = k->name;
	k->c.version = k->version;
	return 0;
}

static void logf_(const conn_config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(const conn_config *cfg, const char *fmt, ...)
{
	if (!cfg->log)
		return;
	char line[BYOL_ERR_LEN + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cfg->log(cfg->data, line);
}

/* ---- creation and teardown ------------------------------------------------ */

static conn *conn_new(uv_loop_t *loop, int is_pipe, char *err)
{
	conn *c = calloc(1, sizeof(*c));
	if (!c) {
		byol_err(err, -ENOMEM, "out of memory for a connection");
		return NULL;
	}
	int rc = is_pipe ? uv_pipe_init(loop, &c->h.pipe, 0) : uv_tcp_init(loop, &c->h.tcp);
	if (rc < 0) {
		free(c);
		byol_err(err, rc, "cannot create a socket: %s", uv_strerror(rc));
		return NULL;
	}
	uv_timer_init(loop, &c->timer); /* cannot fail */
	c->h.handle.data = c;
	c->timer.data = c;
	c->handles = 2;
	c->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	frame_reader_init(&c->rd, 0); /* given the config's limit once known */
	frame_arena_init(&c->arena);
	return c;
}

static void server_maybe_free(conn_server *s);

/* The last handle of c has closed: tell the owner, unlink, free. */
static void on_handle_closed(uv_handle_t *h)
{
	conn *c = h->data;
	if (--c->handles > 0)
		return;
	if (c->opened && c->cfg->c.on_close) {
		c->cfg->c.on_close(c, c->code, c->reason);
	} else if (!c->opened && c->connect_cb) {
		conn_connect_cb cb = c->connect_cb;
		c->connect_cb = NULL;
		cb(c, c->code < 0 ? c->code : -ECONNRESET, c->reason);
	}
	if (c->res)
		c->res->c = NULL;
	conn_server *s = c->srv;
	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	frame_reader_free(&c->rd);
	frame_arena_free(&c->arena);
	for (wreq *w = c->pool, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	config_free(&c->own);
	free(c);
	if (s)
		server_maybe_free(s);
}

static void close_handles(conn *c)
{
	c->closing = 2;
	if (!uv_is_closing(&c->h.handle))
		uv_close(&c->h.handle, on_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* Best effort: put one small frame on the socket now, if it takes it whole. */
static void try_send_now(conn *c, const Byol__Envelope *e)
{
	uint8_t buf[BYOL_ERR_LEN + 256];
	size_t len;
	if (c->state == ST_CONNECTING || frame_pack(e, buf, sizeof(buf), &len, NULL) < 0)
		return;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	uv_try_write(&c->h.stream, &b, 1);
}

/* Records why c closes (the first reason wins). */
static void set_reason(conn *c, int code, const char *reason)
{
	if (c->closing)
		return;
	c->code = code;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
}

/* Closes c now, first (unless already closing) recording the reason, logging it
 * when `log`, and telling the peer an Error when `tell`. Returns code. */
static int close_now(conn *c, int code, const char *reason, int log, int tell)
{
	if (c->closing == 2)
		return code;
	if (!c->closing) {
		set_reason(c, code, reason);
		if (log)
			logf_(&c->cfg->c, "conn %llu %s%s%s: %s", (unsigned long long)c->id,
			      c->peer, c->name[0] ? " " : "", c->name, reason);
		if (tell) {
			Byol__Error er = BYOL__ERROR__INIT;
			Byol__Envelope e = BYOL__ENVELOPE__INIT;
			er.code = code;
			er.message = c->reason;
			e.msg_case = BYOL__ENVELOPE__MSG_ERROR;
			e.error = &er;
			try_send_now(c, &e);
		}
	}
	close_handles(c);
	return code;
}

static int close_error(conn *c, int code, const char *reason)
{
	return close_now(c, code, reason, 1, 1);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	conn *c = req->handle->data;
	c->shut = 1;
	if (status < 0 || c->eof)
		close_handles(c);
}

static void timer_cb(uv_timer_t *t)
{
	conn *c = t->data;
	if (c->closing)
		close_handles(c); /* the orderly close took too long */
	else
		close_error(c, -ETIMEDOUT, c->state == ST_CONNECTING ? "connect timed out"
								      : "handshake timed out");
}

/* Orderly: stop delivering, flush the queue, shut down, read until the peer's
 * EOF (or the deadline), close. */
static void close_orderly(conn *c, const char *reason)
{
	if (c->closing)
		return;
	set_reason(c, 0, reason);
	c->closing = 1;
	if (c->state == ST_CONNECTING ||
	    uv_shutdown(&c->shutdown_req, &c->h.stream, shutdown_cb) < 0 ||
	    (!c->reading && uv_read_start(&c->h.stream, alloc_cb, read_cb) < 0)) {
		close_handles(c);
		return;
	}
	c->reading = 1;
	uv_timer_start(&c->timer, timer_cb, c->cfg->c.handshake_ms, 0);
}

void conn_close(conn *c, int code, const char *fmt, ...)
{
	char reason[BYOL_ERR_LEN] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(reason, sizeof(reason), fmt, ap);
		va_end(ap);
	}
	if (code < 0) {
		close_error(c, code, reason[0] ? reason : "closed by the owner");
	} else if (!c->is_server && !c->opened) {
		/* a connect in progress: its callback hears -ECANCELED */
		set_reason(c, -ECANCELED, "connect cancelled");
		close_handles(c);
	} else {
		close_orderly(c, reason[0] ? reason : "closed by the owner");
	}
}

/* ---- writing ---------------------------------------------------------------- */

static wreq *pool_take(conn *c, size_t need)
{
	wreq **best = NULL;
	for (wreq **p = &c->pool; *p; p = &(*p)->next)
		if ((*p)->cap >= need && (!best || (*p)->cap < (*best)->cap))
			best = p;
	if (!best)
		return NULL;
	wreq *w = *best;
	*best = w->next;
	c->pooled -= w->cap;
	return w;
}

/* Keeps large buffers for reuse, at most 2 * high_water bytes of them (what a
 * sender that pauses at high water can have in flight), dropping the smallest
 * first. Fresh pages cost more here than the copy into them. */
static void pool_give(conn *c, wreq *w)
{
	if (c->closing || w->cap < POOL_MIN) {
		free(w);
		return;
	}
	size_t limit = 2 * c->cfg->c.high_water;
	while (c->pool && c->pooled + w->cap > limit) {
		wreq **small = &c->pool;
		for (wreq **p = &c->pool; *p; p = &(*p)->next)
			if ((*p)->cap < (*small)->cap)
				small = p;
		if ((*small)->cap >= w->cap)
			break;
		wreq *drop = *small;
		*small = drop->next;
		c->pooled -= drop->cap;
		free(drop);
	}
	if (c->pooled + w->cap > limit) {
		free(w);
		return;
	}
	w->next = c->pool;
	c->pool = w;
	c->pooled += w->cap;
}

static void write_cb(uv_write_t *req, int status)
{
	wreq *w = (wreq *)req;
	conn *c = w->c;
	c->queued -= w->len;
	pool_give(c, w);
	if (status < 0) {
		if (status != UV_ECANCELED && !c->closing) {
			char r[BYOL_ERR_LEN];
			snprintf(r, sizeof(r), "write failed: %s", uv_strerror(status));
			close_error(c, status, r);
		}
		return;
	}
	if (c->above && c->queued <= c->cfg->c.high_water / 2) {
		c->above = 0;
		if (!c->closing && c->cfg->c.on_drain)
			c->cfg->c.on_drain(c);
	}
}

/* Queues e whatever the state (the handshake uses it directly). */
static int send_frame(conn *c, const Byol__Envelope *e, char *err)
{
	if (e->msg_case == BYOL__ENVELOPE__MSG__NOT_SET)
		return byol_err(err, -EINVAL, "cannot send an Envelope with no message set");
	size_t n = frame_size(e);
	if (n - FRAME_HEADER > c->cfg->c.max_frame || n > UINT_MAX)
		return byol_err(err, -EMSGSIZE, "%s message of %zu bytes exceeds the frame "
				"limit %zu", frame_msg_name(e->msg_case), n - FRAME_HEADER,
				c->cfg->c.max_frame);
	wreq *w = n >= POOL_MIN ? pool_take(c, n) : NULL;
	if (!w) {
		size_t cap = n >= POOL_MIN ? (n + 4095) & ~(size_t)4095 : n;
		if (!(w = malloc(sizeof(wreq) + cap)))
			return byol_err(err, -ENOMEM, "out of memory for a %zu-byte frame", n);
		w->cap = cap;
	}
	w->c = c;
	w->next = NULL;
	int rc = frame_pack(e, w->data, w->cap, &w->len, err);
	if (rc < 0) {
		pool_give(c, w);
		return rc;
	}
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
	if ((rc = uv_write(&w->req, &c->h.stream, &b, 1, write_cb)) < 0) {
		pool_give(c, w);
		char r[BYOL_ERR_LEN];
		snprintf(r, sizeof(r), "write failed: %s", uv_strerror(rc));
		close_error(c, rc, r);
		return byol_err(err, rc, "%s: %s", c->peer, r);
	}
	c->queued += w->len;
	if (!c->above && c->queued > c->cfg->c.high_water) {
		c->above = 1;
		if (c->cfg->c.on_high_water)
			c->cfg->c.on_high_water(c);
	}
	return 0;
}

int conn_send(conn *c, const Byol__Envelope *e, char *err)
{
	if (c->closing)
		return byol_err(err, -EPIPE, "conn %llu %s: the connection is closing",
				(unsigned long long)c->id, c->peer);
	if (c->state != ST_OPEN)
		return byol_err(err, -ENOTCONN, "conn %llu %s: the handshake has not "
				"finished", (unsigned long long)c->id, c->peer);
	if (e->msg_case == BYOL__ENVELOPE__MSG_SERVER_HELLO ||
	    e->msg_case == BYOL__ENVELOPE__MSG_CLIENT_AUTH ||
	    e->msg_case == BYOL__ENVELOPE__MSG_AUTH_RESULT)
		return byol_err(err, -EINVAL, "%s is sent by the handshake only",
				frame_msg_name(e->msg_case));
	return send_frame(c, e, err);
}

size_t conn_write_queue_size(const conn *c)
{
	return c->queued;
}

/* ---- the handshake ---------------------------------------------------------- */

static void send_hello(conn *c)
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
	e.msg_case = BYOL__ENVELOPE__MSG_SERVER_HELLO;
	e.server_hello = &h;
	c->state = ST_AWAIT_AUTH;
	int rc = send_frame(c, &e, err);
	if (rc < 0)
		close_error(c, rc, err);
}


/* Server: the one message allowed before the conn is open. */
static int on_client_auth(conn *c, const Byol__ClientAuth *a)
{
	const config_copy *k = c->cfg;
	char r[BYOL_ERR_LEN];
	if (a->protocol != CONN_PROTOCOL) {
		snprintf(r, sizeof(r), "peer speaks protocol %u, this server %d",
			 a->protocol, CONN_PROTOCOL);
		return close_error(c, -EPROTO, r);
	}
	if (a->role != BYOL__ROLE__ROLE_WORKER && a->role != BYOL__ROLE__ROLE_CLIENT) {
		snprintf(r, sizeof(r), "client_auth with a bad role %d", (int)a->role);
		return close_error(c, -EPROTO, r);
	}
	if (strlen(a->name) > CONN_NAME_MAX || !printable(a->name))
		return close_error(c, -EPROTO, "client_auth with a bad name (not printable "
				   "ASCII of at most 63 bytes)");
	snprintf(c->name, sizeof(c->name), "%s", a->name);
	c->role = a->role;
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
			try_send_now(c, &e);
			return close_now(c, -EACCES, r, 1, 0);
		}
		auth_mac(proof, k->token, k->toklen, a->client_nonce.data, AUTH_ROLE_SERVER);
		res.server_hmac.data = proof;
		res.server_hmac.len = AUTH_MAC_LEN;
	}
	res.ok = 1;
	int rc = send_frame(c, &e, r);
	if (rc < 0)
		return close_error(c, rc, r);
	c->state = ST_OPEN;
	c->opened = 1;
	uv_timer_stop(&c->timer);
	if (k->c.on_open)
		k->c.on_open(c);
	return 0;
}

/* Client: the server's hello; answer it. */
static int on_server_hello(conn *c, const Byol__ServerHello *h)
{
	const config_copy *k = c->cfg;
	char r[BYOL_ERR_LEN];
	clean(c->name, sizeof(c->name), h->version);
	if (h->protocol != CONN_PROTOCOL) {
		snprintf(r, sizeof(r), "server speaks protocol %u, this client %d",
			 h->protocol, CONN_PROTOCOL);
		return close_error(c, -EPROTO, r);
	}
	if (h->nonce.len != AUTH_NONCE_LEN) {
		snprintf(r, sizeof(r), "server_hello with a %zu-byte nonce", h->nonce.len);
		return close_error(c, -EPROTO, r);
	}
	if (h->auth_required && !k->token)
		return close_error(c, -EACCES, "the server requires a token and none is "
				   "configured here");
	if (!h->auth_required && k->token)
		return close_error(c, -EACCES, "the server has no token, so it cannot prove "
				   "itself; refused because a token is configured here");
	Byol__ClientAuth a = BYOL__CLIENT_AUTH__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	uint8_t mac[AUTH_MAC_LEN];
	a.role = (Byol__Role)k->c.role;
	a.name = k->name;
	a.version = k->version;
	a.protocol = CONN_PROTOCOL;
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
	int rc = send_frame(c, &e, r);
	if (rc < 0)
		close_error(c, rc, r);
	return 0;
}

/* Client: the verdict. */
static int on_auth_result(conn *c, const Byol__AuthResult *res)
{
	const config_copy *k = c->cfg;
	char r[BYOL_ERR_LEN], t[256];
	if (!res->ok) {
		snprintf(r, sizeof(r), "refused by the server: %s",
			 clean(t, sizeof(t), res->reason));
		return close_now(c, -EACCES, r, 1, 0);
	}
	if (k->token && (res->server_hmac.len != AUTH_MAC_LEN ||
			 auth_verify(res->server_hmac.data, k->token, k->toklen, c->nonce,
				     AUTH_ROLE_SERVER) < 0))
		return close_error(c, -EACCES, "the server failed to prove it holds the token");
	c->state = ST_OPEN;
	c->opened = 1;
	c->role = AUTH_ROLE_SERVER;
	uv_timer_stop(&c->timer);
	conn_connect_cb cb = c->connect_cb;
	c->connect_cb = NULL;
	if (cb)
		cb(c, 0, NULL);
	return 0;
}

/* ---- reading ---------------------------------------------------------------- */

/* One complete frame. Returns < 0 to stop the feed: the conn is closing (its
 * reason already recorded). */
static int on_frame(void *ud, const uint8_t *frame, size_t len, char *err)
{
	conn *c = ud;
	Byol__Envelope *e;
	char r[BYOL_ERR_LEN], t[256];
	if (c->closing)
		return -EPIPE;
	int rc = frame_decode(&c->arena, frame, len, &e, r);
	if (rc < 0) {
		close_error(c, rc, r);
		return rc;
	}
	int mc = e->msg_case;
	int want = c->state == ST_AWAIT_AUTH     ? BYOL__ENVELOPE__MSG_CLIENT_AUTH
		   : c->state == ST_AWAIT_HELLO  ? BYOL__ENVELOPE__MSG_SERVER_HELLO
		   : c->state == ST_AWAIT_RESULT ? BYOL__ENVELOPE__MSG_AUTH_RESULT
						 : 0;
	if (want && mc == BYOL__ENVELOPE__MSG_ERROR) {
		/* the peer gave up on the handshake and says why */
		snprintf(r, sizeof(r), "peer error during the handshake: %s",
			 clean(t, sizeof(t), e->error->message));
		close_now(c, e->error->code < 0 ? e->error->code : -EPROTO, r, 1, 0);
	} else if (want && mc != want) {
		snprintf(r, sizeof(r), "expected %s, got %s", frame_msg_name(want),
			 frame_msg_name(mc));
		close_error(c, -EPROTO, r);
	} else if (!want && (mc == BYOL__ENVELOPE__MSG_SERVER_HELLO ||
			     mc == BYOL__ENVELOPE__MSG_CLIENT_AUTH ||
			     mc == BYOL__ENVELOPE__MSG_AUTH_RESULT)) {
		snprintf(r, sizeof(r), "unexpected %s after the handshake", frame_msg_name(mc));
		close_error(c, -EPROTO, r);
	} else if (c->state == ST_AWAIT_AUTH) {
		on_client_auth(c, e->client_auth);
	} else if (c->state == ST_AWAIT_HELLO) {
		on_server_hello(c, e->server_hello);
	} else if (c->state == ST_AWAIT_RESULT) {
		on_auth_result(c, e->auth_result);
	} else if (c->cfg->c.on_message) {
		c->cfg->c.on_message(c, e);
	}
	(void)err;
	return c->closing ? -EPIPE : 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	uint8_t *p;
	size_t n;
	(void)suggested;
	if (c->closing || frame_reader_prepare(&c->rd, &p, &n, NULL) < 0) {
		p = (uint8_t *)c->discard;
		n = sizeof(c->discard);
	}
	*buf = uv_buf_init((char *)p, (unsigned)n);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = s->data;
	char r[BYOL_ERR_LEN];
	(void)buf;
	if (nread == 0)
		return;
	if (c->closing) {
		/* orderly close: drop what comes, wait for the EOF */
		if (nread < 0) {
			c->eof = 1;
			uv_read_stop(s);
			if (c->shut || nread != UV_EOF)
				close_handles(c);
		}
		return;
	}
	if (nread > 0) {
		int rc = frame_reader_commit(&c->rd, (size_t)nread, on_frame, c, r);
		/* on_frame closes the conn for what it finds; the reader's own
		 * errors (a bad length) are closed here */
		if (rc < 0 && !c->closing)
			close_error(c, rc, r);
		return;
	}
	if (nread == UV_EOF) {
		if (frame_reader_finish(&c->rd, r) < 0)
			close_error(c, -EPROTO, r);
		else if (c->state != ST_OPEN)
			close_error(c, -ECONNRESET, "peer closed the connection during the "
				    "handshake");
		else
			close_now(c, 0, "closed by the peer", 0, 0);
		return;
	}
	snprintf(r, sizeof(r), "read failed: %s", uv_strerror((int)nread));
	close_error(c, (int)nread, r);
}

static int start_reading(conn *c, char *err)
{
	int rc = uv_read_start(&c->h.stream, alloc_cb, read_cb);
	if (rc < 0)
		return byol_err(err, rc, "%s: cannot read: %s", c->peer, uv_strerror(rc));
	c->reading = 1;
	return 0;
}

int conn_set_reading(conn *c, int on)
{
	if (c->closing)
		return -EPIPE;
	if (on && !c->reading)
		return start_reading(c, NULL);
	if (!on && c->reading) {
		c->reading = 0;
		return uv_read_stop(&c->h.stream);
	}
	return 0;
}

int conn_is_open(const conn *c) { return c->state == ST_OPEN && !c->closing; }
void *conn_owner(const conn *c) { return c->cfg->c.data; }
void conn_set_data(conn *c, void *data) { c->data = data; }
void *conn_data(const conn *c) { return c->data; }
int conn_role(const conn *c) { return c->role; }
const char *conn_name(const conn *c) { return c->name; }
const char *conn_peer(const conn *c) { return c->peer; }
uint64_t conn_id(const conn *c) { return c->id; }
uv_stream_t *conn_stream(conn *c) { return &c->h.stream; }

/* ---- servers ---------------------------------------------------------------- */

static void server_maybe_free(conn_server *s)
{
	if (s->listener_closed && !s->conns) {
		config_free(&s->cfg);
		free(s);
	}
}

static void on_listener_closed(uv_handle_t *h)
{
	conn_server *s = h->data;
	s->listener_closed = 1;
	server_maybe_free(s);
}

/* The peer of an accepted conn, for messages. */
static void describe_peer(conn *c)
{
	if (c->srv->is_pipe) {
		struct ucred cr;
		socklen_t len = sizeof(cr);
		uv_os_fd_t fd;
		if (uv_fileno(&c->h.handle, &fd) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
			snprintf(c->peer, sizeof(c->peer), "unix:%.120s (pid %d)", c->srv->addr,
				 (int)cr.pid);
		else
			snprintf(c->peer, sizeof(c->peer), "unix:%.120s", c->srv->addr);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[64] = "?";
	int port = 0;
	if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
		uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip));
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	}
	snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
		 ip, port);
}

static void on_connection(uv_stream_t *ls, int status)
{
	conn_server *s = ls->data;
	char err[BYOL_ERR_LEN];
	if (status < 0) {
		logf_(&s->cfg.c, "%s: accept failed: %s", s->addr, uv_strerror(status));
		return;
	}
	conn *c = conn_new(ls->loop, s->is_pipe, err);
	if (!c) {
		logf_(&s->cfg.c, "%s: %s", s->addr, err);
		return;
	}
	c->is_server = 1;
	c->srv = s;
	c->cfg = &s->cfg;
	frame_reader_init(&c->rd, s->cfg.c.max_frame);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	snprintf(c->peer, sizeof(c->peer), "%.120s", s->addr);
	int rc = uv_accept(ls, &c->h.stream);
	if (rc < 0) {
		snprintf(err, sizeof(err), "accept failed: %s", uv_strerror(rc));
		close_now(c, rc, err, 1, 0);
		return;
	}
	describe_peer(c);
	if (!s->is_pipe)
		uv_tcp_nodelay(&c->h.tcp, 1);
	uv_timer_start(&c->timer, timer_cb, s->cfg.c.handshake_ms, 0);
	if ((rc = start_reading(c, err)) < 0) {
		close_error(c, rc, err);
		return;
	}
	send_hello(c);
}

static int parse_hostport(const char *s, char *host, size_t hostlen, int *port, char *err);
static int resolve_now(uv_loop_t *loop, const char *host, int port,
		       struct sockaddr_storage *ss, char *err);

/* Makes the server struct with its listener handle initialised. */
static conn_server *server_new(uv_loop_t *loop, int is_pipe, const char *addr,
			       const conn_config *cfg, int *rc, char *err)
{
	conn_server *s = calloc(1, sizeof(*s));
	if (!s) {
		*rc = byol_err(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if ((*rc = config_copy_in(&s->cfg, cfg, err)) < 0) {
		free(s);
		return NULL;
	}
	s->is_pipe = is_pipe;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	*rc = is_pipe ? uv_pipe_init(loop, &s->h.pipe, 0) : uv_tcp_init(loop, &s->h.tcp);
	if (*rc < 0) {
		byol_err(err, *rc, "%s: cannot create a socket: %s", addr, uv_strerror(*rc));
		config_free(&s->cfg);
		free(s);
		return NULL;
	}
	s->h.handle.data = s;
	return s;
}

/* A listener that failed after its handle was made: close it (freeing s). */
static int server_fail(conn_server *s, int rc)
{
	s->closing = 1;
	uv_close(&s->h.handle, on_listener_closed);
	return rc;
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

int conn_listen_tcp(uv_loop_t *loop, const char *hostport, const conn_config *cfg,
		    conn_server **out, char *err)
{
	char host[128];
	int port, rc;
	struct sockaddr_storage ss;
	*out = NULL;
	if ((rc = parse_hostport(hostport, host, sizeof(host), &port, err)) < 0 ||
	    (rc = resolve_now(loop, host, port, &ss, err)) < 0)
		return rc;
	if (!(cfg->token && cfg->token[0]) && !is_loopback((struct sockaddr *)&ss))
		return byol_err(err, -EPERM, "%s: refusing to listen beyond loopback "
				"without a token", hostport);
	conn_server *s = server_new(loop, 0, hostport, cfg, &rc, err);
	if (!s)
		return rc;
	if ((rc = uv_tcp_bind(&s->h.tcp, (struct sockaddr *)&ss, 0)) < 0 ||
	    (rc = uv_listen(&s->h.stream, 128, on_connection)) < 0) {
		byol_err(err, rc, "%s: cannot listen: %s", hostport, uv_strerror(rc));
		return server_fail(s, rc);
	}
	*out = s;
	return 0;
}

int conn_listen_pipe(uv_loop_t *loop, const char *path, const conn_config *cfg,
		     conn_server **out, char *err)
{
	struct sockaddr_un sun;
	struct stat st;
	int rc;
	*out = NULL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return byol_err(err, -ENAMETOOLONG, "%s: socket path too long", path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* someone accepting there? if not, it is stale: replace it */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, path, strlen(path));
		int live = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
		if (fd >= 0)
			close(fd);
		if (live)
			return byol_err(err, -EADDRINUSE, "%s: another server is listening "
					"there", path);
		unlink(path);
	}
	conn_server *s = server_new(loop, 1, path, cfg, &rc, err);
	if (!s)
		return rc;
	if ((rc = uv_pipe_bind(&s->h.pipe, path)) < 0) {
		byol_err(err, rc, "%s: cannot bind: %s", path, uv_strerror(rc));
		return server_fail(s, rc);
	}
	/* owner only, before anyone can connect */
	if (chmod(path, 0600) < 0) {
		rc = byol_err(err, -errno, "%s: chmod: %s", path, strerror(errno));
		unlink(path);
		return server_fail(s, rc);
	}
	if ((rc = uv_listen(&s->h.stream, 128, on_connection)) < 0) {
		byol_err(err, rc, "%s: cannot listen: %s", path, uv_strerror(rc));
		unlink(path);
		return server_fail(s, rc);
	}
	*out = s;
	return 0;
}

int conn_server_port(const conn_server *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (s->is_pipe || uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

void conn_server_close(conn_server *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	if (s->is_pipe)
		unlink(s->addr);
	/* the last conn to go may free s unless the listener is still open */
	uv_close(&s->h.handle, on_listener_closed);
	for (conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->opened)
			close_orderly(c, "server shutting down");
		else
			close_now(c, -ECANCELED, "server shutting down", 0, 1);
	}
}

/* ---- clients ------------------------------------------------------------------ */

static void connect_done(uv_connect_t *req, int status)
{
	conn *c = req->handle->data;
	char r[BYOL_ERR_LEN];
	if (c->closing)
		return;
	if (status < 0) {
		snprintf(r, sizeof(r), "cannot connect: %s", uv_strerror(status));
		close_now(c, status, r, 1, 0);
		return;
	}
	if (c->h.handle.type == UV_TCP)
		uv_tcp_nodelay(&c->h.tcp, 1);
	c->state = ST_AWAIT_HELLO;
	int rc = start_reading(c, r);
	if (rc < 0)
		close_error(c, rc, r);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	resolve *res = req->data;
	conn *c = res->c;
	char r[BYOL_ERR_LEN];
	if (c && !c->closing) {
		c->res = NULL;
		if (status < 0 || !ai) {
			snprintf(r, sizeof(r), "cannot resolve %s: %s", res->host,
				 uv_strerror(status));
			close_now(c, status < 0 ? status : -ENOENT, r, 1, 0);
		} else {
			int rc = uv_tcp_connect(&c->connect_req, &c->h.tcp, ai->ai_addr,
						connect_done);
			if (rc < 0) {
				snprintf(r, sizeof(r), "cannot connect: %s", uv_strerror(rc));
				close_now(c, rc, r, 1, 0);
			}
		}
	} else if (c) {
		c->res = NULL;
	}
	uv_freeaddrinfo(ai);
	free(res);
}

/* The common start of a client conn. */
static conn *client_new(uv_loop_t *loop, int is_pipe, const char *peer,
			const conn_config *cfg, conn_connect_cb cb, int *rc, char *err)
{
	if (cfg->role != AUTH_ROLE_WORKER && cfg->role != AUTH_ROLE_CLIENT) {
		*rc = byol_err(err, -EINVAL, "%s: a connection's role must be worker or "
			       "client, not %d", peer, cfg->role);
		return NULL;
	}
	config_copy k;
	if ((*rc = config_copy_in(&k, cfg, err)) < 0)
		return NULL;
	conn *c = conn_new(loop, is_pipe, err);
	if (!c) {
		config_free(&k);
		*rc = -ENOMEM;
		return NULL;
	}
	c->own = k;
	c->cfg = &c->own;
	frame_reader_init(&c->rd, k.c.max_frame);
	c->state = ST_CONNECTING;
	snprintf(c->peer, sizeof(c->peer), "%s%.120s", is_pipe ? "unix:" : "", peer);
	uv_timer_start(&c->timer, timer_cb, k.c.handshake_ms, 0);
	c->connect_cb = cb;
	return c;
}

int conn_connect_tcp(uv_loop_t *loop, const char *hostport, const conn_config *cfg,
		     conn_connect_cb cb, conn **out, char *err)
{
	char host[128];
	int port, rc;
	struct sockaddr_storage ss;
	if (out)
		*out = NULL;
	if ((rc = parse_hostport(hostport, host, sizeof(host), &port, err)) < 0)
		return rc;
	conn *c = client_new(loop, 0, hostport, cfg, cb, &rc, err);
	if (!c)
		return rc;
	memset(&ss, 0, sizeof(ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
		rc = uv_tcp_connect(&c->connect_req, &c->h.tcp, (struct sockaddr *)&ss,
				    connect_done);
	} else {
		resolve *res = calloc(1, sizeof(*res));
		char portstr[16];
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
		snprintf(portstr, sizeof(portstr), "%d", port);
		rc = -ENOMEM;
		if (res) {
			res->c = c;
			res->req.data = res;
			snprintf(res->host, sizeof(res->host), "%s", host);
			rc = uv_getaddrinfo(loop, &res->req, resolved, host, portstr, &hints);
			if (rc < 0)
				free(res);
			else
				c->res = res;
		}
	}
	if (rc < 0) {
		c->connect_cb = NULL; /* a failed call never calls back */
		close_handles(c);
		return byol_err(err, rc, "%s: cannot connect: %s", hostport, uv_strerror(rc));
	}
	if (out)
		*out = c;
	return 0;
}

int conn_connect_pipe(uv_loop_t *loop, const char *path, const conn_config *cfg,
		      conn_connect_cb cb, conn **out, char *err)
{
	struct sockaddr_un sun;
	int rc;
	if (out)
		*out = NULL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return byol_err(err, -ENAMETOOLONG, "%s: socket path too long", path);
	conn *c = client_new(loop, 1, path, cfg, cb, &rc, err);
	if (!c)
		return rc;
	uv_pipe_connect(&c->connect_req, &c->h.pipe, path, connect_done);
	if (out)
		*out = c;
	return 0;
}

/* ---- addresses ---------------------------------------------------------------- */

/* "host:port" or "[v6]:port" into host and port (0..65535). */
static int parse_hostport(const char *s, char *host, size_t hostlen, int *port, char *err)
{
	const char *colon, *h = s;
	size_t n;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return byol_err(err, -EINVAL, "%s: expected [address]:port", s);
		h = s + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return byol_err(err, -EINVAL, "%s: expected host:port", s);
		n = (size_t)(colon - s);
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (n == 0 || n >= hostlen || !colon[1] || *end || p < 0 || p > 65535)
		return byol_err(err, -EINVAL, "%s: expected host:port with a port in "
				"0..65535", s);
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

/* A numeric address, or a name resolved synchronously (start-up only). */
static int resolve_now(uv_loop_t *loop, const char *host, int port,
		       struct sockaddr_storage *ss, char *err)
{
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	uv_getaddrinfo_t req;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = uv_getaddrinfo(loop, &req, NULL, host, portstr, &hints);
	if (rc < 0)
		return byol_err(err, rc == UV_EAI_NONAME ? -ENOENT : rc,
				"cannot resolve %s: %s", host, uv_strerror(rc));
	memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	return 0;
}
