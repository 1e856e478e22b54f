/*
 * net.c — byol-worker's network mode (worker/net.h, docs/protocol.md).
 *
 * One libuv loop thread moves bytes and state; every heavy piece of work (a run's
 * set-up, a step's tree nodes, an evaluation) is a job run in the libuv
 * threadpool, one job at a time, in arrival order. A message that cannot be
 * handled while the current job runs (new parameters while a step computes over
 * the old ones; anything of a run whose set-up is still loading) waits, packed,
 * in an inbox, and so does every message after it, so the coordinator's order is
 * kept. A job's answer goes out only on the connection that asked for it.
 *
 * The run itself (its replicas, computing nodes and evaluations) is worker/run.c.
 */
#include "net.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "byol/auth.h"
#include "byol/conn.h"
#include "byol/error.h"
#include "byol/frame.h"
#include "run.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensors travel as little-endian float32: byol-worker needs a little-endian host"
#endif

#define WORKER_VERSION "byol-worker/1"
#define BACKOFF_MIN 0.1         /* seconds */
#define BACKOFF_MAX 10.0
#define STABLE_MS 10000         /* a connection this old resets the back-off */
#define STEP_LOG_MS 5000        /* at most one progress line per this */

/* ---- clocks and logs -------------------------------------------------------- */

