/*
 * rpc.c — byolctl's blocking calls to byold (client/rpc.h).
 */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "byol/auth.h"
#include "byol/conn.h"

enum { ST_CONNECTING, ST_OPEN, ST_CLOSED };

typedef struct rpc_msg {
	struct rpc_msg *next;
	Byol__Envelope *e;       /* unpacked with protobuf-c's allocator; owned */
	size_t bytes;            /* its packed size */
} rpc_msg;

struct rpc {
	uv_loop_t loop;
	uv_timer_t timer;
	conn *c;
	int state;
	int timed_out;
	int code;                /* why it closed (< 0), once ST_CLOSED */
	char reason[BYOL_ERR_LEN];
	char addr[1024];
	unsigned timeout_ms;
	unsigned wait_ms;        /* the bound of the wait in progress */
	rpc_msg *head, *tail;    /* messages received, not yet returned */
	size_t queued_bytes;
	int paused;              /* reading stopped: the queue is over RPC_QUEUE_MAX */
	Byol__Envelope *reply;   /* the message last returned; owned */
};

static void free_reply(rpc *r)
{
	if (r->reply)
		byol__envelope__free_unpacked(r->reply, NULL);
	r->reply = NULL;
}

static void drop_queue(rpc *r)
{
	while (r->head) {
		rpc_msg *m = r->head;
		r->head = m->next;
		byol__envelope__free_unpacked(m->e, NULL);
		free(m);
	}
	r->tail = NULL;
	r->queued_bytes = 0;
}

static void on_message(conn *c, Byol__Envelope *e)
{
	rpc *r = conn_owner(c);
	if (e->msg_case == BYOL__ENVELOPE__MSG_HEARTBEAT)
		return;
	/* e lives only during this callback: keep a copy */
	size_t len = protobuf_c_message_get_packed_size(&e->base);
	uint8_t *buf = malloc(len ? len : 1);
	rpc_msg *m = calloc(1, sizeof(*m));
	if (buf && m) {
		protobuf_c_message_pack(&e->base, buf);
		m->e = byol__envelope__unpack(NULL, len, buf);
	}
	free(buf);
	if (!m || !m->e) {
		free(m);
		conn_close(c, -ENOMEM, "out of memory for the answer");
		return;
	}
	m->bytes = len;
	if (r->tail)
		r->tail->next = m;
	else
		r->head = m;
	r->tail = m;
	r->queued_bytes += len;
	if (!r->paused && r->queued_bytes > RPC_QUEUE_MAX && conn_set_reading(c, 0) == 0)
		r->paused = 1;
}

static void on_close(conn *c, int code, const char *reason)
{
	rpc *r = conn_owner(c);
	r->c = NULL;
	r->state = ST_CLOSED;
	r->code = code < 0 ? code : -ECONNRESET;
	snprintf(r->reason, sizeof(r->reason), "%s", code < 0 && reason && reason[0]
							    ? reason
							    : "the daemon closed the connection");
}

static void on_connect(conn *c, int status, const char *reason)
{
	rpc *r = conn_owner(c);
	if (status < 0) {
		r->c = NULL;
		r->state = ST_CLOSED;
		r->code = status;
		snprintf(r->reason, sizeof(r->reason), "%s",
			 reason && reason[0] ? reason : uv_strerror(status));
		return;
	}
	r->state = ST_OPEN;
}

static void on_timer(uv_timer_t *t)
{
	rpc *r = t->data;
	r->timed_out = 1;
	if (r->c)
		conn_close(r->c, -ETIMEDOUT, "no answer from the daemon in %.1f s",
			   r->wait_ms / 1000.0);
}

/* Runs the loop until cond(r) holds or the connection is closed, for at most
 * timeout_ms (then the connection is closed). */
static void run_until(rpc *r, int (*cond)(const rpc *), unsigned timeout_ms)
{
	r->timed_out = 0;
	r->wait_ms = timeout_ms;
	uv_timer_start(&r->timer, on_timer, timeout_ms, 0);
	while (!cond(r) && r->state != ST_CLOSED)
		uv_run(&r->loop, UV_RUN_ONCE);
	uv_timer_stop(&r->timer);
}

static int is_open(const rpc *r) { return r->state == ST_OPEN; }
static int has_message(const rpc *r) { return r->head != NULL; }

