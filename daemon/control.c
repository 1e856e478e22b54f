/*
 * control.c — byolctl show, cancel, resume and workers, and what they need of
 * the rest of the daemon:
 *
 *   ShowRequest    -> ShowReply (the run with its experiment, config, final
 *                     metrics and times; its checkpoints, the workers that
 *                     served it, its last events and its evaluations)
 *   CancelRequest  -> RunStatus. A queued or interrupted run is cancelled at
 *                     once. The active run is marked cancelling and stops at
 *                     the next step boundary by SIGTERM's path (run.c
 *                     stop_run: the step in progress is abandoned, the state
 *                     at the boundary checkpointed, the run then marked
 *                     cancelled instead of interrupted, the next run started):
 *                     the answer then says "running" with a message, and the
 *                     end follows on a WatchRequest.
 *   ResumeRequest  -> RunStatus. An interrupted, cancelled or failed run is
 *                     queued again; at its start it loads its latest
 *                     checkpoint that loads (ckpt_candidates), like a run
 *                     continued after a restart.
 *   WorkersRequest -> StatusReply with the registry's workers, each with the
 *                     img/s of its recent node results (control_node_result
 *                     times them) and its last sign of life.
 *
 * Refusals are Error answers: -ENOENT "no run N", -EINVAL naming the status
 * that does not allow the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byold.h"

#define SHOW_EVENTS 20                  /* the run's last events in ShowReply */
#define SHOW_EVALS_MAX 100000
#define RATE_SMOOTHING 0.3              /* weight of the newest node result */

/* ---- hooks of the step loop ---- */

int run_stopping(const byold *d, const run *r)
{
	return d->stopping || (r && r->cancelling);
}

store_status run_stop_status(const run *r)
{
	return r->cancelling ? STORE_CANCELLED : STORE_INTERRUPTED;
}

void control_node_result(byold *d, worker *w, const Byol__NodeResult *nr)
{
	double since = d->run ? d->run->t_sent : 0;
	uint64_t before = w->shards_done;
	coord_node_result(d, w, nr);
	if (w->shards_done == before)
		return;                 /* not taken */
	double now = mono_s();
	if (w->rate_t > since)
		since = w->rate_t;      /* its second node of the step */
	w->rate_t = now;
	if (since <= 0 || now <= since)
		return;
	double rate = nr->n / (now - since);
	w->img_per_s = w->img_per_s > 0
			       ? (1 - RATE_SMOOTHING) * w->img_per_s + RATE_SMOOTHING * rate
			       : rate;
}

void worker_status_fill(const worker *w, Byol__WorkerStatus *ws)
{
	Byol__WorkerStatus init = BYOL__WORKER_STATUS__INIT;
	*ws = init;
	ws->name = (char *)w->name;
	ws->peer = (char *)conn_peer(w->c);
	ws->threads = (uint32_t)w->threads;
	ws->run_id = w->state == W_READY && !w->refused ? (uint64_t)w->run_id : 0;
	ws->shards_done = w->shards_done;
	ws->state = (char *)(w->evals     ? "evaluating"
			     : w->stalled  ? "stalled"
			     : w->congested ? "congested"
					    : worker_state_name(w->state));
	ws->host = (char *)w->host;
	ws->img_per_s = w->img_per_s;
	ws->last_heard_unix_ms = wall_ms() - (int64_t)((mono_s() - w->last_heard) * 1000.0);
}

/* ---- a run in detail ---- */

static int last_row(const store_metric *m, void *ctx)
{
	Byol__RunStatus *rs = ctx;
	rs->epoch = (uint64_t)m->epoch + 1;
	rs->lr = m->lr;
	return 0;
}

