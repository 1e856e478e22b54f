/*
 * test_conn.c — connections on real sockets: a server and clients in one loop
 * over loopback TCP (port 0, read back) and a Unix socket; messages both ways;
 * an 8 MiB bytes field round trip; misbehaving peers (garbage, an oversized
 * length, a truncated frame, a wrong or missing token, a handshake message out
 * of turn, silence) each closed with a logged reason while a good client keeps
 * working; back-pressure; refused sends; connect failures reported once; listen
 * rules; and the throughput of 8 MiB NodeResult frames (client in its own
 * thread and loop) with the allocations per frame.
 *
 * Every test counts callbacks, asserts the counts after uv_run and checks that
 * uv_loop_close returns 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/conn.h"
#include "byol/error.h"
#include "byol/frame.h"
#include "tensor_fill.h"

/* ---- counting allocations (not under ASan, which has its own malloc) ---- */

static uint64_t n_allocs;
#ifndef __SANITIZE_ADDRESS__
#define COUNT_ALLOCS 1
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *malloc(size_t n)
{
	__atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
	return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
	__atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
	return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
	__atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
	return __libc_realloc(p, n);
}
#endif

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *TOKEN = "cluster-token-for-tests-0123456789";

/* ---- the world: one loop, one server, its callbacks ---- */

typedef struct client client;

enum { MODE_ECHO, MODE_FLOOD, MODE_SINK, MODE_ZEROCOPY };

typedef struct {
	char name[64];
	int code;
	char reason[BYOL_ERR_LEN];
} closed_rec;

static struct {
	uv_loop_t loop;
	uv_timer_t watchdog;
	conn_server *srv;
	int mode;
	int s_open, s_msgs, s_close;
	closed_rec closed[32];
	int nlogs;
	char logs[32][BYOL_ERR_LEN + 256];
	int expect_clients, clients_done;
	/* back-pressure */
	int high_calls, drain_calls;
	size_t q_at_high, q_at_drain, q_max;
	/* throughput */
	int n_frames, got_frames;
	double t0, t1;
	uint64_t allocs0, allocs1;
	int bad_data;
} W;

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	fail_msg("the test's loop did not finish in time");
}

static int world_setup(void **state)
{
	(void)state;
	memset(&W, 0, sizeof(W));
	assert_int_equal(uv_loop_init(&W.loop), 0);
	uv_timer_init(&W.loop, &W.watchdog);
	uv_timer_start(&W.watchdog, on_watchdog, 15000, 0);
	uv_unref((uv_handle_t *)&W.watchdog);
	return 0;
}

/* Runs the loop until nothing is left, then closes it. */
static void world_run(void)
{
	uv_run(&W.loop, UV_RUN_DEFAULT);
	if (getenv("TEST_CONN_VERBOSE"))
		for (int i = 0; i < W.nlogs; i++)
			print_message("log: %s\n", W.logs[i]);
	uv_close((uv_handle_t *)&W.watchdog, NULL);
	uv_run(&W.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&W.loop), 0);
}

static void s_log(void *data, const char *line)
{
	(void)data;
	if (W.nlogs < 32)
		snprintf(W.logs[W.nlogs++], sizeof(W.logs[0]), "%s", line);
}

/* The number of server log lines containing all of a and b. */
static int logged(const char *a, const char *b)
{
	int n = 0;
	for (int i = 0; i < W.nlogs; i++)
		if (strstr(W.logs[i], a) && (!b || strstr(W.logs[i], b)))
			n++;
	return n;
}

static void s_on_open(conn *c)
{
	W.s_open++;
	assert_true(conn_is_open(c));
	assert_ptr_equal(conn_owner(c), &W);
	assert_true(conn_role(c) == AUTH_ROLE_WORKER || conn_role(c) == AUTH_ROLE_CLIENT);
}

