/*
 * conn.c — authenticated Envelope connections over libuv streams: a conn's life
 * once it exists. See include/byol/conn.h for the contract. Sections: teardown,
 * writing, reading; conn_handshake.c has the handshake, conn_shm.c the
 * shared-memory rings, conn_net.c makes conns (configs, servers, clients,
 * addresses), and conn_internal.h holds what they share.
 *
 * Life of a conn: made by an accept or a connect with two handles (the stream and
 * the deadline timer); conn_close or an error sets `closing` and uv_closes both
 * (at once, or after the orderly flush); the last close callback reports to the
 * owner (on_close, or the connect callback) and frees everything. libuv calls
 * back cancelled write requests before the close callback, so no write buffer
 * outlives its conn.
 */
#include "byol/conn.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/auth.h"
#include "byol/frame.h"
#include "conn_internal.h"

#define POOL_MIN ((size_t)64 << 10) /* write buffers this large are pooled */

_Static_assert((int)BYOL__ROLE__ROLE_WORKER == (int)AUTH_ROLE_WORKER &&
		       (int)BYOL__ROLE__ROLE_CLIENT == (int)AUTH_ROLE_CLIENT &&
		       (int)BYOL__ROLE__ROLE_UNSPECIFIED == (int)AUTH_ROLE_SERVER,
	       "auth.h role bytes must match byol.Role");

/* A write request owns its frame, or its head: this header, then cap bytes.
 * The frame's rest, when not in data: a borrowed tail. */
struct wreq {
	uv_write_t req;
	conn *c;
	struct wreq *next;       /* in the pool */
	size_t cap, len;         /* len: bytes of data sent */
	size_t extra;            /* bytes sent from the tail */
	conn_write_done done;    /* a borrowed tail's owner, told when written */
	void *done_data;
	max_align_t data[];
};

const char *conn_clean(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < n; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || (unsigned char)src[i] > 0x7e
				 ? '?' : src[i];
	dst[i] = '\0';
	return dst;
}