static void conn_log(void *data, const char *line)
{
	(void)data;
	worker_log("%s", line);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- jobs ------------------------------------------------------------------- */

typedef enum { JOB_SETUP, JOB_NODES, JOB_EVAL } job_kind;

typedef struct worker worker;

typedef struct job {
	uv_work_t req;
	worker *w;
	struct job *next;
	job_kind kind;
	uint64_t gen;           /* the connection that asked */
	int rc;
	char err[BYOL_ERR_LEN];
	run_state *rs;          /* SETUP: the result; else the run it computes for */
	long step;
	double seconds;
	/* JOB_SETUP */
	run_setup_args setup;   /* its config_json is owned */
	/* JOB_NODES: node i is [lo[i], hi[i]), its leaves at leaves[off[i]...] */
	int n_nodes;
	int *lo, *hi, *off;
	/* JOB_EVAL */
	uint64_t job_id;
	char eval_kind[8];
	float *online;          /* (P) */
	float *bn;              /* (NB + 1) */
	double accuracy;
} job;

/* A message kept for later, packed. */
typedef struct inbox_msg {
	struct inbox_msg *next;
	size_t len;
	uint8_t data[];
} inbox_msg;

struct worker {
	uv_loop_t loop;
	worker_net_options opt;
	char name[CONN_NAME_MAX + 1];
	char host[256];
	char *token;
	const char *addr;       /* for messages */
	conn *c;                /* connecting or open; NULL in between */
	int open;
	uint64_t gen;           /* bumped on every open and close */
	uint64_t opened_ms, last_rx_ms, last_step_log_ms;
	int peer_beats;         /* the coordinator heartbeats on this connection */
	uint64_t hb_seq;
	double backoff;         /* seconds, the next retry's base delay */
	uint64_t rng;
	uv_timer_t hb_timer, retry_timer;
	uv_signal_t sig_term, sig_int;
	int stopping, finishing;
	run_state *run;
	job *busy;              /* in the threadpool */
	job *q_head, *q_tail;   /* waiting */
	int nodes_pending;      /* JOB_NODES busy or waiting */
	int borrowed;           /* NodeResults being written from the run's leaves */
	inbox_msg *in_head, *in_tail;
};

static void job_free(job *j)
{
	if (!j)
		return;
	free((char *)j->setup.config_json);
	if (j->kind == JOB_SETUP)
		run_free(j->rs);
	free(j->lo);
	free(j->hi);
	free(j->off);
	free(j->online);
	free(j->bn);
	free(j);
}

static job *job_new(worker *w, job_kind kind)
{
	job *j = calloc(1, sizeof(*j));
	if (j) {
		j->w = w;
		j->kind = kind;
		j->gen = w->gen;
		j->req.data = j;
	}
	return j;
}

static void queue_push(worker *w, job *j)
{
	if (j->kind == JOB_NODES)
		w->nodes_pending++;
	if (w->q_tail)
		w->q_tail->next = j;
	else
		w->q_head = j;
	w->q_tail = j;
}

/* Drops the waiting jobs (not the one in the threadpool). */
static void queue_drop(worker *w, const char *why)
{
	int n = 0;
	while (w->q_head) {
		job *j = w->q_head;
		w->q_head = j->next;
		if (j->kind == JOB_NODES)
			w->nodes_pending--;
		job_free(j);
		n++;
	}
	w->q_tail = NULL;
	if (n)
		worker_log("dropped %d waiting job%s: %s", n, n == 1 ? "" : "s", why);
}

static void inbox_clear(worker *w)
{
	while (w->in_head) {
		inbox_msg *m = w->in_head;
		w->in_head = m->next;
		free(m);
	}
	w->in_tail = NULL;
}

/* ---- sending ---------------------------------------------------------------- */

static void send_env(worker *w, Byol__Envelope *e)
{
	char err[BYOL_ERR_LEN];
	if (!w->c || !w->open || !conn_is_open(w->c))
		return;
	if (conn_send(w->c, e, err) < 0)
		worker_log("cannot send %s: %s", frame_msg_name((int)e->msg_case), err);
}

static void send_error(worker *w, int code, const char *msg)
{
	Byol__Error er = BYOL__ERROR__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	er.code = code;
	er.message = (char *)msg;
	e.msg_case = BYOL__ENVELOPE__MSG_ERROR;
	e.error = &er;
	send_env(w, &e);
}

static void send_run_ready(worker *w, uint64_t run_id)
{
	Byol__RunReady rr = BYOL__RUN_READY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	rr.run_id = run_id;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_READY;
	e.run_ready = &rr;
	send_env(w, &e);
}

static void send_eval_result(worker *w, uint64_t job_id, uint64_t run_id, uint64_t step,
			     const char *kind, double acc, double seconds, const char *error)
{
	Byol__EvalResult er = BYOL__EVAL_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	er.job_id = job_id;
	er.run_id = run_id;
	er.step = step;
	er.kind = (char *)kind;
	er.accuracy = acc;
	er.seconds = seconds;
	er.error = (char *)(error ? error : "");
	e.msg_case = BYOL__ENVELOPE__MSG_EVAL_RESULT;
	e.eval_result = &er;
	send_env(w, &e);
}

static void kick(worker *w);
static void inbox_drain(worker *w);

/* A NodeResult's gradient has left (or was dropped): the leaves may change. */
static void node_result_written(void *data, int status)
{
	worker *w = data;
	(void)status;
	w->borrowed--;
	if (w->borrowed || w->stopping || !w->c || !conn_is_open(w->c))
		return;
	kick(w);
	inbox_drain(w);
}

/* The gradients go out from the leaves themselves, which no job touches until
 * they are written (kick and on_run_setup wait for w->borrowed). */
static void send_node_results(worker *w, const job *j)
{
	const run_state *rs = j->rs;
	const ProtobufCFieldDescriptor *grad_field =
		protobuf_c_message_descriptor_get_field_by_name(&byol__node_result__descriptor,
								"grad");
	char err[BYOL_ERR_LEN];
	for (int i = 0; i < j->n_nodes && w->c && conn_is_open(w->c); i++) {
		const shard_result *r = &rs->leaves[j->off[i]];
		Byol__NodeResult nr = BYOL__NODE_RESULT__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		nr.run_id = rs->run_id;
		nr.step = (uint64_t)j->step;
		nr.lo = (uint32_t)j->lo[i];
		nr.hi = (uint32_t)j->hi[i];
		nr.grad.data = (uint8_t *)r->grad;
		nr.grad.len = rs->P * sizeof(float);
		nr.bn_stats.data = (uint8_t *)r->bn_stats;
		nr.bn_stats.len = rs->NB * sizeof(float);
		nr.loss = r->loss;
		nr.collapse = r->collapse;
		nr.n = (uint32_t)r->n;
		e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
		e.node_result = &nr;
		if (conn_send_borrowed(w->c, &e, &nr.grad, grad_field->id, node_result_written, w,
				       err) == 0)
			w->borrowed++;
		else
			worker_log("cannot send node_result: %s", err);
	}
}

/* Closes the connection for something the coordinator sent; returns -EPROTO. */
static int proto_error(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int proto_error(worker *w, const char *fmt, ...)
{
	char msg[BYOL_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->c)
		conn_close(w->c, -EPROTO, "%s", msg);
	return -EPROTO;
}

/* ---- the threadpool side ---------------------------------------------------- */

static double mono_seconds(void)
{
	return (double)now_ms() / 1000.0;
}

static void work_cb(uv_work_t *req)
{
	job *j = req->data;
	worker *w = j->w;
	double t0 = mono_seconds();
	if (j->kind == JOB_SETUP)
		j->rc = run_build(&j->rs, &j->setup, w->opt.threads, j->err);
	else if (j->kind == JOB_NODES)
		run_compute_nodes(j->rs, j->step, j->lo, j->hi, j->n_nodes, j->off);
	else
		j->rc = run_evaluate(j->rs, j->eval_kind, j->online, j->bn, w->opt.threads,
				     &j->accuracy, j->err);
	j->seconds = mono_seconds() - t0;
}

static void maybe_finish(worker *w);

static void after_work_cb(uv_work_t *req, int status);

/* Starts the next waiting job when none is running. */
static void kick(worker *w)
{
	if (w->busy || w->borrowed || !w->q_head)
		return;
	job *j = w->q_head;
	w->q_head = j->next;
	if (!w->q_head)
		w->q_tail = NULL;
	j->next = NULL;
	w->busy = j;
	int rc = uv_queue_work(&w->loop, &j->req, work_cb, after_work_cb);
	if (rc < 0) {
		j->rc = byol_err(j->err, rc, "cannot queue work: %s", uv_strerror(rc));
		after_work_cb(&j->req, rc);
	}
}

static void setup_done(worker *w, job *j, int current)
{
	if (j->rc < 0) {
		worker_log("run %llu: set-up failed: %s", (unsigned long long)j->setup.run_id,
			   j->err);
		if (current)
			send_error(w, j->rc, j->err);
		return;
	}
	run_state *rs = j->rs;
	j->rs = NULL;
	w->run = rs;
	worker_log("run %llu: ready in %.1f s: %s, %zu parameters, %ld steps of %d shards of "
		   "%d images, %ld train images, %d threads", (unsigned long long)rs->run_id,
		   j->seconds, config_method_name(rs->cfg.method), rs->P, rs->plan.total_steps,
		   rs->plan.shards, rs->plan.shard, rs->plan.n_train, w->opt.threads);
	if (current)
		send_run_ready(w, rs->run_id);
}

static void nodes_done(worker *w, job *j, int current)
{
	unsigned long long id = (unsigned long long)j->rs->run_id;
	w->nodes_pending--;
	if (!current || w->run != j->rs) {
		worker_log("run %llu step %ld: result dropped: the connection that asked is gone",
			   id, j->step);
		return;
	}
	send_node_results(w, j);
	uint64_t t = now_ms();
	if (t - w->last_step_log_ms >= STEP_LOG_MS) {
		w->last_step_log_ms = t;
		worker_log("run %llu step %ld/%ld: %d node%s in %.3f s", id, j->step,
			   j->rs->plan.total_steps, j->n_nodes, j->n_nodes == 1 ? "" : "s",
			   j->seconds);
	}
}

static void eval_done(worker *w, job *j, int current)
{
	unsigned long long id = (unsigned long long)j->rs->run_id;
	if (j->rc < 0)
		worker_log("run %llu: %s evaluation of step %ld failed: %s", id, j->eval_kind,
			   j->step, j->err);
	else
		worker_log("run %llu: %s of step %ld: %.4f (%.1f s)", id, j->eval_kind, j->step,
			   j->accuracy, j->seconds);
	if (current)
		send_eval_result(w, j->job_id, j->rs->run_id, (uint64_t)j->step, j->eval_kind,
				 j->rc < 0 ? 0 : j->accuracy, j->seconds, j->rc < 0 ? j->err : NULL);
}

static void after_work_cb(uv_work_t *req, int status)
{
	job *j = req->data;
	worker *w = j->w;
	int current = j->gen == w->gen && w->open;
	(void)status;
	w->busy = NULL;
	if (j->kind == JOB_SETUP)
		setup_done(w, j, current);
	else if (j->kind == JOB_NODES)
		nodes_done(w, j, current);
	else
		eval_done(w, j, current);
	job_free(j);
	if (w->stopping) {
		maybe_finish(w);
		return;
	}
	kick(w);
	inbox_drain(w);
}

/* ---- the coordinator's messages --------------------------------------------- */

enum { H_DONE = 0, H_WAIT = 1 };

static int setting_up(const worker *w)
{
	return w->busy && w->busy->kind == JOB_SETUP;
}

static int on_run_setup(worker *w, const Byol__RunSetup *s)
{
	if (w->busy || w->borrowed)
		return H_WAIT;
	queue_drop(w, "the coordinator set up a run");
	run_setup_args a = {
		.run_id = s->run_id, .config_json = s->config_json,
		.param_count = s->param_count, .target_count = s->target_count,
		.bn_count = s->bn_count, .n_train = s->n_train, .total_steps = s->total_steps,
	};
	run_state *rs = w->run;
	char err[BYOL_ERR_LEN];
	if (rs && rs->run_id == s->run_id && strcmp(rs->config_json, s->config_json) == 0 &&
	    run_check_counts(rs, &a, err) == 0) {
		rs->online_step = rs->target_step = -1;
		worker_log("run %llu: already set up; ready", (unsigned long long)rs->run_id);
		send_run_ready(w, rs->run_id);
		return H_DONE;
	}
	run_free(w->run);
	w->run = NULL;
	job *j = job_new(w, JOB_SETUP);
	char *json = strdup(s->config_json);
	if (!j || !json) {
		job_free(j);
		free(json);
		return proto_error(w, "out of memory for run %llu", (unsigned long long)s->run_id);
	}
	j->setup = a;
	j->setup.config_json = json;
	worker_log("run %llu: setting up", (unsigned long long)s->run_id);
	queue_push(w, j);
	kick(w);
	return H_DONE;
}

/* The run a message names must be the one set up here. */
static run_state *run_of(worker *w, uint64_t run_id, const char *what)
{
	if (w->run && w->run->run_id == run_id)
		return w->run;
	if (w->run)
		proto_error(w, "%s for run %llu, but this worker serves run %llu", what,
			    (unsigned long long)run_id, (unsigned long long)w->run->run_id);
	else
		proto_error(w, "%s for run %llu, but no run is set up here", what,
			    (unsigned long long)run_id);
	return NULL;
}

static int on_step_params(worker *w, const Byol__StepParams *sp)
{
	if (setting_up(w) || w->nodes_pending)
		return H_WAIT;
	run_state *rs = run_of(w, sp->run_id, "step_params");
	if (!rs)
		return -EPROTO;
	char err[BYOL_ERR_LEN];
	void *own = w->c ? conn_adopt(w->c, sp->online.data) : NULL;
	if (run_apply_params(rs, sp->step, own ? own : sp->online.data, sp->online.len,
			     sp->target.data, sp->target.len, own != NULL, err) < 0)
		return proto_error(w, "%s", err);
	return H_DONE;
}

static int on_shard_assign(worker *w, const Byol__ShardAssign *sa)
{
	if (setting_up(w))
		return H_WAIT;
	run_state *rs = run_of(w, sa->run_id, "shard_assign");
	if (!rs)
		return -EPROTO;
	if (!sa->n_node)
		return H_DONE;
	int n = sa->n_node > (size_t)rs->plan.shards ? rs->plan.shards + 1 : (int)sa->n_node;
	char err[BYOL_ERR_LEN];
	job *j = job_new(w, JOB_NODES);
	uint32_t *lo = malloc((size_t)n * sizeof(uint32_t));
	uint32_t *hi = malloc((size_t)n * sizeof(uint32_t));
	int rc = -ENOMEM;
	if (!j || !lo || !hi || !(j->lo = malloc((size_t)n * sizeof(int))) ||
	    !(j->hi = malloc((size_t)n * sizeof(int))) ||
	    !(j->off = malloc((size_t)n * sizeof(int)))) {
		byol_err(err, rc, "out of memory for step %llu", (unsigned long long)sa->step);
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		lo[i] = sa->node[i]->lo;
		hi[i] = sa->node[i]->hi;
		j->lo[i] = (int)lo[i];
		j->hi[i] = (int)hi[i];
	}
	if ((rc = run_check_nodes(rs, sa->step, lo, hi, n, err)) < 0)
		goto fail;
	free(lo);
	free(hi);
	j->n_nodes = n;
	j->rs = rs;
	j->step = (long)sa->step;
	queue_push(w, j);
	kick(w);
	return H_DONE;
fail:
	job_free(j);
	free(lo);
	free(hi);
	return proto_error(w, "%s", err);
}

static int on_eval_job(worker *w, const Byol__EvalJob *ej)
{
	if (setting_up(w))
		return H_WAIT;
	const char *kind = ej->kind ? ej->kind : "";
	run_state *rs = w->run;
	char msg[BYOL_ERR_LEN];
	if (!rs || rs->run_id != ej->run_id) {
		snprintf(msg, sizeof(msg), "this worker is not set up for run %llu",
			 (unsigned long long)ej->run_id);
		worker_log("eval job %llu: %s", (unsigned long long)ej->job_id, msg);
		send_eval_result(w, ej->job_id, ej->run_id, ej->step, kind, 0, 0, msg);
		return H_DONE;
	}
	if (ej->online.len != rs->P * sizeof(float))
		return proto_error(w, "eval_job %llu: online of %zu bytes, expected %zu",
				   (unsigned long long)ej->job_id, ej->online.len,
				   rs->P * sizeof(float));
	if (ej->bn_running.len != rs->NB * sizeof(float))
		return proto_error(w, "eval_job %llu: bn_running of %zu bytes, expected %zu",
				   (unsigned long long)ej->job_id, ej->bn_running.len,
				   rs->NB * sizeof(float));
	if (strcmp(kind, "knn") != 0 && strcmp(kind, "probe") != 0) {
		snprintf(msg, sizeof(msg), "unknown evaluation kind '%.32s' (knn or probe)", kind);
		worker_log("eval job %llu: %s", (unsigned long long)ej->job_id, msg);
		send_eval_result(w, ej->job_id, ej->run_id, ej->step, kind, 0, 0, msg);
		return H_DONE;
	}
	job *j = job_new(w, JOB_EVAL);
	if (!j || !(j->online = malloc(rs->P * sizeof(float))) ||
	    !(j->bn = calloc(rs->NB + 1, sizeof(float)))) {
		job_free(j);
		send_eval_result(w, ej->job_id, ej->run_id, ej->step, kind, 0, 0,
				 "out of memory on the worker");
		return H_DONE;
	}
	memcpy(j->online, ej->online.data, ej->online.len);
	if (ej->bn_running.len)
		memcpy(j->bn, ej->bn_running.data, ej->bn_running.len);
	snprintf(j->eval_kind, sizeof(j->eval_kind), "%s", kind);
	j->job_id = ej->job_id;
	j->rs = rs;
	j->step = (long)ej->step;
	queue_push(w, j);
	kick(w);
	return H_DONE;
}

/* H_DONE, H_WAIT (nothing changed; try again after the current job), or < 0 (the
 * connection is closing). */
static int handle(worker *w, const Byol__Envelope *e)
{
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_RUN_SETUP: return on_run_setup(w, e->run_setup);
	case BYOL__ENVELOPE__MSG_STEP_PARAMS: return on_step_params(w, e->step_params);
	case BYOL__ENVELOPE__MSG_SHARD_ASSIGN: return on_shard_assign(w, e->shard_assign);
	case BYOL__ENVELOPE__MSG_EVAL_JOB: return on_eval_job(w, e->eval_job);
	default:
		return proto_error(w, "unexpected %s", frame_msg_name((int)e->msg_case));
	}
}

static int inbox_push(worker *w, const Byol__Envelope *e)
{
	size_t len = protobuf_c_message_get_packed_size(&e->base);
	inbox_msg *m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = protobuf_c_message_pack(&e->base, m->data);
	if (w->in_tail)
		w->in_tail->next = m;
	else
		w->in_head = m;
	w->in_tail = m;
	return 0;
}

static void inbox_drain(worker *w)
{
	while (w->in_head && w->c && conn_is_open(w->c)) {
		inbox_msg *m = w->in_head;
		Byol__Envelope *e = byol__envelope__unpack(NULL, m->len, m->data);
		if (!e) {
			proto_error(w, "out of memory unpacking a kept message");
			return;
		}
		int r = handle(w, e);
		byol__envelope__free_unpacked(e, NULL);
		if (r == H_WAIT)
			return;
		w->in_head = m->next;
		if (!w->in_head)
			w->in_tail = NULL;
		free(m);
	}
}

static void on_message(conn *c, Byol__Envelope *e)
{
	worker *w = conn_owner(c);
	w->last_rx_ms = now_ms();
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_HEARTBEAT:
		w->peer_beats = 1;
		return;
	case BYOL__ENVELOPE__MSG_ERROR:
		worker_log("the coordinator says: %s (%d)", e->error->message, e->error->code);
		return;
	case BYOL__ENVELOPE__MSG_RUN_SETUP:
	case BYOL__ENVELOPE__MSG_STEP_PARAMS:
	case BYOL__ENVELOPE__MSG_SHARD_ASSIGN:
	case BYOL__ENVELOPE__MSG_EVAL_JOB:
		break;
	default:
		conn_close(c, -EPROTO, "unexpected %s", frame_msg_name((int)e->msg_case));
		return;
	}
	if (!w->in_head) {
		int r = handle(w, e);
		if (r != H_WAIT)
			return;
	}
	if (inbox_push(w, e) < 0)
		proto_error(w, "out of memory keeping a %s", frame_msg_name((int)e->msg_case));
}

