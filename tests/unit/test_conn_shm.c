/*
 * test_conn_shm.c — tensors through shared memory between two conns over a Unix
 * socket: a client and a server in one loop trade NodeResults and StepParams in
 * lockstep, as a worker and byold do, each side taking (conn_take) what it
 * receives and giving the previous one back. The counts of tensors that came
 * through the rings are exact; every tensor is checked, including those the
 * test still holds after both conns have gone; a receiver that holds
 * everything makes the sender fall back to attachment frames, and past
 * SHM_HELD_MAX held tensors it gets copies; a side that does not allow shared
 * memory, or TCP, gets none; rings made ready in advance carry the first
 * tensors too; a sender may fill a room of its ring itself and send it as it
 * lies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/conn.h"
#include "byol/error.h"
#include "byol/frame.h"
#include "tensor_fill.h"

#define N_MAX 16

static struct {
	uv_loop_t loop;
	conn_server *srv;
	/* the scenario */
	int n;                   /* tensors each way */
	size_t floats[N_MAX];    /* size of tensor i (both ways) */
	int client_shm, server_shm, tcp;
	int hold_all;            /* the server keeps every tensor it takes */
	int prepare;             /* rings made ready first (conn_shm_prepare) */
	int rooms;               /* the server fills reserved rooms (conn_shm_reserve) */
	int s_rooms;             /* replies sent from a room */
	/* the server */
	float *s_held[N_MAX];    /* taken, in order; NULL when given back */
	float *s_out;            /* its replies are sent from here */
	int s_got, s_bad, s_lent;
	uint64_t s_shm;          /* conn_shm_received at the end */
	/* the client */
	conn *c;
	float *c_out;
	float *c_held;           /* the last StepParams taken */
	int c_got, c_bad, c_done;
	uint64_t c_shm;
	int s_closed, c_closed;
	char log[8][BYOL_ERR_LEN + 256];
	int nlog;
} W;

static void on_log(void *data, const char *line)
{
	(void)data;
	if (W.nlog < 8)
		snprintf(W.log[W.nlog++], sizeof(W.log[0]), "%s", line);
}

static void written(void *data, int status)
{
	(void)data;
	assert_int_equal(status, 0);
}

/* Sends tensor i from buf (filled with seed) as msg's tensor field, borrowed. */
static void send_tensor(conn *c, int node_result, int i, float *buf, int seed)
{
	char err[BYOL_ERR_LEN];
	size_t n = W.floats[i];
	fill(buf, n, seed);
	Byol__NodeResult nr = BYOL__NODE_RESULT__INIT;
	Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	ProtobufCBinaryData *t;
	unsigned field;
	if (node_result) {
		nr.step = (uint64_t)i;
		e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
		e.node_result = &nr;
		t = &nr.grad;
		field = 5;
	} else {
		sp.step = (uint64_t)i;
		e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
		e.step_params = &sp;
		t = &sp.online;
		field = 3;
	}
	t->data = (uint8_t *)buf;
	t->len = n * sizeof(float);
	assert_int_equal(conn_send_borrowed(c, &e, t, field, written, NULL, err), 0);
}

static void heartbeat(conn *c)
{
	char err[BYOL_ERR_LEN];
	Byol__Heartbeat h = BYOL__HEARTBEAT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &h;
	assert_int_equal(conn_send(c, &e, err), 0);
}

static void s_on_open(conn *c)
{
	if (W.prepare)
		conn_shm_prepare(c, W.floats[0] * sizeof(float));
}

static void s_on_message(conn *c, Byol__Envelope *m)
{
	if (m->msg_case == BYOL__ENVELOPE__MSG_HEARTBEAT) {
		heartbeat(c);   /* echo */
		return;
	}
	if (m->msg_case != BYOL__ENVELOPE__MSG_NODE_RESULT)
		fail_msg("server got %s", frame_msg_name(m->msg_case));
	const Byol__NodeResult *nr = m->node_result;
	int i = (int)nr->step;
	assert_int_equal(i, W.s_got);
	W.s_bad += !check_fill(nr->grad.data, nr->grad.len, W.floats[i], i);
	float *g = conn_take(c, nr->grad.data, nr->grad.len);
	assert_non_null(g);
	float *again = conn_take(c, nr->grad.data, nr->grad.len);
	assert_ptr_not_equal(again, g);                 /* taken once: then a copy */
	assert_false(conn_tensor_lent(again));
	conn_tensor_free(again);
	W.s_lent += conn_tensor_lent(g);
	W.s_held[i] = g;
	if (!W.hold_all && i > 0) {
		conn_tensor_free(W.s_held[i - 1]);
		W.s_held[i - 1] = NULL;
	}
	W.s_got++;
	size_t bytes = W.floats[i] * sizeof(float);
	float *room = W.rooms ? conn_shm_reserve(c, bytes) : NULL;
	if (!room) {
		send_tensor(c, 0, i, W.s_out, 1000 + i);
		return;
	}
	/* a room handed out earlier is no longer good once another is */
	float *second = conn_shm_reserve(c, bytes);
	if (second) {
		assert_false(conn_shm_room_ok(c, room, bytes));
		assert_true(conn_shm_room_ok(c, second, bytes));
		conn_shm_release(room);
		room = second;
	}
	assert_true(conn_shm_room_ok(c, room, bytes));
	send_tensor(c, 0, i, room, 1000 + i);  /* fills it, then sends it as it lies */
	assert_false(conn_shm_room_ok(c, room, bytes));   /* sent */
	assert_true(conn_write_queue_size(c) < 4096);     /* only where it lies */
	conn_shm_release(room);
	W.s_rooms++;
}