static void s_on_close(conn *c, int code, const char *reason)
{
	closed_rec *r = &W.closed[W.s_close++ % 32];
	snprintf(r->name, sizeof(r->name), "%s", conn_name(c));
	r->code = code;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static const closed_rec *server_closed(const char *name)
{
	for (int i = 0; i < W.s_close && i < 32; i++)
		if (!strcmp(W.closed[i].name, name))
			return &W.closed[i];
	return NULL;
}

static void send_or_fail(conn *c, Byol__Envelope *e)
{
	char err[BYOL_ERR_LEN];
	int rc = conn_send(c, e, err);
	if (rc != 0)
		fail_msg("conn_send: %d %s", rc, err);
}

static void send_heartbeat(conn *c, uint64_t seq)
{
	Byol__Heartbeat h = BYOL__HEARTBEAT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	h.seq = seq;
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &h;
	send_or_fail(c, &e);
}

/* Sends StepParams{step, online: n floats filled from seed}. */
static void send_params(conn *c, uint64_t step, size_t n, uint64_t seed)
{
	float *p = malloc(n * sizeof(float));
	assert_non_null(p);
	fill(p, n, seed);
	Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sp.step = step;
	sp.online.data = (uint8_t *)p;
	sp.online.len = n * sizeof(float);
	e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
	e.step_params = &sp;
	send_or_fail(c, &e);
	free(p);
}

#define FLOOD_N 40
#define FLOOD_FLOATS ((size_t)1 << 18) /* 1 MiB */

static void free_when_written(void *data, int status)
{
	assert_int_equal(status, 0);
	free(data);
}

static void s_on_message(conn *c, Byol__Envelope *m)
{
	W.s_msgs++;
	switch (m->msg_case) {
	case BYOL__ENVELOPE__MSG_HEARTBEAT:
		if (W.mode == MODE_FLOOD && m->heartbeat->seq == 777) {
			for (int i = 0; i < FLOOD_N; i++) {
				send_params(c, (uint64_t)i, FLOOD_FLOATS, (uint64_t)i);
				size_t q = conn_write_queue_size(c);
				W.q_max = q > W.q_max ? q : W.q_max;
			}
		} else {
			send_heartbeat(c, m->heartbeat->seq); /* echo */
		}
		break;
	case BYOL__ENVELOPE__MSG_NODE_RESULT: {
		Byol__NodeResult *r = m->node_result;
		if (W.mode == MODE_SINK) {
			/* throughput: check, count, time */
			size_t nf = r->grad.len / 4;
			const float *g = (const float *)r->grad.data;
			if (nf == 0 || g[0] != (float)r->step || g[nf - 1] != (float)r->step)
				W.bad_data++;
			W.got_frames++;
			if (W.got_frames == 16) {
				W.t0 = now_s();
				W.allocs0 = __atomic_load_n(&n_allocs, __ATOMIC_RELAXED);
			}
			if (W.got_frames == W.n_frames) {
				W.t1 = now_s();
				W.allocs1 = __atomic_load_n(&n_allocs, __ATOMIC_RELAXED);
				send_heartbeat(c, 999);
			}
			break;
		}
		if (W.mode == MODE_ZEROCOPY) {
			/* keep the gradient without a copy; send it back from where it lies.
			 * Both ends are byol's conns: the gradient came as an attachment
			 * frame after its message (ClientAuth, NodeResult, attachment) */
			assert_int_equal(conn_frames_received(c), 3);
			float *g = conn_adopt(c, r->grad.data);
			assert_non_null(g);
			assert_null(conn_adopt(c, r->grad.data));
			Byol__StepParams zp = BYOL__STEP_PARAMS__INIT;
			Byol__Envelope ze = BYOL__ENVELOPE__INIT;
			zp.step = r->step;
			zp.online.data = (uint8_t *)g;
			zp.online.len = r->grad.len;
			ze.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
			ze.step_params = &zp;
			char err[BYOL_ERR_LEN];
			assert_int_equal(conn_send_borrowed(c, &ze, &zp.online, 3, free_when_written,
							    g, err), 0);
			break;
		}
		/* echo the gradient back as parameters */
		Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		sp.step = r->step;
		sp.online = r->grad;
		e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
		e.step_params = &sp;
		send_or_fail(c, &e);
		break;
	}
	default:
		break;
	}
}

static void s_on_high(conn *c)
{
	W.high_calls++;
	W.q_at_high = conn_write_queue_size(c);
}

static void s_on_drain(conn *c)
{
	W.drain_calls++;
	W.q_at_drain = conn_write_queue_size(c);
}

static conn_config server_cfg(const char *token)
{
	conn_config k = {0};
	k.token = token;
	k.version = "byold-test";
	k.data = &W;
	k.on_open = s_on_open;
	k.on_message = s_on_message;
	k.on_close = s_on_close;
	k.on_high_water = s_on_high;
	k.on_drain = s_on_drain;
	k.log = s_log;
	return k;
}

/* ---- clients ---- */

struct client {
	const char *label;
	conn *c;
	int connect_calls, connect_status;
	char connect_reason[BYOL_ERR_LEN];
	void (*on_open)(client *k);
	int target;              /* heartbeat round trips before closing */
	uint64_t replies;
	int errors;
	char last_error[BYOL_ERR_LEN];
	int params;              /* StepParams received */
	int params_ok;
	size_t big_floats;       /* expected size of echoed params */
	int closed, close_code;
	char close_reason[BYOL_ERR_LEN];
	int keep_pinging;        /* ping until the stop condition */
	int (*stop)(void);
	int after_stop;
};

static void client_done(void)
{
	if (++W.clients_done == W.expect_clients && W.srv) {
		conn_server_close(W.srv);
		W.srv = NULL;
	}
}

static void c_on_connect(conn *c, int status, const char *reason)
{
	client *k = conn_owner(c);
	k->connect_calls++;
	k->connect_status = status;
	snprintf(k->connect_reason, sizeof(k->connect_reason), "%s", reason ? reason : "");
	if (status < 0) {
		k->c = NULL;
		client_done();
		return;
	}
	k->c = c;
	assert_int_equal(conn_role(c), AUTH_ROLE_SERVER);
	assert_string_equal(conn_name(c), "byold-test");
	if (k->on_open)
		k->on_open(k);
}

static void c_on_message(conn *c, Byol__Envelope *m)
{
	client *k = conn_owner(c);
	switch (m->msg_case) {
	case BYOL__ENVELOPE__MSG_HEARTBEAT:
		assert_int_equal(m->heartbeat->seq, k->replies + 1);
		k->replies++;
		if (k->keep_pinging && !(k->stop && k->stop() && ++k->after_stop > 10)) {
			send_heartbeat(c, k->replies + 1);
		} else if (!k->keep_pinging && (int)k->replies < k->target) {
			send_heartbeat(c, k->replies + 1);
		} else {
			conn_close(c, 0, NULL);
		}
		break;
	case BYOL__ENVELOPE__MSG_ERROR:
		k->errors++;
		snprintf(k->last_error, sizeof(k->last_error), "%s", m->error->message);
		break;
	case BYOL__ENVELOPE__MSG_STEP_PARAMS: {
		Byol__StepParams *p = m->step_params;
		if (W.mode == MODE_FLOOD) {
			assert_int_equal(p->step, (uint64_t)k->params);
			k->params_ok += check_fill(p->online.data, p->online.len, FLOOD_FLOATS,
						   p->step);
			if (++k->params == FLOOD_N) {
				assert_int_equal(W.q_at_drain <= (size_t)4 << 20, 1);
				conn_close(c, 0, NULL);
			}
		} else {
			if (W.mode == MODE_ZEROCOPY) /* ServerHello, AuthResult, StepParams, attachment */
				assert_int_equal(conn_frames_received(c), 4);
			k->params++;
			k->params_ok += check_fill(p->online.data, p->online.len, k->big_floats,
						   p->step);
			conn_close(c, 0, NULL);
		}
		break;
	}
	default:
		fail_msg("client got %s", frame_msg_name(m->msg_case));
	}
}

static void c_on_close(conn *c, int code, const char *reason)
{
	client *k = conn_owner(c);
	k->closed++;
	k->close_code = code;
	snprintf(k->close_reason, sizeof(k->close_reason), "%s", reason);
	k->c = NULL;
	client_done();
}

static conn_config client_cfg(client *k, const char *token, int role, const char *name)
{
	conn_config cfg = {0};
	cfg.token = token;
	cfg.role = role;
	cfg.name = name;
	cfg.data = k;
	cfg.on_message = c_on_message;
	cfg.on_close = c_on_close;
	return cfg;
}

static void open_ping(client *k) { send_heartbeat(k->c, 1); }

static void connect_tcp(client *k, int port, const char *token, int role, const char *name)
{
	char addr[64], err[BYOL_ERR_LEN];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	conn_config cfg = client_cfg(k, token, role, name);
	int rc = conn_connect_tcp(&W.loop, addr, &cfg, c_on_connect, NULL, err);
	if (rc != 0)
		fail_msg("connect %s: %s", addr, err);
}

static int listen_tcp(const char *token)
{
	char err[BYOL_ERR_LEN];
	conn_config cfg = server_cfg(token);
	int rc = conn_listen_tcp(&W.loop, "127.0.0.1:0", &cfg, &W.srv, err);
	if (rc != 0)
		fail_msg("listen: %s", err);
	int port = conn_server_port(W.srv);
	assert_true(port > 0);
	return port;
}

/* ---- tests ---- */

/* A server and two clients (a worker and a byolctl) over loopback TCP. */
static void test_tcp_two_clients(void **state)
{
	(void)state;
	int port = listen_tcp(TOKEN);
	client a = {.label = "a", .on_open = open_ping, .target = 50};
	client b = {.label = "b", .on_open = open_ping, .target = 30};
	W.expect_clients = 2;
	connect_tcp(&a, port, TOKEN, AUTH_ROLE_WORKER, "w1");
	connect_tcp(&b, port, TOKEN, AUTH_ROLE_CLIENT, "ctl");
	world_run();
	assert_int_equal(a.connect_calls, 1);
	assert_int_equal(b.connect_calls, 1);
	assert_int_equal(a.connect_status, 0);
	assert_int_equal(a.replies, 50);
	assert_int_equal(b.replies, 30);
	assert_int_equal(W.s_open, 2);
	assert_int_equal(W.s_msgs, 80);
	assert_int_equal(W.s_close, 2);
	assert_non_null(server_closed("w1"));
	assert_non_null(server_closed("ctl"));
	assert_int_equal(server_closed("w1")->code, 0);
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.close_code, 0);
	assert_int_equal(b.closed, 1);
	assert_int_equal(W.nlogs, 0);
}