/* ---- connecting ------------------------------------------------------------- */

static void connect_now(worker *w);

static double rand01(worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return (double)(w->rng >> 11) / 9007199254740992.0;
}

static void retry_cb(uv_timer_t *t)
{
	connect_now(t->data);
}

static void schedule_retry(worker *w)
{
	if (w->stopping)
		return;
	double d = w->backoff * (0.5 + rand01(w)); /* jitter: 0.5 to 1.5 times */
	if (d > BACKOFF_MAX)
		d = BACKOFF_MAX;
	w->backoff = w->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : w->backoff * 2;
	worker_log("reconnecting to %s in %.1f s", w->addr, d);
	uv_timer_start(&w->retry_timer, retry_cb, (uint64_t)(d * 1000), 0);
}

static void on_close(conn *c, int code, const char *reason)
{
	worker *w = conn_owner(c);
	worker_log("disconnected from %s: %s", w->addr, code ? reason : "closed");
	if (now_ms() - w->opened_ms >= STABLE_MS)
		w->backoff = BACKOFF_MIN;
	w->c = NULL;
	w->open = 0;
	w->gen++;
	w->peer_beats = 0;
	queue_drop(w, "the connection is gone");
	inbox_clear(w);
	if (w->run)
		w->run->online_step = w->run->target_step = -1;
	if (w->stopping)
		maybe_finish(w);
	else
		schedule_retry(w);
}