static void s_on_close(conn *c, int code, const char *reason)
{
	(void)code;
	(void)reason;
	W.s_shm = conn_shm_received(c);
	W.s_closed++;
	conn_server_close(W.srv);
	W.srv = NULL;
}

static void c_on_message(conn *c, Byol__Envelope *m)
{
	if (m->msg_case == BYOL__ENVELOPE__MSG_HEARTBEAT) {
		/* both rings are acknowledged now: each ShmAck came before it */
		send_tensor(c, 1, 0, W.c_out, 0);
		return;
	}
	if (m->msg_case != BYOL__ENVELOPE__MSG_STEP_PARAMS)
		fail_msg("client got %s", frame_msg_name(m->msg_case));
	const Byol__StepParams *sp = m->step_params;
	int i = (int)sp->step;
	assert_int_equal(i, W.c_got);
	W.c_bad += !check_fill(sp->online.data, sp->online.len, W.floats[i], 1000 + i);
	float *p = conn_take(c, sp->online.data, sp->online.len);
	assert_non_null(p);
	conn_tensor_free(W.c_held);
	W.c_held = p;
	if (++W.c_got < W.n) {
		send_tensor(c, 1, W.c_got, W.c_out, W.c_got);
	} else {
		W.c_shm = conn_shm_received(c);
		conn_close(c, 0, NULL);
	}
}

static void c_on_close(conn *c, int code, const char *reason)
{
	(void)c;
	(void)reason;
	assert_int_equal(code, 0);
	W.c_closed++;
}

static void c_on_connect(conn *c, int status, const char *reason)
{
	if (status < 0)
		fail_msg("connect: %s", reason);
	W.c = c;
	if (W.prepare) {
		conn_shm_prepare(c, W.floats[0] * sizeof(float));
		heartbeat(c);
	} else {
		send_tensor(c, 1, 0, W.c_out, 0);
	}
}

/* Runs the scenario in W to the end: both conns closed, the loop empty. */
static void run_world(void)
{
	char dir[] = "/tmp/byol-shm-XXXXXX", path[128], err[BYOL_ERR_LEN];
	size_t most = 0;
	for (int i = 0; i < W.n; i++)
		most = W.floats[i] > most ? W.floats[i] : most;
	W.s_out = malloc(most * sizeof(float));
	W.c_out = malloc(most * sizeof(float));
	assert_non_null(W.s_out);
	assert_non_null(W.c_out);
	assert_int_equal(uv_loop_init(&W.loop), 0);
	conn_config s = {0};
	s.version = "byold-test";
	s.shm = W.server_shm;
	s.on_open = s_on_open;
	s.on_message = s_on_message;
	s.on_close = s_on_close;
	s.log = on_log;
	conn_config k = {0};
	k.role = AUTH_ROLE_WORKER;
	k.name = "shm";
	k.shm = W.client_shm;
	k.on_message = c_on_message;
	k.on_close = c_on_close;
	k.log = on_log;
	if (W.tcp) {
		char addr[64];
		assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:0", &s, &W.srv, err), 0);
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", conn_server_port(W.srv));
		assert_int_equal(conn_connect_tcp(&W.loop, addr, &k, c_on_connect, NULL, err), 0);
	} else {
		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/byold.sock", dir);
		assert_int_equal(conn_listen_pipe(&W.loop, path, &s, &W.srv, err), 0);
		assert_int_equal(conn_connect_pipe(&W.loop, path, &k, c_on_connect, NULL, err), 0);
	}
	uv_run(&W.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&W.loop), 0);
	if (!W.tcp)
		rmdir(dir);
	for (int i = 0; i < W.nlog; i++)
		print_message("log: %s\n", W.log[i]);
	assert_int_equal(W.nlog, 0);
	assert_int_equal(W.s_closed, 1);
	assert_int_equal(W.c_closed, 1);
	assert_int_equal(W.s_got, W.n);
	assert_int_equal(W.c_got, W.n);
	assert_int_equal(W.s_bad, 0);
	assert_int_equal(W.c_bad, 0);
	/* what is still held outlives the conns, unchanged */
	assert_true(check_fill(W.c_held, W.floats[W.n - 1] * sizeof(float), W.floats[W.n - 1],
			 1000 + W.n - 1));
	conn_tensor_free(W.c_held);
	for (int i = 0; i < W.n; i++) {
		if (!W.s_held[i])
			continue;
		assert_true(check_fill(W.s_held[i], W.floats[i] * sizeof(float), W.floats[i], i));
		conn_tensor_free(W.s_held[i]);
		assert_false(conn_tensor_lent(W.s_held[i]));
	}
	free(W.s_out);
	free(W.c_out);
}