/* The same over a Unix socket, with no token: mode 0600, peer named by pid. */
static void test_pipe_two_clients(void **state)
{
	(void)state;
	char dir[] = "/tmp/byol-conn-XXXXXX", path[128], err[BYOL_ERR_LEN];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/byold.sock", dir);
	conn_config cfg = server_cfg(NULL);
	assert_int_equal(conn_listen_pipe(&W.loop, path, &cfg, &W.srv, err), 0);
	assert_int_equal(conn_server_port(W.srv), -1);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	client a = {.label = "a", .on_open = open_ping, .target = 20};
	client b = {.label = "b", .on_open = open_ping, .target = 20};
	W.expect_clients = 2;
	conn_config ca = client_cfg(&a, NULL, AUTH_ROLE_WORKER, "pw1");
	conn_config cb = client_cfg(&b, NULL, AUTH_ROLE_CLIENT, "pctl");
	conn *pa = NULL;
	assert_int_equal(conn_connect_pipe(&W.loop, path, &ca, c_on_connect, &pa, err), 0);
	assert_non_null(pa);
	assert_int_equal(strncmp(conn_peer(pa), "unix:", 5), 0);
	assert_int_equal(conn_connect_pipe(&W.loop, path, &cb, c_on_connect, NULL, err), 0);
	world_run();
	assert_int_equal(a.connect_calls, 1);
	assert_int_equal(b.connect_calls, 1);
	assert_int_equal(a.replies, 20);
	assert_int_equal(b.replies, 20);
	assert_int_equal(W.s_open, 2);
	assert_int_equal(W.s_close, 2);
	assert_int_equal(W.nlogs, 0);
	assert_int_equal(access(path, F_OK), -1); /* removed on close */
	rmdir(dir);
}

static void open_big(client *k)
{
	size_t n = k->big_floats;
	float *g = malloc(n * sizeof(float));
	assert_non_null(g);
	fill(g, n, 42);
	Byol__NodeResult r = BYOL__NODE_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	r.step = 42;
	r.grad.data = (uint8_t *)g;
	r.grad.len = n * sizeof(float);
	e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
	e.node_result = &r;
	send_or_fail(k->c, &e);
	free(g); /* conn_send keeps nothing of e */
}

static int borrowed_done_calls, borrowed_status = 1;

static void borrowed_done(void *data, int status)
{
	borrowed_done_calls++;
	borrowed_status = status;
	free(data);
}