static void on_connect(conn *c, int status, const char *reason)
{
	worker *w = conn_owner(c);
	if (status < 0) {
		w->c = NULL; /* conn has logged why */
		if (w->stopping)
			maybe_finish(w);
		else
			schedule_retry(w);
		return;
	}
	w->c = c;
	w->open = 1;
	w->gen++;
	w->opened_ms = w->last_rx_ms = now_ms();
	w->peer_beats = 0;
	worker_log("connected to %s (%s) as %s, %d threads", w->addr, conn_name(c), w->name,
		   w->opt.threads);
	Byol__WorkerRegister reg = BYOL__WORKER_REGISTER__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	reg.name = w->name;
	reg.threads = (uint32_t)w->opt.threads;
	reg.version = WORKER_VERSION;
	reg.host = w->host;
	e.msg_case = BYOL__ENVELOPE__MSG_WORKER_REGISTER;
	e.worker_register = &reg;
	send_env(w, &e);
}

/* Starts a connection; returns 0 or the error of a call that failed at once. */
static int try_connect(worker *w, char *err)
{
	conn_config cfg = {0};
	cfg.token = w->token;
	cfg.role = AUTH_ROLE_WORKER;
	cfg.name = w->name;
	cfg.version = WORKER_VERSION;
	cfg.data = w;
	cfg.on_message = on_message;
	cfg.on_close = on_close;
	cfg.log = conn_log;
	conn *c = NULL;
	int rc = w->opt.socket_path
			 ? conn_connect_pipe(&w->loop, w->opt.socket_path, &cfg, on_connect, &c, err)
			 : conn_connect_tcp(&w->loop, w->opt.coordinator, &cfg, on_connect, &c, err);
	if (rc == 0)
		w->c = c;
	return rc;
}