void conn_log_peer(conn *c, const char *fmt, ...)
{
	char what[BYOL_ERR_LEN + 128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	conn_logf(&c->cfg->c, "conn %llu %s%s%s: %s", (unsigned long long)c->id, c->peer,
		  c->name[0] ? " " : "", c->name, what);
}

void conn_logf(const conn_config *cfg, const char *fmt, ...)
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

/* ---- teardown --------------------------------------------------------------- */

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
	conn_shm_free(c);
	for (wreq *w = c->pool, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	conn_cfg_free(&c->own);
	free(c);
	if (s)
		conn_server_maybe_free(s);
}

void conn_close_handles(conn *c)
{
	c->closing = 2;
	if (!uv_is_closing(&c->h.handle))
		uv_close(&c->h.handle, on_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void conn_try_send_now(conn *c, const Byol__Envelope *e)
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
int conn_close_now(conn *c, int code, const char *reason, int log, int tell)
{
	if (c->closing == 2)
		return code;
	if (!c->closing) {
		set_reason(c, code, reason);
		if (log)
			conn_log_peer(c, "%s", reason);
		if (tell) {
			Byol__Error er = BYOL__ERROR__INIT;
			Byol__Envelope e = BYOL__ENVELOPE__INIT;
			er.code = code;
			er.message = c->reason;
			e.msg_case = BYOL__ENVELOPE__MSG_ERROR;
			e.error = &er;
			conn_try_send_now(c, &e);
		}
	}
	conn_close_handles(c);
	return code;
}

int conn_close_error(conn *c, int code, const char *reason)
{
	return conn_close_now(c, code, reason, 1, 1);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	conn *c = req->handle->data;
	c->shut = 1;
	if (status < 0 || c->eof)
		conn_close_handles(c);
}

void conn_timer_cb(uv_timer_t *t)
{
	conn *c = t->data;
	if (c->closing)
		conn_close_handles(c); /* the orderly close took too long */
	else
		conn_close_error(c, -ETIMEDOUT, c->state == ST_CONNECTING ? "connect timed out"
									   : "handshake timed out");
}

/* Orderly: stop delivering, flush the queue, shut down, read until the peer's
 * EOF (or the deadline), close. */
void conn_close_orderly(conn *c, const char *reason)
{
	if (c->closing)
		return;
	set_reason(c, 0, reason);
	c->closing = 1;
	if (c->state == ST_CONNECTING ||
	    uv_shutdown(&c->shutdown_req, &c->h.stream, shutdown_cb) < 0 ||
	    (!c->reading && uv_read_start(&c->h.stream, alloc_cb, read_cb) < 0)) {
		conn_close_handles(c);
		return;
	}
	c->reading = 1;
	uv_timer_start(&c->timer, conn_timer_cb, c->cfg->c.handshake_ms, 0);
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
		conn_close_error(c, code, reason[0] ? reason : "closed by the owner");
	} else if (!c->is_server && !c->opened) {
		/* a connect in progress: its callback hears -ECANCELED */
		set_reason(c, -ECANCELED, "connect cancelled");
		conn_close_handles(c);
	} else {
		conn_close_orderly(c, reason[0] ? reason : "closed by the owner");
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
	c->queued -= w->len + w->extra;
	if (w->done)
		w->done(w->done_data, status);
	pool_give(c, w);
	if (status < 0) {
		if (status != UV_ECANCELED && !c->closing) {
			char r[BYOL_ERR_LEN];
			snprintf(r, sizeof(r), "write failed: %s", uv_strerror(status));
			conn_close_error(c, status, r);
		}
		return;
	}
	if (c->above && c->queued <= c->cfg->c.high_water / 2) {
		c->above = 0;
		if (!c->closing && c->cfg->c.on_drain)
			c->cfg->c.on_drain(c);
	}
}

/* A write request with room for n bytes of frame (from the pool when large). */
static wreq *wreq_take(conn *c, size_t n)
{
	wreq *w = n >= POOL_MIN ? pool_take(c, n) : NULL;
	if (!w) {
		size_t cap = n >= POOL_MIN ? (n + 4095) & ~(size_t)4095 : n;
		if (!(w = malloc(sizeof(wreq) + cap)))
			return NULL;
		w->cap = cap;
	}
	w->c = c;
	w->next = NULL;
	w->len = w->extra = 0;
	w->done = NULL;
	w->done_data = NULL;
	return w;
}

/* Writes w's data and then `more` (may be NULL), with send_handle's descriptor
 * (may be NULL; c a pipe in IPC mode); on failure the conn closes and w goes
 * back (its done callback is the caller's again). */
static int wreq_write2(conn *c, wreq *w, const void *more, size_t more_len,
		       uv_stream_t *send_handle, char *err)
{
	uv_buf_t b[2];
	unsigned nb = 0;
	if (w->len)
		b[nb++] = uv_buf_init((char *)w->data, (unsigned)w->len);
	if (more_len)
		b[nb++] = uv_buf_init((char *)more, (unsigned)more_len);
	w->extra = more_len;
	int rc = send_handle ? uv_write2(&w->req, &c->h.stream, b, nb, send_handle, write_cb)
			     : uv_write(&w->req, &c->h.stream, b, nb, write_cb);
	if (rc < 0) {
		w->done = NULL;
		pool_give(c, w);
		char r[BYOL_ERR_LEN];
		snprintf(r, sizeof(r), "write failed: %s", uv_strerror(rc));
		conn_close_error(c, rc, r);
		return byol_err(err, rc, "%s: %s", c->peer, r);
	}
	c->queued += w->len + more_len;
	if (!c->above && c->queued > c->cfg->c.high_water) {
		c->above = 1;
		if (c->cfg->c.on_high_water)
			c->cfg->c.on_high_water(c);
	}
	return 0;
}

static int wreq_write(conn *c, wreq *w, const void *more, size_t more_len, char *err)
{
	return wreq_write2(c, w, more, more_len, NULL, err);
}

static int frame_too_large(const conn *c, int msg_case, size_t n, char *err)
{
	if (n - FRAME_HEADER > c->cfg->c.max_frame || n > UINT_MAX)
		return byol_err(err, -EMSGSIZE, "%s message of %zu bytes exceeds the frame "
				"limit %zu", frame_msg_name(msg_case), n - FRAME_HEADER,
				c->cfg->c.max_frame);
	return 0;
}

int conn_send_frame(conn *c, const Byol__Envelope *e, char *err)
{
	return conn_send_frame_fd(c, e, NULL, NULL, NULL, err);
}

int conn_send_frame_fd(conn *c, const Byol__Envelope *e, uv_stream_t *fd_handle,
		       conn_write_done done, void *done_data, char *err)
{
	if (e->msg_case == BYOL__ENVELOPE__MSG__NOT_SET)
		return byol_err(err, -EINVAL, "cannot send an Envelope with no message set");
	size_t n = frame_size(e);
	int rc = frame_too_large(c, e->msg_case, n, err);
	if (rc < 0)
		return rc;
	wreq *w = wreq_take(c, n);
	if (!w)
		return byol_err(err, -ENOMEM, "out of memory for a %zu-byte frame", n);
	if ((rc = frame_pack(e, w->data, w->cap, &w->len, err)) < 0) {
		pool_give(c, w);
		return rc;
	}
	w->done = done;
	w->done_data = done_data;
	return wreq_write2(c, w, NULL, 0, fd_handle, err);
}

/* The checks of conn_send that do not depend on the message's size. */
static int can_send(const conn *c, int msg_case, char *err)
{
	if (c->closing)
		return byol_err(err, -EPIPE, "conn %llu %s: the connection is closing",
				(unsigned long long)c->id, c->peer);
	if (c->state != ST_OPEN)
		return byol_err(err, -ENOTCONN, "conn %llu %s: the handshake has not "
				"finished", (unsigned long long)c->id, c->peer);
	if (msg_case == BYOL__ENVELOPE__MSG_SERVER_HELLO ||
	    msg_case == BYOL__ENVELOPE__MSG_CLIENT_AUTH ||
	    msg_case == BYOL__ENVELOPE__MSG_AUTH_RESULT ||
	    msg_case == BYOL__ENVELOPE__MSG_SHM_REGION || msg_case == BYOL__ENVELOPE__MSG_SHM_ACK)
		return byol_err(err, -EINVAL, "%s is sent by the connection itself only",
				frame_msg_name(msg_case));
	return 0;
}

ProtobufCBinaryData *conn_attachment_field(const Byol__Envelope *e)
{
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_STEP_PARAMS: return &e->step_params->online;
	case BYOL__ENVELOPE__MSG_NODE_RESULT: return &e->node_result->grad;
	default: return NULL;
	}
}

/* The frame of e with tail, its tensor field, left empty and said to lie in
 * the shared-memory ring, ending at shm_end (conn_shm_put put it there). */
static int pack_in_shm(const Byol__Envelope *e, ProtobufCBinaryData *tail, uint64_t shm_end,
		       void *buf, size_t cap, size_t *len, char *err)
{
	Byol__Envelope with = *e;
	with.attachment = tail->len;
	with.shm_end = shm_end;
	ProtobufCBinaryData saved = *tail;
	tail->data = NULL;
	tail->len = 0;
	int rc = frame_pack(&with, buf, cap, len, err);
	*tail = saved;
	return rc;
}

int conn_send_borrowed(conn *c, const Byol__Envelope *e, ProtobufCBinaryData *tail,
		       unsigned tail_field, conn_write_done done, void *done_data, char *err)
{
	int rc = can_send(c, e->msg_case, err);
	if (rc < 0)
		return rc;
	size_t want = frame_size(e) - tail->len + 32;
	wreq *w = wreq_take(c, want);
	if (!w)
		return byol_err(err, -ENOMEM, "out of memory for a %zu-byte frame head", want);
	size_t n;
	uint64_t shm_end = 0;
	int apart = c->peer_attachments && tail->len && tail == conn_attachment_field(e);
	if (apart && tail->len <= c->cfg->c.max_frame &&
	    (shm_end = conn_shm_put(c, tail->data, tail->len))) {
		rc = pack_in_shm(e, tail, shm_end, w->data, w->cap, &w->len, err);
		n = w->len;
	} else if (apart) {
		rc = frame_pack_attached(e, tail, w->data, w->cap, &w->len, err);
		n = FRAME_HEADER + tail->len;   /* the larger of the two frames */
	} else {
		rc = frame_pack_head(e, tail, tail_field, w->data, w->cap, &w->len, &n, err);
	}
	if (rc < 0 || (rc = frame_too_large(c, e->msg_case, n, err)) < 0) {
		pool_give(c, w);
		return rc;
	}
	w->done = done;
	w->done_data = done_data;
	return shm_end ? wreq_write(c, w, NULL, 0, err)
		       : wreq_write(c, w, tail->data, tail->len, err);
}

int conn_send(conn *c, const Byol__Envelope *e, char *err)
{
	int rc = can_send(c, e->msg_case, err);
	return rc < 0 ? rc : conn_send_frame(c, e, err);
}

void *conn_adopt(conn *c, const void *p)
{
	return frame_arena_adopt(&c->arena, p);
}

uint64_t conn_frames_received(const conn *c)
{
	return c->rd.frames;
}

size_t conn_write_queue_size(const conn *c)
{
	return c->queued;
}

/* ---- reading ---------------------------------------------------------------- */

/* A decoded Envelope that says its tensor comes apart (Envelope.attachment, and
 * shm_end when it lies in shared memory): 0 when its tensor field is there and
 * empty and the length within the frame limit, else c closes (< 0). */
static int attachment_ok(conn *c, const Byol__Envelope *e)
{
	char r[BYOL_ERR_LEN];
	ProtobufCBinaryData *f = conn_attachment_field(e);
	if (c->state != ST_OPEN || !f || f->len || !e->attachment) {
		snprintf(r, sizeof(r), "%s announces an attachment of %llu bytes, which it "
			 "cannot carry%s", frame_msg_name(e->msg_case),
			 (unsigned long long)e->attachment, f && f->len ? " (its tensor field is not empty)" : "");
		return conn_close_error(c, -EPROTO, r);
	}
	if (e->attachment > c->rd.max_len) {
		snprintf(r, sizeof(r), "%s announces an attachment of %llu bytes, over the "
			 "frame limit %zu", frame_msg_name(e->msg_case),
			 (unsigned long long)e->attachment, c->rd.max_len);
		return conn_close_error(c, -EMSGSIZE, r);
	}
	return 0;
}

/* The attachment frame of the announced message: its body becomes the message's
 * tensor field, adoptable like any large decoded field (conn_adopt), and the
 * message goes to on_message. */
static int on_attachment(conn *c, const uint8_t *frame, size_t len)
{
	char r[BYOL_ERR_LEN];
	Byol__Envelope *e = c->announced;
	if (!e) {
		snprintf(r, sizeof(r), "an attachment frame of %zu bytes that no message "
			 "announced", len);
		return conn_close_error(c, -EPROTO, r);
	}
	c->announced = NULL;
	if (len != c->announced_len) {
		snprintf(r, sizeof(r), "%s announced an attachment of %zu bytes; the attachment "
			 "frame has %zu", frame_msg_name(e->msg_case), c->announced_len, len);
		return conn_close_error(c, -EPROTO, r);
	}
	size_t spare_cap = 0, body_cap = 0;
	uint8_t *spare = frame_arena_take_spare(&c->arena, &spare_cap);
	uint8_t *body = frame_reader_take_body(&c->rd, frame, spare, spare_cap, &body_cap);
	if (!body) {
		frame_arena_give_spare(&c->arena, spare, spare_cap);
		body = frame_arena_copy(&c->arena, frame, len);
	} else if (frame_arena_hold(&c->arena, body, body_cap) < 0) {
		free(body);
		body = NULL;
	}
	if (!body)
		return conn_close_error(c, -ENOMEM, "out of memory for an attachment");
	ProtobufCBinaryData *f = conn_attachment_field(e);
	f->data = body;
	f->len = len;
	if (c->cfg->c.on_message)
		c->cfg->c.on_message(c, e);
	return 0;
}

/* One complete frame. Returns < 0 to stop the feed: the conn is closing (its
 * reason already recorded). */
static int on_frame(void *ud, const uint8_t *frame, size_t len, char *err)
{
	conn *c = ud;
	Byol__Envelope *e;
	char r[BYOL_ERR_LEN], t[256];
	if (c->closing)
		return -EPIPE;
	if (frame_reader_is_attachment(&c->rd)) {
		on_attachment(c, frame, len);
		return c->closing ? -EPIPE : 0;
	}
	if (c->announced) {
		snprintf(r, sizeof(r), "%s announced an attachment of %zu bytes, and a message "
			 "frame came instead", frame_msg_name(c->announced->msg_case),
			 c->announced_len);
		c->announced = NULL;
		conn_close_error(c, -EPROTO, r);
		return -EPIPE;
	}
	int rc = frame_decode(&c->arena, frame, len, &e, r);
	if (rc < 0) {
		conn_close_error(c, rc, r);
		return rc;
	}
	if (e->attachment || e->shm_end) {
		if (attachment_ok(c, e) < 0)
			return -EPIPE;
		if (e->shm_end)
			return conn_shm_on_attachment(c, e);
		c->announced = e;       /* until its attachment frame */
		c->announced_len = (size_t)e->attachment;
		return 0;
	}
	int mc = e->msg_case;
	int want = c->state == ST_AWAIT_AUTH     ? BYOL__ENVELOPE__MSG_CLIENT_AUTH
		   : c->state == ST_AWAIT_HELLO  ? BYOL__ENVELOPE__MSG_SERVER_HELLO
		   : c->state == ST_AWAIT_RESULT ? BYOL__ENVELOPE__MSG_AUTH_RESULT
						 : 0;
	if (want && mc == BYOL__ENVELOPE__MSG_ERROR) {
		/* the peer gave up on the handshake and says why */
		snprintf(r, sizeof(r), "peer error during the handshake: %s",
			 conn_clean(t, sizeof(t), e->error->message));
		conn_close_now(c, e->error->code < 0 ? e->error->code : -EPROTO, r, 1, 0);
	} else if (want && mc != want) {
		snprintf(r, sizeof(r), "expected %s, got %s", frame_msg_name(want),
			 frame_msg_name(mc));
		conn_close_error(c, -EPROTO, r);
	} else if (!want && (mc == BYOL__ENVELOPE__MSG_SERVER_HELLO ||
			     mc == BYOL__ENVELOPE__MSG_CLIENT_AUTH ||
			     mc == BYOL__ENVELOPE__MSG_AUTH_RESULT)) {
		snprintf(r, sizeof(r), "unexpected %s after the handshake", frame_msg_name(mc));
		conn_close_error(c, -EPROTO, r);
	} else if (mc == BYOL__ENVELOPE__MSG_SHM_REGION) {
		conn_shm_on_region(c, e->shm_region);
	} else if (mc == BYOL__ENVELOPE__MSG_SHM_ACK) {
		conn_shm_on_ack(c, e->shm_ack);
	} else if (c->state == ST_AWAIT_AUTH) {
		conn_on_client_auth(c, e->client_auth);
	} else if (c->state == ST_AWAIT_HELLO) {
		conn_on_server_hello(c, e->server_hello);
	} else if (c->state == ST_AWAIT_RESULT) {
		conn_on_auth_result(c, e->auth_result);
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
				conn_close_handles(c);
		}
		return;
	}
	if (nread > 0) {
		int rc = frame_reader_commit(&c->rd, (size_t)nread, on_frame, c, r);
		/* on_frame closes the conn for what it finds; the reader's own
		 * errors (a bad length) are closed here */
		if (rc < 0 && !c->closing)
			conn_close_error(c, rc, r);
		else if (!c->closing)
			conn_shm_check_fds(c);
		return;
	}
	if (nread == UV_EOF) {
		if (frame_reader_finish(&c->rd, r) < 0)
			conn_close_error(c, -EPROTO, r);
		else if (c->state != ST_OPEN)
			conn_close_error(c, -ECONNRESET, "peer closed the connection during the "
					 "handshake");
		else
			conn_close_now(c, 0, "closed by the peer", 0, 0);
		return;
	}
	snprintf(r, sizeof(r), "read failed: %s", uv_strerror((int)nread));
	conn_close_error(c, (int)nread, r);
}

int conn_start_reading(conn *c, char *err)
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
		return conn_start_reading(c, NULL);
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