static void open_big_borrowed(client *k)
{
	size_t n = k->big_floats;
	float *g = malloc(n * sizeof(float));
	assert_non_null(g);
	fill(g, n, 42);
	Byol__NodeResult r = BYOL__NODE_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	uint8_t bn[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	r.step = 42;
	r.grad.data = (uint8_t *)g;
	r.grad.len = n * sizeof(float);
	r.bn_stats.data = bn;
	r.bn_stats.len = sizeof(bn);
	e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
	e.node_result = &r;
	char err[BYOL_ERR_LEN];
	assert_int_equal(conn_send_borrowed(k->c, &e, &r.grad, 5, borrowed_done, g, err), 0);
	assert_ptr_equal(r.grad.data, (uint8_t *)g);
	assert_true(conn_write_queue_size(k->c) >= n * sizeof(float));
	assert_int_equal(borrowed_done_calls, 0); /* g stays ours until written */
}

/* The same round trip without copies: the gradient written from where it lies,
 * adopted by the receiver, sent back from the adopted buffer. */
static void test_zero_copy_roundtrip(void **state)
{
	(void)state;
	W.mode = MODE_ZEROCOPY;
	int port = listen_tcp(TOKEN);
	client a = {.label = "zc", .on_open = open_big_borrowed, .big_floats = (size_t)2 << 20};
	W.expect_clients = 1;
	borrowed_done_calls = 0;
	connect_tcp(&a, port, TOKEN, AUTH_ROLE_WORKER, "zc");
	world_run();
	assert_int_equal(a.connect_status, 0);
	assert_int_equal(borrowed_done_calls, 1);
	assert_int_equal(borrowed_status, 0);
	assert_int_equal(a.params, 1);
	assert_int_equal(a.params_ok, 1);
	assert_int_equal(W.nlogs, 0);
}

/* 8 MiB of floats to the server and back, intact. */
static void test_big_roundtrip(void **state)
{
	(void)state;
	int port = listen_tcp(TOKEN);
	client a = {.label = "big", .on_open = open_big, .big_floats = (size_t)2 << 20};
	W.expect_clients = 1;
	connect_tcp(&a, port, TOKEN, AUTH_ROLE_WORKER, "big");
	world_run();
	assert_int_equal(a.connect_status, 0);
	assert_int_equal(a.params, 1);
	assert_int_equal(a.params_ok, 1);
	assert_int_equal(W.s_msgs, 1);
	assert_int_equal(a.closed, 1);
	assert_int_equal(W.s_close, 1);
	assert_int_equal(W.nlogs, 0);
}

/* The server's frame limit applies to what it reads: a 2 MiB frame to a server
 * that takes 1 MiB closes that conn, and the peer is told why. */
static void test_server_max_frame(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	conn_config cfg = server_cfg(TOKEN);
	cfg.max_frame = (size_t)1 << 20;
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:0", &cfg, &W.srv, err), 0);
	client a = {.label = "huge", .on_open = open_big, .big_floats = (size_t)1 << 19};
	W.expect_clients = 1;
	connect_tcp(&a, conn_server_port(W.srv), TOKEN, AUTH_ROLE_WORKER, "huge");
	world_run();
	assert_int_equal(a.connect_status, 0);
	assert_int_equal(logged("huge", "exceeds the limit 1048576"), 1);
	assert_int_equal(W.nlogs, 1);
	assert_int_equal(W.s_msgs, 0);
	assert_int_equal(server_closed("huge")->code, -EMSGSIZE);
	assert_int_equal(a.errors, 1);
	assert_non_null(strstr(a.last_error, "exceeds the limit 1048576"));
	assert_int_equal(a.params, 0);
	assert_int_equal(a.closed, 1);
}

/* ---- misbehaving peers beside a good client ---- */

static int bad_expected;
static int raw_done;

static void write_raw(conn *c, const void *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	assert_int_equal(uv_try_write(conn_stream(c), &b, 1), (int)n);
}

static void open_garbage(client *k)
{
	uint8_t g[4 + 100] = {0, 0, 0, 100};
	memset(g + 4, 0xff, 100);
	write_raw(k->c, g, sizeof(g));
}

static void open_oversize(client *k)
{
	const uint8_t g[4] = {0x7f, 0xff, 0xff, 0xff};
	write_raw(k->c, g, sizeof(g));
}

static void open_truncated(client *k)
{
	uint8_t g[4 + 1000] = {0, 0, 0x10, 0x00}; /* 4096 promised */
	write_raw(k->c, g, sizeof(g));
	conn_close(k->c, 0, NULL);
}

static void open_reauth(client *k)
{
	Byol__ClientAuth a = BYOL__CLIENT_AUTH__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	char err[BYOL_ERR_LEN];
	a.role = BYOL__ROLE__ROLE_WORKER;
	a.name = "again";
	e.msg_case = BYOL__ENVELOPE__MSG_CLIENT_AUTH;
	e.client_auth = &a;
	/* conn_send refuses handshake messages; write the frame underneath */
	assert_int_equal(conn_send(k->c, &e, err), -EINVAL);
	uint8_t *f;
	size_t n;
	assert_int_equal(frame_encode(&e, &f, &n, err), 0);
	write_raw(k->c, f, n);
	free(f);
}

/* A raw TCP peer that speaks HTTP and reads until the server hangs up. */
typedef struct {
	uv_tcp_t tcp;
	uv_connect_t req;
	const char *send;
	size_t send_len;         /* 0: strlen(send) */
	int eof;
	size_t got;
	char buf[4096];
} raw_peer;

static void raw_closed(uv_handle_t *h)
{
	(void)h;
	raw_done++;
}

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	raw_peer *r = h->data;
	(void)s;
	*b = uv_buf_init(r->buf, sizeof(r->buf));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	raw_peer *r = s->data;
	(void)b;
	if (n > 0)
		r->got += (size_t)n;
	if (n < 0) {
		r->eof = 1;
		uv_close((uv_handle_t *)s, raw_closed);
	}
}