static void connect_now(worker *w)
{
	char err[BYOL_ERR_LEN];
	if (w->stopping || w->c)
		return;
	if (try_connect(w, err) < 0) {
		worker_log("cannot connect to %s: %s", w->addr, err);
		schedule_retry(w);
	}
}

/* ---- heartbeats, signals, the end ------------------------------------------- */

static void hb_cb(uv_timer_t *t)
{
	worker *w = t->data;
	if (!w->c || !w->open)
		return;
	if (w->peer_beats && now_ms() - w->last_rx_ms > WORKER_SILENCE_MS) {
		conn_close(w->c, -ETIMEDOUT, "nothing from the coordinator for %d s",
			   WORKER_SILENCE_MS / 1000);
		return;
	}
	Byol__Heartbeat hb = BYOL__HEARTBEAT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	hb.seq = ++w->hb_seq;
	hb.unix_ms = wall_ms();
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &hb;
	send_env(w, &e);
}

/* Once stopping, nothing connected and no job running: close the last handles so
 * that uv_run returns. */
static void maybe_finish(worker *w)
{
	if (!w->stopping || w->finishing || w->c || w->busy)
		return;
	w->finishing = 1;
	uv_close((uv_handle_t *)&w->sig_term, NULL);
	uv_close((uv_handle_t *)&w->sig_int, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	worker *w = s->data;
	if (w->stopping) {
		worker_log("%s again: closing at once", strsignal(signum));
		if (w->c)
			conn_close(w->c, -ECANCELED, "the worker is shutting down");
		return;
	}
	w->stopping = 1;
	worker_log("%s: stopping%s", strsignal(signum), w->busy ? " after the current job" : "");
	uv_close((uv_handle_t *)&w->hb_timer, NULL);
	uv_close((uv_handle_t *)&w->retry_timer, NULL);
	queue_drop(w, "stopping");
	inbox_clear(w);
	if (w->c)
		conn_close(w->c, 0, NULL);
	maybe_finish(w);
}

int worker_net_run(const worker_net_options *opt)
{
	worker *w = calloc(1, sizeof(*w));
	char err[BYOL_ERR_LEN];
	int status = 1;
	if (!w) {
		worker_log("out of memory");
		return 1;
	}
	w->opt = *opt;
	if (w->opt.threads < 1)
		w->opt.threads = 1;
	if (!w->opt.heartbeat_ms)
		w->opt.heartbeat_ms = WORKER_HEARTBEAT_MS_DEFAULT;
	w->addr = opt->socket_path ? opt->socket_path : opt->coordinator;
	w->backoff = BACKOFF_MIN;
	w->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)wall_ms() ^ 0x9e3779b97f4a7c15ull;
	if (gethostname(w->host, sizeof(w->host) - 1) < 0)
		snprintf(w->host, sizeof(w->host), "localhost");
	if (opt->name)
		snprintf(w->name, sizeof(w->name), "%s", opt->name);
	else
		snprintf(w->name, sizeof(w->name), "%.40s-%d", w->host, (int)getpid());
	if (auth_init(err) < 0) {
		worker_log("%s", err);
		goto out;
	}
	if (opt->token_file && auth_token_load(opt->token_file, &w->token, NULL, err) < 0) {
		worker_log("%s", err);
		goto out;
	}
	if (uv_loop_init(&w->loop) < 0) {
		worker_log("cannot create the event loop");
		goto out;
	}
	uv_timer_init(&w->loop, &w->hb_timer);
	uv_timer_init(&w->loop, &w->retry_timer);
	uv_signal_init(&w->loop, &w->sig_term);
	uv_signal_init(&w->loop, &w->sig_int);
	w->hb_timer.data = w->retry_timer.data = w->sig_term.data = w->sig_int.data = w;
	uv_signal_start(&w->sig_term, on_signal, SIGTERM);
	uv_signal_start(&w->sig_int, on_signal, SIGINT);
	uv_timer_start(&w->hb_timer, hb_cb, w->opt.heartbeat_ms, w->opt.heartbeat_ms);
	if (try_connect(w, err) < 0) {
		/* refused at once: a malformed address or option, not a missing peer */
		worker_log("%s", err);
		w->stopping = 1;
		uv_close((uv_handle_t *)&w->hb_timer, NULL);
		uv_close((uv_handle_t *)&w->retry_timer, NULL);
		maybe_finish(w);
		uv_run(&w->loop, UV_RUN_DEFAULT);
		uv_loop_close(&w->loop);
		goto out;
	}
	worker_log("%s %s, connecting to %s", WORKER_VERSION, w->name, w->addr);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&w->loop) < 0)
		worker_log("event loop closed with handles still open");
	worker_log("stopped");
	status = 0;
out:
	run_free(w->run);
	auth_token_free(w->token);
	free(w);
	return status;
}
