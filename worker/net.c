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
 * The run itself (its replicas, computing nodes and evaluations) is worker/run.c;
 * the connection (connecting, back-off, heartbeats, signals) is worker/link.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/frame.h"
#include "worker.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensors travel as little-endian float32: byol-worker needs a little-endian host"
#endif

#define STEP_LOG_MS 5000        /* at most one progress line per this */

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
void wn_queue_drop(worker *w, const char *why)
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

void wn_inbox_clear(worker *w)
{
	while (w->in_head) {
		inbox_msg *m = w->in_head;
		w->in_head = m->next;
		free(m);
	}
	w->in_tail = NULL;
}

/* ---- sending ---------------------------------------------------------------- */

void wn_send_env(worker *w, Byol__Envelope *e)
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
	wn_send_env(w, &e);
}

static void send_run_ready(worker *w, uint64_t run_id)
{
	Byol__RunReady rr = BYOL__RUN_READY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	if (w->c && w->run)
		conn_shm_prepare(w->c, w->run->P * sizeof(float));   /* for the gradients */
	rr.run_id = run_id;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_READY;
	e.run_ready = &rr;
	wn_send_env(w, &e);
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
	wn_send_env(w, &e);
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
	return (double)wn_now_ms() / 1000.0;
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
	uint64_t t = wn_now_ms();
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
		wn_maybe_finish(w);
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
	wn_queue_drop(w, "the coordinator set up a run");
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
	float *own = conn_take(w->c, sp->online.data, sp->online.len);
	if (!own && sp->online.len)
		return proto_error(w, "out of memory for step_params of %zu bytes",
				   sp->online.len);
	if (conn_shm_received(w->c) > 0 && !w->shm_said) {
		worker_log("parameters arrive through shared memory from %s", w->addr);
		w->shm_said = 1;
	}
	if (run_apply_params(rs, sp->step, own, sp->online.len, sp->target.data,
			     sp->target.len, err) < 0)
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

void wn_on_message(conn *c, Byol__Envelope *e)
{
	worker *w = conn_owner(c);
	w->last_rx_ms = wn_now_ms();
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_HEARTBEAT: {
		/* answered at once, so the coordinator hears from this worker at its
		 * own period, whatever the worker's --heartbeat-ms */
		Byol__Heartbeat hb = BYOL__HEARTBEAT__INIT;
		Byol__Envelope r = BYOL__ENVELOPE__INIT;
		w->peer_beats = 1;
		hb.seq = e->heartbeat->seq;
		hb.unix_ms = wn_wall_ms();
		r.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
		r.heartbeat = &hb;
		wn_send_env(w, &r);
		return;
	}
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