static void raw_connected(uv_connect_t *req, int status)
{
	raw_peer *r = req->handle->data;
	assert_int_equal(status, 0);
	uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
	if (r->send) {
		size_t n = r->send_len ? r->send_len : strlen(r->send);
		uv_buf_t b = uv_buf_init((char *)r->send, (unsigned)n);
		assert_int_equal(uv_try_write((uv_stream_t *)&r->tcp, &b, 1), (int)n);
	}
}

static void raw_connect(raw_peer *r, int port, const char *send)
{
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", port, &sa);
	uv_tcp_init(&W.loop, &r->tcp);
	r->tcp.data = r;
	r->send = send;
	assert_int_equal(uv_tcp_connect(&r->req, &r->tcp, (struct sockaddr *)&sa,
					raw_connected), 0);
}

static int bad_all_done(void)
{
	return W.clients_done >= bad_expected && raw_done >= 2;
}

static void open_good(client *k)
{
	(void)k;
	send_heartbeat(k->c, 1);
}

static void test_bad_peers(void **state)
{
	(void)state;
	int port = listen_tcp(TOKEN);
	client good = {.label = "good", .on_open = open_good, .keep_pinging = 1,
		       .stop = bad_all_done};
	client garbage = {.label = "garbage", .on_open = open_garbage};
	client oversize = {.label = "oversize", .on_open = open_oversize};
	client trunc = {.label = "truncated", .on_open = open_truncated};
	client reauth = {.label = "reauth", .on_open = open_reauth};
	client wrong = {.label = "wrongtoken"};
	client none = {.label = "notoken"};
	raw_peer http = {0};
	/* 16 MiB promised before any handshake: refused at the 4 bytes, nothing
	 * reserved for it */
	raw_peer early = {.send = "\x00\xff\xff\xff\x01\x02\x03\x04", .send_len = 8};
	bad_expected = 6;
	raw_done = 0;
	W.expect_clients = 7;
	connect_tcp(&good, port, TOKEN, AUTH_ROLE_WORKER, "good");
	connect_tcp(&garbage, port, TOKEN, AUTH_ROLE_WORKER, "garbage");
	connect_tcp(&oversize, port, TOKEN, AUTH_ROLE_WORKER, "oversize");
	connect_tcp(&trunc, port, TOKEN, AUTH_ROLE_WORKER, "truncated");
	connect_tcp(&reauth, port, TOKEN, AUTH_ROLE_CLIENT, "reauth");
	connect_tcp(&wrong, port, "not-the-cluster-token-at-all", AUTH_ROLE_WORKER,
		    "wrongtoken");
	connect_tcp(&none, port, NULL, AUTH_ROLE_CLIENT, "notoken");
	raw_connect(&http, port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
	raw_connect(&early, port, early.send);
	early.send_len = 8;
	world_run();

	/* every bad peer was closed, each with its own logged reason */
	assert_int_equal(logged("garbage", "malformed Envelope in a 100-byte frame"), 1);
	assert_int_equal(logged("oversize", "frame length 2147483647 exceeds the limit "
				"268435456"), 1);
	assert_int_equal(logged("truncated", "stream ended inside a frame: 1000 of 4096 "
				"bytes"), 1);
	assert_int_equal(logged("reauth", "unexpected client_auth after the handshake"), 1);
	assert_int_equal(logged("wrongtoken", "authentication failed: wrong token"), 1);
	assert_int_equal(logged("frame length 1195725856 exceeds the limit 65536", NULL), 1);
	assert_int_equal(logged("frame length 16777215 exceeds the limit 65536", NULL), 1);
	assert_true(early.eof);
	/* the peer without a token said why it gave up */
	assert_int_equal(logged("peer error during the handshake: the server requires a "
				"token", NULL), 1);
	assert_true(http.eof);
	assert_true(http.got > 0); /* the ServerHello */
	/* the server told the open ones why */
	assert_int_equal(garbage.errors, 1);
	assert_non_null(strstr(garbage.last_error, "malformed Envelope"));
	assert_int_equal(oversize.errors, 1);
	assert_non_null(strstr(oversize.last_error, "2147483647"));
	assert_int_equal(reauth.errors, 1);
	/* refused handshakes: one connect callback each, with the reason */
	assert_int_equal(wrong.connect_calls, 1);
	assert_int_equal(wrong.connect_status, -EACCES);
	assert_non_null(strstr(wrong.connect_reason, "wrong token"));
	assert_int_equal(wrong.closed, 0);
	assert_int_equal(none.connect_calls, 1);
	assert_int_equal(none.connect_status, -EACCES);
	assert_non_null(strstr(none.connect_reason, "requires a token"));
	/* the open ones ended on the server with an error code */
	assert_int_equal(W.s_open, 5);
	assert_int_equal(W.s_close, 5);
	assert_int_equal(server_closed("garbage")->code, -EBADMSG);
	assert_int_equal(server_closed("oversize")->code, -EMSGSIZE);
	assert_int_equal(server_closed("truncated")->code, -EPROTO);
	assert_int_equal(server_closed("reauth")->code, -EPROTO);
	/* and the good client never noticed: it kept going after all of them */
	assert_int_equal(good.connect_status, 0);
	assert_true(good.after_stop > 10);
	assert_int_equal(good.errors, 0);
	assert_int_equal(good.close_code, 0);
	assert_int_equal(server_closed("good")->code, 0);
	assert_int_equal(W.nlogs, 8);
}

/* ---- back-pressure ---- */

static uv_timer_t resume_timer;

static void on_resume(uv_timer_t *t)
{
	client *k = t->data;
	assert_int_equal(conn_set_reading(k->c, 1), 0);
	uv_close((uv_handle_t *)t, NULL);
}

static void open_slow(client *k)
{
	assert_int_equal(conn_set_reading(k->c, 0), 0);
	send_heartbeat(k->c, 777);
	uv_timer_init(&W.loop, &resume_timer);
	resume_timer.data = k;
	uv_timer_start(&resume_timer, on_resume, 200, 0);
}

static void test_backpressure(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	W.mode = MODE_FLOOD;
	conn_config cfg = server_cfg(TOKEN);
	cfg.high_water = (size_t)8 << 20;
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:0", &cfg, &W.srv, err), 0);
	client k = {.label = "slow", .on_open = open_slow};
	W.expect_clients = 1;
	connect_tcp(&k, conn_server_port(W.srv), TOKEN, AUTH_ROLE_WORKER, "slow");
	world_run();
	/* 40 MiB queued to a reader that did not read: the queue rose past the
	 * watermark once, and drained once when the reader resumed */
	assert_int_equal(W.high_calls, 1);
	assert_true(W.q_at_high > (size_t)8 << 20);
	assert_true(W.q_max > (size_t)24 << 20);
	assert_int_equal(W.drain_calls, 1);
	assert_true(W.q_at_drain <= (size_t)4 << 20);
	assert_int_equal(k.params, FLOOD_N);
	assert_int_equal(k.params_ok, FLOOD_N);
	assert_int_equal(k.close_code, 0);
	assert_int_equal(W.nlogs, 0);
}

/* ---- refused sends ---- */

static int closed_cb_calls;

static void open_then_refuse(client *k)
{
	char err[BYOL_ERR_LEN];
	Byol__Envelope empty = BYOL__ENVELOPE__INIT;
	assert_int_equal(conn_send(k->c, &empty, err), -EINVAL);
	/* over this conn's max_frame (4096) */
	float *p = calloc(2048, sizeof(float));
	Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sp.online.data = (uint8_t *)p;
	sp.online.len = 2048 * sizeof(float);
	e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
	e.step_params = &sp;
	assert_int_equal(conn_send(k->c, &e, err), -EMSGSIZE);
	assert_non_null(strstr(err, "step_params"));
	free(p);
	conn_close(k->c, 0, NULL);
	assert_false(conn_is_open(k->c));
	Byol__Heartbeat h = BYOL__HEARTBEAT__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &h;
	assert_int_equal(conn_send(k->c, &e, err), -EPIPE);
	assert_non_null(strstr(err, "closing"));
	assert_int_equal(conn_set_reading(k->c, 1), -EPIPE);
	/* a second close is harmless */
	conn_close(k->c, 0, NULL);
	closed_cb_calls++;
}

static void test_send_refused(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN], addr[64];
	int port = listen_tcp(TOKEN);
	client k = {.label = "refuse", .on_open = open_then_refuse};
	conn_config cfg = client_cfg(&k, TOKEN, AUTH_ROLE_CLIENT, "refuse");
	cfg.max_frame = 4096;
	W.expect_clients = 1;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	conn *c = NULL;
	assert_int_equal(conn_connect_tcp(&W.loop, addr, &cfg, c_on_connect, &c, err), 0);
	/* before the handshake */
	Byol__Heartbeat h = BYOL__HEARTBEAT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &h;
	assert_int_equal(conn_send(c, &e, err), -ENOTCONN);
	world_run();
	assert_int_equal(closed_cb_calls, 1);
	assert_int_equal(k.connect_calls, 1);
	assert_int_equal(k.closed, 1);
	assert_int_equal(k.close_code, 0);
	assert_int_equal(W.s_close, 1);
}