static int setup(void **state)
{
	(void)state;
	memset(&W, 0, sizeof(W));
	return 0;
}

static void sizes(int n, size_t floats)
{
	W.n = n;
	for (int i = 0; i < n; i++)
		W.floats[i] = floats;
}

/* Both sides allow it: every tensor after the first of each direction (which
 * goes as an attachment frame while the peer maps the new ring) comes through
 * shared memory, and each is taken where it lies. Tensors of 768 KiB in a ring
 * of 2 MiB: every third starts the ring again. */
static void test_lockstep(void **state)
{
	(void)state;
	sizes(12, (size_t)192 << 10);
	W.client_shm = W.server_shm = 1;
	run_world();
	assert_int_equal(W.s_shm, 11);
	assert_int_equal(W.c_shm, 11);
	assert_int_equal(W.s_lent, 11);
}

/* Rings made ready when the conn opens: every tensor comes through shared
 * memory, the first ones too. */
static void test_prepared(void **state)
{
	(void)state;
	sizes(6, (size_t)1 << 18);
	W.client_shm = W.server_shm = 1;
	W.prepare = 1;
	run_world();
	assert_int_equal(W.s_shm, 6);
	assert_int_equal(W.c_shm, 6);
	assert_int_equal(W.s_lent, 6);
}

/* The server fills rooms of its ring itself and sends them as they lie: every
 * reply after the first (which goes while the client maps the ring) comes from
 * a room, intact. */
static void test_rooms(void **state)
{
	(void)state;
	sizes(8, (size_t)192 << 10);
	W.client_shm = W.server_shm = 1;
	W.rooms = 1;
	run_world();
	assert_int_equal(W.s_rooms, 7);
	assert_int_equal(W.c_shm, 7);
}

/* A receiver that gives nothing back: the sender's ring (two tensors) fills,
 * and the rest come as attachment frames, intact. */
static void test_ring_full(void **state)
{
	(void)state;
	sizes(8, (size_t)1 << 18);
	W.client_shm = W.server_shm = 1;
	W.hold_all = 1;
	run_world();
	assert_int_equal(W.s_shm, 2);
	assert_int_equal(W.s_lent, 2);
	assert_int_equal(W.c_shm, 7);
}

/* Small tensors after a large first one: the ring has room for many, and past
 * SHM_HELD_MAX (8) held at once the receiver gets copies (not lent). */
static void test_held_max(void **state)
{
	(void)state;
	sizes(14, (size_t)16 << 10);    /* 64 KiB */
	W.floats[0] = (size_t)1 << 20;  /* 4 MiB: a ring of 8 MiB */
	W.client_shm = W.server_shm = 1;
	W.hold_all = 1;
	run_world();
	assert_int_equal(W.s_shm, 13);
	assert_int_equal(W.s_lent, 8);
}

/* Shared memory only where both sides allow it, and never over TCP. */
static void test_not_agreed(void **state)
{
	(void)state;
	static const int cases[3][3] = { /* client_shm, server_shm, tcp */
		{0, 1, 0}, {1, 0, 0}, {1, 1, 1},
	};
	for (int k = 0; k < 3; k++) {
		memset(&W, 0, sizeof(W));
		sizes(4, (size_t)1 << 18);
		W.client_shm = cases[k][0];
		W.server_shm = cases[k][1];
		W.tcp = cases[k][2];
		run_world();
		assert_int_equal(W.s_shm, 0);
		assert_int_equal(W.c_shm, 0);
		assert_int_equal(W.s_lent, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_lockstep, setup),
		cmocka_unit_test_setup(test_prepared, setup),
		cmocka_unit_test_setup(test_rooms, setup),
		cmocka_unit_test_setup(test_ring_full, setup),
		cmocka_unit_test_setup(test_held_max, setup),
		cmocka_unit_test_setup(test_not_agreed, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
