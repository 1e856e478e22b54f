/*
 * workers.c — the registry of connected workers and what they send.
 *
 * A worker conn gets a `worker` at on_open (W_NEW), registers (W_IDLE), is set up
 * for the active run (W_SETUP) and answers RunReady (W_READY). Anything else a
 * worker sends out of turn closes its connection with the reason; results of a
 * run or step that is no longer current are ignored with a log line. Any
 * message counts as a sign of life; a worker silent for the timeout (three
 * heartbeats unless configured; longer while it evaluates) is dropped, and its
 * nodes go to the others (coord_worker_lost).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/frame.h"
#include "byold.h"

const char *worker_state_name(worker_state s)
{
	switch (s) {
	case W_NEW: return "registering";
	case W_IDLE: return "idle";
	case W_SETUP: return "setup";
	case W_READY: return "ready";
	}
	return "?";
}

/* Printable ASCII only, at most n - 1 bytes. */
static void clean_copy(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

void worker_open(byold *d, conn *c)
{
	worker *w = calloc(1, sizeof(*w));
	if (!w) {
		conn_close(c, -ENOMEM, "out of memory for a worker");
		return;
	}
	w->d = d;
	w->c = c;
	w->state = W_NEW;
	w->params_step = -1;
	w->last_heard = mono_s();
	clean_copy(w->name, sizeof(w->name), conn_name(c));
	worker **tail = &d->workers;
	while (*tail) {
		w->prev = *tail;
		tail = &(*tail)->next;
	}
	*tail = w;
	conn_set_data(c, w);
}

void worker_ignored(worker *w, const char *fmt, ...)
{
	char what[CONN_NAME_MAX + 40];
	snprintf(what, sizeof(what), "worker %s, ignored messages", w->name);
	if (!dlog_capped(&w->ignored_cap, WORKER_IGNORED_BURST, WORKER_IGNORED_WINDOW_S, what))
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dlog(DLOG_INFO, "worker %s: %s%s", w->name, msg,
	     w->ignored_cap.n == WORKER_IGNORED_BURST
		     ? " (the next ones of this window go unlogged)" : "");
}

void worker_flush(byold *d, worker *w)
{
	if (w->unflushed <= 0 || !w->run_id)
		return;
	char err[BYOL_ERR_LEN];
	/* the worker's own row is missing when it joined while the store could
	 * not be written (a full disk): add it, then count again */
	if (store_worker_served(d->db, w->name, w->run_id, w->unflushed, err) < 0 &&
	    (store_worker_seen(d->db, w->name, w->host, w->threads, err) < 0 ||
	     store_worker_served(d->db, w->name, w->run_id, w->unflushed, err) < 0)) {
		dlog(DLOG_WARN, "store: worker %s: %s (the count is kept for the next try)",
		     w->name, err);
		return;
	}
	w->unflushed = 0;
}

void worker_closed(byold *d, worker *w, int code, const char *reason)
{
	if (w->state != W_NEW && dlog_capped(&d->churn_cap, WORKER_CHURN_BURST,
					      WORKER_CHURN_WINDOW_S, "workers joining and leaving"))
		devent(d, 0, code ? DLOG_WARN : DLOG_INFO, "worker %s (%s) left: %s", w->name,
		       w->host, code ? reason : "closed");
	worker_flush(d, w);
	coord_worker_lost(d, w);
	if (w->prev)
		w->prev->next = w->next;
	else
		d->workers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

int worker_can_step(const byold *d, const worker *w)
{
	const run *r = d->run;
	return r && r->ready && w->state == W_READY && w->run_id == r->id && !w->refused &&
	       w->evals == 0 && !w->congested && !w->stalled && conn_is_open(w->c);
}

void worker_send_setup(byold *d, worker *w)
{
	run *r = d->run;
	char err[BYOL_ERR_LEN];
	worker_flush(d, w);
	Byol__RunSetup rs = BYOL__RUN_SETUP__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	rs.run_id = (uint64_t)r->id;
	rs.config_json = r->config_json;
	rs.param_count = r->m.L.total;
	rs.target_count = r->st.target ? r->m.n_target : 0;
	rs.bn_count = r->m.bn_layout.total;
	rs.n_train = (uint64_t)r->plan.n_train;
	rs.total_steps = (uint64_t)r->plan.total_steps;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_SETUP;
	e.run_setup = &rs;
	w->state = W_SETUP;
	w->run_id = r->id;
	w->refused = 0;
	w->stalled = 0;                 /* it must answer RunReady first */
	w->params_step = -1;
	w->shards_out = 0;
	w->evals = 0;
	int rc = conn_send(w->c, &e, err);
	if (rc < 0 && rc != -EPIPE)
		conn_close(w->c, rc, "cannot send RunSetup: %s", err);
	else if (rc == 0)
		conn_shm_prepare(w->c, r->m.L.total * sizeof(float));   /* for the parameters */
}

static void lease_write_done(void *data, int status)
{
	params_lease *l = data;
	(void)status;
	if (--l->writes == 0 && l->orphaned) {
		free(l->online);
		free(l);
	}
}

int worker_params_reclaim(run *r)
{
	params_lease *l = r->lease;
	if (!l || l->writes == 0)
		return 0;
	size_t n = r->m.L.total * sizeof(float);
	float *copy = malloc(n);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, r->st.online, n);
	dlog(DLOG_INFO, "run %lld step %ld: %d write%s of the parameters still queued (a "
			"congested worker): the apply goes on with a copy", (long long)r->id, r->k,
	     l->writes, l->writes == 1 ? "" : "s");
	l->online = r->st.online;
	l->orphaned = 1;
	r->lease = NULL;
	r->st.online = copy;
	return 0;
}

void worker_params_release(run *r)
{
	params_lease *l = r->lease;
	r->lease = NULL;
	if (l && l->writes > 0) {
		l->online = r->st.online;
		l->orphaned = 1;
		r->st.online = NULL;
	} else {
		free(l);
	}
}

/* StepParams of step r->k without a target, the parameters lent to the write,
 * or already in a room of the worker's shared-memory ring (coord_room_of). */
static int send_lent_params(run *r, worker *w, char *err)
{
	static unsigned online_field;
	if (!online_field)
		online_field = protobuf_c_message_descriptor_get_field_by_name(
			&byol__step_params__descriptor, "online")->id;
	if (!r->lease && !(r->lease = calloc(1, sizeof(*r->lease))))
		return byol_err(err, -ENOMEM, "out of memory");
	Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sp.run_id = (uint64_t)r->id;
	sp.step = (uint64_t)r->k;
	sp.online.data = (uint8_t *)r->st.online;
	sp.online.len = r->m.L.total * sizeof(float);
	e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
	e.step_params = &sp;
	void *room = coord_room_of(r, w);
	if (room) {
		sp.online.data = room;  /* sent as it lies: nothing borrowed */
		return conn_send_borrowed(w->c, &e, &sp.online, online_field, NULL, NULL, err);
	}
	int rc = conn_send_borrowed(w->c, &e, &sp.online, online_field, lease_write_done,
				    r->lease, err);
	if (rc == 0)
		r->lease->writes++;
	return rc;
}

int worker_send_params(byold *d, worker *w)
{
	run *r = d->run;
	char err[BYOL_ERR_LEN];
	int rc;
	if (r->st.target && (w->params_step < 0 || w->params_step != r->k - 1)) {
		/* its replica is behind: the target too, for this worker only */
		Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		sp.run_id = (uint64_t)r->id;
		sp.step = (uint64_t)r->k;
		sp.online.data = (uint8_t *)r->st.online;
		sp.online.len = r->m.L.total * sizeof(float);
		sp.target.data = (uint8_t *)r->st.target;
		sp.target.len = r->m.n_target * sizeof(float);
		e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
		e.step_params = &sp;
		rc = conn_send(w->c, &e, err);
	} else {
		rc = send_lent_params(r, w, err);
	}
	if (rc < 0) {
		if (rc != -EPIPE)
			conn_close(w->c, rc, "cannot send StepParams: %s", err);
		return rc;
	}
	w->params_step = r->k;
	return 0;
}

static void on_register(byold *d, worker *w, const Byol__WorkerRegister *m)
{
	char err[BYOL_ERR_LEN];
	if (w->state != W_NEW) {
		conn_close(w->c, -EPROTO, "WorkerRegister sent twice");
		return;
	}
	if (m->name && m->name[0])
		clean_copy(w->name, sizeof(w->name), m->name);
	clean_copy(w->host, sizeof(w->host), m->host && m->host[0] ? m->host : "?");
	if (m->threads > 4096) {
		conn_close(w->c, -EPROTO, "WorkerRegister: %u threads is out of range", m->threads);
		return;
	}
	w->threads = m->threads ? (int)m->threads : 1;
	w->state = W_IDLE;
	if (store_worker_seen(d->db, w->name, w->host, w->threads, err) < 0)
		dlog(DLOG_WARN, "store: %s", err);
	if (dlog_capped(&d->churn_cap, WORKER_CHURN_BURST, WORKER_CHURN_WINDOW_S,
			"workers joining and leaving"))
		devent(d, 0, DLOG_INFO, "worker %s joined: host %s, %d threads, %s (conn %llu)",
		       w->name, w->host, w->threads, conn_peer(w->c),
		       (unsigned long long)conn_id(w->c));
	run *r = d->run;
	if (r && r->ready && r->phase != RUN_DONE && !d->stopping)
		worker_send_setup(d, w);
}

static void on_ready(byold *d, worker *w, const Byol__RunReady *m)
{
	run *r = d->run;
	if (w->state != W_SETUP || (int64_t)m->run_id != w->run_id || !r ||
	    r->id != w->run_id) {
		worker_ignored(w, "RunReady for run %llu, which it is not being set up for: ignored",
			       (unsigned long long)m->run_id);
		return;
	}
	w->state = W_READY;
	dlog(DLOG_INFO, "worker %s ready for run %lld", w->name, (long long)r->id);
	coord_worker_free(d, w);
}

static void on_error(byold *d, worker *w, const Byol__Error *m)
{
	char msg[BYOL_ERR_LEN];
	clean_copy(msg, sizeof(msg), m->message);
	run *r = d->run;
	if (r && w->run_id == r->id && (w->state == W_SETUP || w->state == W_READY)) {
		devent(d, r->id, DLOG_WARN, "worker %s refused run %lld: %s", w->name,
		       (long long)r->id, msg);
		w->refused = 1;
		w->state = W_IDLE;
		coord_worker_lost(d, w);
	} else {
		dlog(DLOG_WARN, "worker %s: error %d: %s", w->name, m->code, msg);
	}
}

void worker_message(byold *d, worker *w, Byol__Envelope *e)
{
	w->last_heard = mono_s();
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_HEARTBEAT:
		return;
	case BYOL__ENVELOPE__MSG_WORKER_REGISTER:
		on_register(d, w, e->worker_register);
		return;
	case BYOL__ENVELOPE__MSG_ERROR:
		on_error(d, w, e->error);
		return;
	case BYOL__ENVELOPE__MSG_RUN_READY:
		if (w->state == W_NEW)
			break;
		on_ready(d, w, e->run_ready);
		return;
	case BYOL__ENVELOPE__MSG_NODE_RESULT:
		if (w->state == W_NEW)
			break;
		control_node_result(d, w, e->node_result);
		return;
	case BYOL__ENVELOPE__MSG_EVAL_RESULT:
		if (w->state == W_NEW)
			break;
		evals_result(d, w, e->eval_result);
		return;
	default:
		break;
	}
	conn_close(w->c, -EPROTO, "unexpected %s from a worker in state %s",
		   frame_msg_name(e->msg_case), worker_state_name(w->state));
}

void workers_cron(byold *d)
{
	static uint64_t seq;
	double now = mono_s();
	double limit = dconf_worker_timeout(&d->cfg) / 1000.0;
	double eval_limit = d->cfg.eval_timeout_ms / 1000.0;
	if (eval_limit < limit)
		eval_limit = limit;
	Byol__Heartbeat hb = BYOL__HEARTBEAT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	hb.seq = ++seq;
	hb.unix_ms = wall_ms();
	e.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
	e.heartbeat = &hb;
	for (worker *w = d->workers; w; w = w->next) {
		if (!conn_is_open(w->c))
			continue;
		double quiet = now - w->last_heard, lim = w->evals ? eval_limit : limit;
		if (quiet > lim) {
			conn_close(w->c, -ETIMEDOUT, "no message for %.1f s (the limit is %.1f s)",
				   quiet, lim);
			continue;
		}
		char err[BYOL_ERR_LEN];
		int rc = conn_send(w->c, &e, err);
		if (rc < 0 && rc != -EPIPE)
			dlog(DLOG_WARN, "worker %s: heartbeat: %s", w->name, err);
		worker_flush(d, w);
	}
}