/* ---- connect failures: one callback each, or none when the call fails ---- */

static void test_connect_failures(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	/* a port nobody listens on: bind one, note it, let it go */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	int dead_port = ntohs(sa.sin_port);
	close(fd);

	client refused = {.label = "refused"}, nopipe = {.label = "nopipe"};
	client cancel = {.label = "cancel"}, bad = {.label = "bad"};
	client tokless = {.label = "tokless"}, byname = {.label = "byname",
		.on_open = open_ping, .target = 3};
	W.expect_clients = 5;
	connect_tcp(&refused, dead_port, TOKEN, AUTH_ROLE_WORKER, "r");
	conn_config cfg = client_cfg(&nopipe, TOKEN, AUTH_ROLE_WORKER, "p");
	assert_int_equal(conn_connect_pipe(&W.loop, "/tmp/byol-no-such-dir/sock", &cfg,
					   c_on_connect, NULL, err), 0);
	cfg = client_cfg(&cancel, TOKEN, AUTH_ROLE_WORKER, "c");
	conn *c;
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead_port);
	assert_int_equal(conn_connect_tcp(&W.loop, addr, &cfg, c_on_connect, &c, err), 0);
	conn_close(c, 0, NULL);
	conn_close(c, -EIO, "again"); /* ignored: already closing */
	/* calls that fail at once never call back */
	cfg = client_cfg(&bad, TOKEN, AUTH_ROLE_WORKER, "b");
	assert_int_equal(conn_connect_tcp(&W.loop, "no-port-here", &cfg, c_on_connect, NULL,
					  err), -EINVAL);
	assert_non_null(strstr(err, "no-port-here"));
	assert_int_equal(conn_connect_tcp(&W.loop, "127.0.0.1:99999", &cfg, c_on_connect,
					  NULL, err), -EINVAL);
	cfg.role = 0;
	assert_int_equal(conn_connect_tcp(&W.loop, addr, &cfg, c_on_connect, NULL, err),
			 -EINVAL);
	cfg = client_cfg(&bad, "short", AUTH_ROLE_WORKER, "b");
	assert_int_equal(conn_connect_tcp(&W.loop, addr, &cfg, c_on_connect, NULL, err),
			 -EINVAL);
	/* a token here, none on the server: the server cannot prove itself */
	int port = listen_tcp(NULL);
	connect_tcp(&tokless, port, TOKEN, AUTH_ROLE_CLIENT, "t");
	/* a name resolved asynchronously */
	cfg = client_cfg(&byname, NULL, AUTH_ROLE_CLIENT, "n");
	snprintf(addr, sizeof(addr), "localhost:%d", port);
	assert_int_equal(conn_connect_tcp(&W.loop, addr, &cfg, c_on_connect, NULL, err), 0);
	world_run();
	assert_int_equal(refused.connect_calls, 1);
	assert_int_equal(refused.connect_status, -ECONNREFUSED);
	assert_int_equal(nopipe.connect_calls, 1);
	assert_int_equal(nopipe.connect_status, -ENOENT);
	assert_int_equal(cancel.connect_calls, 1);
	assert_int_equal(cancel.connect_status, -ECANCELED);
	assert_int_equal(bad.connect_calls, 0);
	assert_int_equal(tokless.connect_calls, 1);
	assert_int_equal(tokless.connect_status, -EACCES);
	assert_non_null(strstr(tokless.connect_reason, "cannot prove"));
	assert_int_equal(byname.connect_calls, 1);
	assert_int_equal(byname.connect_status, 0);
	assert_int_equal(byname.replies, 3);
	assert_int_equal(W.s_open, 1);
}