int run_detail_load(byold *d, uint64_t id, run_detail *x, char *err)
{
	memset(x, 0, sizeof(*x));
	if (id == 0 || id > INT64_MAX)
		return byol_err(err, -ENOENT, "no run %llu", (unsigned long long)id);
	int rc = store_run_get(d->db, (int64_t)id, &x->v.row, err);
	if (rc == -ENOENT)
		return byol_err(err, rc, "no run %llu", (unsigned long long)id);
	if (rc < 0)
		return rc;
	run_view_fill(d, &x->v);
	store_run *row = &x->v.row;
	Byol__RunStatus *rs = &x->v.rs;
	store_experiment e;
	memset(&e, 0, sizeof(e));
	if (store_experiment_get(d->db, row->experiment_id, &e, err) == 0)
		snprintf(x->experiment, sizeof(x->experiment), "%s", e.name);
	else
		dlog(DLOG_WARN, "store: experiment %lld: %s", (long long)row->experiment_id, err);
	store_experiment_release(&e);
	rs->experiment = x->experiment;
	rs->config_json = row->config_json ? row->config_json : (char *)"{}";
	rs->final_json = row->final_json ? row->final_json : (char *)"{}";
	rs->created_unix_ms = row->created_ms;
	rs->started_unix_ms = row->started_ms;
	rs->finished_unix_ms = row->finished_ms;
	rs->seed = row->seed;
	if (row->step > 0 &&
	    store_metrics_read(d->db, row->id, row->step - 1, row->step - 1, last_row, rs, err) < 0)
		dlog(DLOG_WARN, "store: %s", err);
	rs->eta_s = row->status == STORE_COMPLETED ? 0 : -1;
	run *r = d->run;
	if (r && r->id == row->id && r->ready) {
		rs->epoch = r->k > 0 ? (uint64_t)((r->k - 1) / r->plan.steps_per_epoch + 1) : 0;
		if (r->have_last)
			rs->lr = r->last.lr;
		rs->eta_s = watch_eta_s(r);
	}
	if (r && r->id == row->id && r->cancelling && row->status == STORE_RUNNING)
		rs->message = (char *)"cancelling at the next step boundary";
	return 0;
}

void run_detail_release(run_detail *x)
{
	store_run_release(&x->v.row);
}

static void send_status(conn *c, run_detail *x)
{
	char err[BYOL_ERR_LEN];
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_STATUS;
	e.run_status = &x->v.rs;
	int rc = conn_send(c, &e, err);
	if (rc < 0 && rc != -EPIPE)
		conn_close(c, rc, "cannot answer: %s", err);
}

/* Loads run id into *x (calloc'd) or answers the Error; NULL then. */
static run_detail *load_or_refuse(byold *d, conn *c, uint64_t id)
{
	char err[BYOL_ERR_LEN];
	run_detail *x = calloc(1, sizeof(*x));
	if (!x) {
		send_error(c, -ENOMEM, "out of memory");
		return NULL;
	}
	int rc = run_detail_load(d, id, x, err);
	if (rc < 0) {
		send_error(c, rc, "%s", err);
		run_detail_release(x);
		free(x);
		return NULL;
	}
	return x;
}

static void detail_free(run_detail *x)
{
	if (x)
		run_detail_release(x);
	free(x);
}

/* ---- ShowRequest ---- */

typedef struct {
	Byol__EvalInfo *info;
	store_eval *rows;
	int n, cap;
} eval_list;

static int eval_row(const store_eval *e, void *ctx)
{
	eval_list *l = ctx;
	if (l->n == SHOW_EVALS_MAX)
		return 1;
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 64;
		store_eval *rows = realloc(l->rows, (size_t)cap * sizeof(*rows));
		if (!rows)
			return -ENOMEM;
		l->rows = rows;
		l->cap = cap;
	}
	l->rows[l->n++] = *e;
	return 0;
}