static void drain_and_free(rpc *r)
{
	uv_close((uv_handle_t *)&r->timer, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	uv_loop_close(&r->loop);
	free_reply(r);
	drop_queue(r);
	free(r);
}

int rpc_open(rpc **out, const char *tcp, const char *sock, const char *token,
	     const char *name, unsigned timeout_ms, char *err)
{
	*out = NULL;
	rpc *r = calloc(1, sizeof(*r));
	if (!r)
		return byol_err(err, -ENOMEM, "out of memory");
	if (uv_loop_init(&r->loop) < 0) {
		free(r);
		return byol_err(err, -ENOMEM, "cannot create an event loop");
	}
	uv_timer_init(&r->loop, &r->timer);
	r->timer.data = r;
	r->timeout_ms = timeout_ms ? timeout_ms : 30000;
	snprintf(r->addr, sizeof(r->addr), "%s", sock ? sock : tcp);
	conn_config cfg = {0};
	cfg.token = token;
	cfg.role = AUTH_ROLE_CLIENT;
	cfg.name = name;
	cfg.version = "byolctl/1";
	cfg.handshake_ms = r->timeout_ms;
	cfg.data = r;
	cfg.on_message = on_message;
	cfg.on_close = on_close;
	char e[BYOL_ERR_LEN];
	int rc = sock ? conn_connect_pipe(&r->loop, sock, &cfg, on_connect, &r->c, e)
		      : conn_connect_tcp(&r->loop, tcp, &cfg, on_connect, &r->c, e);
	if (rc < 0) {
		drain_and_free(r);
		return byol_err(err, rc, "cannot reach byold at %s: %s", sock ? sock : tcp, e);
	}
	run_until(r, is_open, r->timeout_ms);
	if (r->state != ST_OPEN) {
		rc = r->code < 0 ? r->code : -ECONNREFUSED;
		if (rc == -EACCES)
			byol_err(err, rc, "byold at %s: %s", r->addr, r->reason);
		else
			byol_err(err, rc, "cannot reach byold at %s: %s", r->addr, r->reason);
		drain_and_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static int lost(rpc *r, char *err)
{
	return byol_err(err, r->code < 0 ? r->code : -ECONNRESET,
			"lost the connection to byold at %s: %s", r->addr, r->reason);
}

int rpc_send(rpc *r, const Byol__Envelope *req, char *err)
{
	char e[BYOL_ERR_LEN];
	if (r->state != ST_OPEN || !r->c)
		return lost(r, err);
	int rc = conn_send(r->c, req, e);
	if (rc < 0)
		return byol_err(err, rc, "cannot send to byold at %s: %s", r->addr, e);
	return 0;
}

int rpc_recv(rpc *r, Byol__Envelope **msg, unsigned timeout_ms, char *err)
{
	*msg = NULL;
	free_reply(r);
	if (!r->head) {
		if (r->state != ST_OPEN || !r->c)
			return lost(r, err);
		run_until(r, has_message, timeout_ms ? timeout_ms : r->timeout_ms);
		if (!r->head)
			return lost(r, err);
	}
	rpc_msg *m = r->head;
	r->head = m->next;
	if (!r->head)
		r->tail = NULL;
	r->queued_bytes -= m->bytes;
	r->reply = m->e;
	free(m);
	if (r->paused && r->queued_bytes <= RPC_QUEUE_MAX / 2 && r->c &&
	    conn_set_reading(r->c, 1) == 0)
		r->paused = 0;
	*msg = r->reply;
	return 0;
}

int rpc_call(rpc *r, const Byol__Envelope *req, Byol__Envelope **reply, char *err)
{
	*reply = NULL;
	free_reply(r);
	drop_queue(r);
	if (r->paused && r->c && conn_set_reading(r->c, 1) == 0)
		r->paused = 0;
	int rc = rpc_send(r, req, err);
	if (rc < 0)
		return rc;
	return rpc_recv(r, reply, 0, err);
}

const char *rpc_address(const rpc *r)
{
	return r->addr;
}

void rpc_close(rpc *r)
{
	if (!r)
		return;
	if (r->c) {
		conn_close(r->c, 0, NULL);
		while (r->state != ST_CLOSED)
			uv_run(&r->loop, UV_RUN_ONCE);
	}
	drain_and_free(r);
}