/* ---- listen rules ---- */

static void test_listen_rules(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN], dir[] = "/tmp/byol-conn-XXXXXX", path[64];
	conn_server *s = NULL, *s2 = NULL;
	conn_config open_cfg = server_cfg(NULL), tok_cfg = server_cfg(TOKEN);
	assert_int_equal(conn_listen_tcp(&W.loop, "0.0.0.0:0", &open_cfg, &s, err), -EPERM);
	assert_null(s);
	assert_non_null(strstr(err, "without a token"));
	assert_int_equal(conn_listen_tcp(&W.loop, "0.0.0.0:0", &tok_cfg, &s, err), 0);
	conn_server_close(s);
	/* IPv6 loopback, where the machine has it */
	int rc = conn_listen_tcp(&W.loop, "[::1]:0", &open_cfg, &s, err);
	if (rc != -EADDRNOTAVAIL && rc != -EAFNOSUPPORT) {
		assert_int_equal(rc, 0);
		assert_true(conn_server_port(s) > 0);
		conn_server_close(s);
	}
	/* the same port again is in use */
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:0", &open_cfg, &s, err), 0);
	char again[64];
	snprintf(again, sizeof(again), "127.0.0.1:%d", conn_server_port(s));
	assert_int_equal(conn_listen_tcp(&W.loop, again, &open_cfg, &s2, err), -EADDRINUSE);
	assert_null(s2);
	assert_non_null(strstr(err, again));
	conn_server_close(s);
	assert_int_equal(conn_listen_tcp(&W.loop, "localhost:0", &open_cfg, &s, err), 0);
	conn_server_close(s);
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1", &open_cfg, &s, err), -EINVAL);
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:65536", &open_cfg, &s, err),
			 -EINVAL);
	assert_int_equal(conn_listen_tcp(&W.loop, "[::1:80", &open_cfg, &s, err), -EINVAL);

	/* Unix sockets: a live one is refused, a stale one replaced */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	assert_int_equal(conn_listen_pipe(&W.loop, path, &open_cfg, &s, err), 0);
	assert_int_equal(conn_listen_pipe(&W.loop, path, &open_cfg, &s2, err), -EADDRINUSE);
	assert_non_null(strstr(err, "another server"));
	conn_server_close(s);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd); /* the file stays, nobody accepts */
	assert_int_equal(conn_listen_pipe(&W.loop, path, &open_cfg, &s, err), 0);
	conn_server_close(s);
	world_run();
	rmdir(dir);
	assert_int_equal(W.s_open, 0);
}

/* ---- silence: both sides give up after handshake_ms ---- */

static uv_tcp_t mute_srv, mute_peer;
static int mute_accepts;

static void on_mute_conn(uv_stream_t *s, int status)
{
	assert_int_equal(status, 0);
	uv_tcp_init(&W.loop, &mute_peer);
	assert_int_equal(uv_accept(s, (uv_stream_t *)&mute_peer), 0);
	mute_accepts++;
}

static void close_mute(client *k)
{
	(void)k;
}

static void test_handshake_timeouts(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN], addr[64];
	conn_config cfg = server_cfg(TOKEN);
	cfg.handshake_ms = 150;
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:0", &cfg, &W.srv, err), 0);
	raw_peer quiet = {0};
	raw_done = 0;
	raw_connect(&quiet, conn_server_port(W.srv), NULL);

	/* a server that accepts and never says hello */
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&W.loop, &mute_srv);
	assert_int_equal(uv_tcp_bind(&mute_srv, (struct sockaddr *)&sa, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&mute_srv, 8, on_mute_conn), 0);
	int len = sizeof(sa);
	uv_tcp_getsockname(&mute_srv, (struct sockaddr *)&sa, &len);
	client k = {.label = "mute", .on_open = close_mute};
	conn_config kc = client_cfg(&k, TOKEN, AUTH_ROLE_WORKER, "m");
	kc.handshake_ms = 150;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	double t0 = now_s();
	assert_int_equal(conn_connect_tcp(&W.loop, addr, &kc, c_on_connect, NULL, err), 0);
	/* run until the client has given up and the quiet peer was dropped */
	while (k.connect_calls == 0 || raw_done == 0)
		uv_run(&W.loop, UV_RUN_ONCE);
	double dt = now_s() - t0;
	conn_server_close(W.srv);
	uv_close((uv_handle_t *)&mute_srv, NULL);
	uv_close((uv_handle_t *)&mute_peer, NULL);
	world_run();
	assert_int_equal(k.connect_calls, 1);
	assert_int_equal(k.connect_status, -ETIMEDOUT);
	assert_non_null(strstr(k.connect_reason, "handshake timed out"));
	assert_int_equal(mute_accepts, 1);
	assert_true(dt >= 0.14 && dt < 5);
	assert_true(quiet.eof);
	assert_int_equal(logged("handshake timed out", NULL), 1);
	assert_int_equal(W.s_open, 0);
}