void control_show(byold *d, conn *c, const Byol__ShowRequest *q)
{
	char err[BYOL_ERR_LEN];
	store_checkpoint *ck = NULL;
	store_run_worker *rw = NULL;
	store_event *ev = NULL;
	eval_list el = { 0 };
	int nck = 0, nrw = 0, nev = 0;
	Byol__CheckpointInfo *ci = NULL, **cp = NULL;
	Byol__RunWorkerInfo *wi = NULL, **wp = NULL;
	Byol__EventInfo *ei = NULL, **ep = NULL;
	Byol__EvalInfo **vp = NULL;
	run_detail *x = load_or_refuse(d, c, q->run_id);
	if (!x)
		return;
	int64_t id = x->v.row.id;
	store_event_filter ef = { .run_id = id, .limit = SHOW_EVENTS, .newest_first = 1 };
	int rc;
	if ((rc = store_checkpoint_list(d->db, id, &ck, &nck, err)) < 0 ||
	    (rc = store_run_workers(d->db, id, &rw, &nrw, err)) < 0 ||
	    (rc = store_event_list(d->db, &ef, &ev, &nev, err)) < 0) {
		send_error(c, rc, "%s", err);
		goto out;
	}
	rc = store_evals_read(d->db, id, eval_row, &el, err);
	if (rc < 0 && rc != 1) {
		send_error(c, rc, "%s", rc == -ENOMEM ? "out of memory" : err);
		goto out;
	}
	ci = calloc((size_t)nck + 1, sizeof(*ci));
	cp = calloc((size_t)nck + 1, sizeof(*cp));
	wi = calloc((size_t)nrw + 1, sizeof(*wi));
	wp = calloc((size_t)nrw + 1, sizeof(*wp));
	ei = calloc((size_t)nev + 1, sizeof(*ei));
	ep = calloc((size_t)nev + 1, sizeof(*ep));
	el.info = calloc((size_t)el.n + 1, sizeof(*el.info));
	vp = calloc((size_t)el.n + 1, sizeof(*vp));
	if (!ci || !cp || !wi || !wp || !ei || !ep || !el.info || !vp) {
		send_error(c, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < nck; i++) {         /* the store lists newest first */
		const store_checkpoint *k = &ck[nck - 1 - i];
		Byol__CheckpointInfo init = BYOL__CHECKPOINT_INFO__INIT;
		ci[i] = init;
		ci[i].step = (uint64_t)k->step;
		ci[i].path = (char *)k->path;
		ci[i].sha256 = (char *)k->sha256;
		ci[i].bytes = (uint64_t)(k->bytes > 0 ? k->bytes : 0);
		ci[i].created_unix_ms = k->created_ms;
		cp[i] = &ci[i];
	}
	for (int i = 0; i < nrw; i++) {
		Byol__RunWorkerInfo init = BYOL__RUN_WORKER_INFO__INIT;
		wi[i] = init;
		wi[i].name = rw[i].worker;
		wi[i].shards = (uint64_t)(rw[i].shards > 0 ? rw[i].shards : 0);
		wi[i].first_unix_ms = rw[i].first_ms;
		wi[i].last_unix_ms = rw[i].last_ms;
		wp[i] = &wi[i];
	}
	for (int i = 0; i < nev; i++) {         /* newest first from the store */
		const store_event *v = &ev[nev - 1 - i];
		Byol__EventInfo init = BYOL__EVENT_INFO__INIT;
		ei[i] = init;
		ei[i].unix_ms = v->unix_ms;
		ei[i].level = (char *)store_level_name(v->level);
		ei[i].message = (char *)v->message;
		ep[i] = &ei[i];
	}
	for (int i = 0; i < el.n; i++) {
		Byol__EvalInfo init = BYOL__EVAL_INFO__INIT;
		el.info[i] = init;
		el.info[i].step = (uint64_t)el.rows[i].step;
		el.info[i].kind = el.rows[i].kind;
		el.info[i].value = el.rows[i].value;
		vp[i] = &el.info[i];
	}
	Byol__ShowReply sr = BYOL__SHOW_REPLY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sr.run = &x->v.rs;
	sr.n_checkpoints = (size_t)nck;
	sr.checkpoints = cp;
	sr.n_workers = (size_t)nrw;
	sr.workers = wp;
	sr.n_events = (size_t)nev;
	sr.events = ep;
	sr.n_evals = (size_t)el.n;
	sr.evals = vp;
	e.msg_case = BYOL__ENVELOPE__MSG_SHOW_REPLY;
	e.show_reply = &sr;
	if ((rc = conn_send(c, &e, err)) < 0 && rc != -EPIPE)
		conn_close(c, rc, "cannot answer: %s", err);
out:
	free(ci);
	free(cp);
	free(wi);
	free(wp);
	free(ei);
	free(ep);
	free(el.info);
	free(el.rows);
	free(vp);
	free(ck);
	free(rw);
	free(ev);
	detail_free(x);
}

/* ---- CancelRequest / ResumeRequest ---- */

/* The cancel of the active run waits for the step boundary; the store learns of
 * it now (run.c: run_start cancels a run left with this message). */
static void record_pending_cancel(byold *d, const run *r, conn *c)
{
	char err[BYOL_ERR_LEN], msg[STORE_MSG_LEN];
	snprintf(msg, sizeof(msg), RUN_CANCEL_PENDING " by %s at step %ld; waiting for the step "
		 "boundary", conn_name(c), r->k);
	if (store_run_note(d->db, r->id, msg, err) < 0)
		dlog(DLOG_WARN, "run %lld: the cancel is not in the store (%s): byold stopped "
		     "before the step boundary would resume the run", (long long)r->id, err);
}

void control_cancel(byold *d, conn *c, const Byol__CancelRequest *q)
{
	char err[BYOL_ERR_LEN];
	run_detail *x = load_or_refuse(d, c, q->run_id);
	if (!x)
		return;
	int64_t id = x->v.row.id;
	store_status st = x->v.row.status;
	/* the active run, unless it has stopped already (then the store has it) */
	run *r = d->run && d->run->id == id && d->run->phase != RUN_DONE ? d->run : NULL;
	if (st == STORE_COMPLETED || st == STORE_FAILED || st == STORE_CANCELLED) {
		send_error(c, -EINVAL, "run %lld is %s; nothing to cancel", (long long)id,
			   store_status_name(st));
		goto out;
	}
	if (r) {
		if (!r->cancelling) {
			r->cancelling = 1;
			record_pending_cancel(d, r, c);
			devent(d, id, DLOG_INFO, "run %lld (%s): cancelled by %s (%s) at step %ld; "
			       "stops at the step boundary", (long long)id, r->name, conn_name(c),
			       conn_peer(c), r->k);
		}
		coord_progress(d, r);   /* stops now unless work is in flight; r may be gone */
	} else {
		char msg[STORE_MSG_LEN];
		snprintf(msg, sizeof(msg), "cancelled by %s while %s", conn_name(c),
			 store_status_name(st));
		int rc = store_run_set_status(d->db, id, STORE_CANCELLED, msg, err);
		if (rc < 0) {
			send_error(c, rc, "%s", err);
			goto out;
		}
		devent(d, id, DLOG_INFO, "run %lld (%s) %s (%s)", (long long)id, x->v.row.name, msg,
		       conn_peer(c));
		watch_run_status(d, id);
	}
	detail_free(x);
	if ((x = load_or_refuse(d, c, (uint64_t)id)))
		send_status(c, x);
out:
	detail_free(x);
}

void control_resume(byold *d, conn *c, const Byol__ResumeRequest *q)
{
	char err[BYOL_ERR_LEN];
	run_detail *x = load_or_refuse(d, c, q->run_id);
	if (!x)
		return;
	int64_t id = x->v.row.id;
	store_status st = x->v.row.status;
	if (st != STORE_INTERRUPTED && st != STORE_CANCELLED && st != STORE_FAILED) {
		send_error(c, -EINVAL, "run %lld is %s; nothing to resume (only an interrupted, "
			   "cancelled or failed run is)", (long long)id, store_status_name(st));
		goto out;
	}
	if (d->run && d->run->id == id) {
		send_error(c, -EBUSY, "run %lld is still stopping; resume it once it has stopped",
			   (long long)id);
		goto out;
	}
	char msg[STORE_MSG_LEN];
	store_checkpoint ck;
	if (store_checkpoint_latest(d->db, id, &ck, NULL) == 0)
		snprintf(msg, sizeof(msg), "resumed by %s: continues from step %lld (%.400s)",
			 conn_name(c), (long long)ck.step, ck.path);
	else
		snprintf(msg, sizeof(msg), "resumed by %s: no checkpoint, starts from step 0",
			 conn_name(c));
	int rc = store_run_set_status(d->db, id, STORE_QUEUED, msg, err);
	if (rc < 0) {
		send_error(c, rc, "%s", err);
		goto out;
	}
	devent(d, id, DLOG_INFO, "run %lld (%s) was %s; %s (%s)", (long long)id, x->v.row.name,
	       store_status_name(st), msg, conn_peer(c));
	watch_run_status(d, id);
	coord_kick(d);
	detail_free(x);
	if ((x = load_or_refuse(d, c, (uint64_t)id)))
		send_status(c, x);
out:
	detail_free(x);
}

/* ---- WorkersRequest ---- */

void control_workers(byold *d, conn *c)
{
	char err[BYOL_ERR_LEN];
	int n = 0;
	for (worker *w = d->workers; w; w = w->next)
		n += w->state != W_NEW;
	Byol__WorkerStatus *ws = calloc((size_t)n + 1, sizeof(*ws));
	Byol__WorkerStatus **wp = calloc((size_t)n + 1, sizeof(*wp));
	if (!ws || !wp) {
		send_error(c, -ENOMEM, "out of memory");
		goto out;
	}
	int i = 0;
	for (worker *w = d->workers; w; w = w->next) {
		if (w->state == W_NEW)
			continue;       /* not registered: no name, host or threads yet */
		worker_status_fill(w, &ws[i]);
		wp[i] = &ws[i];
		i++;
	}
	Byol__StatusReply sr = BYOL__STATUS_REPLY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sr.n_workers = (size_t)n;
	sr.workers = wp;
	sr.version = BYOLD_VERSION;
	sr.uptime_s = (wall_ms() - d->started_ms) / 1000;
	e.msg_case = BYOL__ENVELOPE__MSG_STATUS_REPLY;
	e.status_reply = &sr;
	int rc = conn_send(c, &e, err);
	if (rc < 0 && rc != -EPIPE)
		conn_close(c, rc, "cannot answer: %s", err);
out:
	free(ws);
	free(wp);
}