/* ---- throughput: 8 MiB NodeResults through conn, client in its own thread ---- */

#define TP_FLOATS ((size_t)2 << 20)
#define TP_FRAMES 80

static struct {
	uv_loop_t loop;
	int port;
	conn *c;
	float *grad;
	int sent, paused, done, connect_status;
} TP;

static void tp_pump(conn *c)
{
	Byol__NodeResult r = BYOL__NODE_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	char err[BYOL_ERR_LEN];
	e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
	e.node_result = &r;
	r.grad.data = (uint8_t *)TP.grad;
	r.grad.len = TP_FLOATS * sizeof(float);
	r.loss = 1.5;
	r.n = 64;
	while (!TP.paused && TP.sent < TP_FRAMES) {
		r.step = (uint64_t)TP.sent;
		TP.grad[0] = TP.grad[TP_FLOATS - 1] = (float)TP.sent;
		TP.sent++;
		if (conn_send(c, &e, err) < 0)
			return;
	}
}

static void tp_high(conn *c)
{
	(void)c;
	TP.paused = 1;
}

static void tp_drain(conn *c)
{
	TP.paused = 0;
	tp_pump(c);
}

static void tp_message(conn *c, Byol__Envelope *m)
{
	if (m->msg_case == BYOL__ENVELOPE__MSG_HEARTBEAT && m->heartbeat->seq == 999) {
		TP.done = 1;
		conn_close(c, 0, NULL);
	}
}

static void tp_connected(conn *c, int status, const char *reason)
{
	(void)reason;
	TP.connect_status = status;
	if (status == 0)
		tp_pump(c);
}

static void *tp_client(void *arg)
{
	(void)arg;
	char err[BYOL_ERR_LEN], addr[64];
	uv_loop_init(&TP.loop);
	conn_config cfg = {0};
	cfg.token = TOKEN;
	cfg.role = AUTH_ROLE_WORKER;
	cfg.name = "tp";
	cfg.on_message = tp_message;
	cfg.on_high_water = tp_high;
	cfg.on_drain = tp_drain;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", TP.port);
	TP.connect_status = 1;
	if (conn_connect_tcp(&TP.loop, addr, &cfg, tp_connected, NULL, err) == 0)
		uv_run(&TP.loop, UV_RUN_DEFAULT);
	uv_loop_close(&TP.loop);
	return NULL;
}

static void tp_server_closed(conn *c, int code, const char *reason)
{
	s_on_close(c, code, reason);
	conn_server_close(W.srv);
	W.srv = NULL;
}

static void test_throughput_8mib(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	memset(&TP, 0, sizeof(TP));
	TP.grad = malloc(TP_FLOATS * sizeof(float));
	assert_non_null(TP.grad);
	fill(TP.grad, TP_FLOATS, 1);
	W.mode = MODE_SINK;
	W.n_frames = TP_FRAMES;
	conn_config cfg = server_cfg(TOKEN);
	cfg.on_close = tp_server_closed;
	assert_int_equal(conn_listen_tcp(&W.loop, "127.0.0.1:0", &cfg, &W.srv, err), 0);
	TP.port = conn_server_port(W.srv);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, tp_client, NULL), 0);
	world_run();
	pthread_join(th, NULL);
	free(TP.grad);
	assert_int_equal(TP.connect_status, 0);
	assert_int_equal(TP.done, 1);
	assert_int_equal(W.got_frames, TP_FRAMES);
	assert_int_equal(W.bad_data, 0);
	int frames = TP_FRAMES - 16;
	double bytes = (double)frames * (double)(TP_FLOATS * sizeof(float));
	double gbs = bytes / (W.t1 - W.t0) / 1e9;
	double allocs = (double)(W.allocs1 - W.allocs0) / frames;
	print_message("throughput: 8 MiB NodeResult frames over loopback TCP: %.2f GB/s "
		      "(send + receive + unpack, %d frames after 16 warm-up), %.3f "
		      "allocations per frame%s\n", gbs, frames, allocs,
#ifdef COUNT_ALLOCS
		      ""
#else
		      " (not counted under ASan)"
#endif
	);
#ifdef COUNT_ALLOCS
	/* steady state: buffers pooled, reader and arena reused */
	assert_true(W.allocs1 - W.allocs0 <= 2);
#endif
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, world_setup)
	const struct CMUnitTest tests[] = {
		T(test_tcp_two_clients),
		T(test_pipe_two_clients),
		T(test_big_roundtrip),
		T(test_zero_copy_roundtrip),
		T(test_server_max_frame),
		T(test_bad_peers),
		T(test_backpressure),
		T(test_send_refused),
		T(test_connect_failures),
		T(test_listen_rules),
		T(test_handshake_timeouts),
		T(test_throughput_8mib),
	};
	if (getenv("TEST_FILTER_CONN")) /* e.g. TEST_FILTER_CONN=test_throughput* */
		cmocka_set_test_filter(getenv("TEST_FILTER_CONN"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
