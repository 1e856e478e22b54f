/*
 * evals.c — evaluation jobs: kNN every eval.knn_every_epochs epochs, and at the
 * end kNN and the linear probe, each to one ready worker of the run.
 *
 * A job carries the online parameters and BN running statistics of its step,
 * packed when it is sent. A worker with a job outstanding takes no shards until
 * it answers (it may take long; its silence is judged by eval_timeout_ms). A
 * periodic job whose worker goes is dropped (the state has moved on); a final
 * job goes to another worker, since the state no longer changes. The same
 * happens to a job unanswered for eval_timeout_ms although its worker still
 * sends heartbeats (its compute hangs): that worker is then stalled, takes no
 * work until it answers, and its late answer is ignored.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byold.h"

static worker *pick(byold *d, run *r)
{
	worker *best = NULL;
	for (worker *w = d->workers; w; w = w->next) {
		if (w->state != W_READY || w->run_id != r->id || w->refused || w->stalled ||
		    w->congested || !conn_is_open(w->c))
			continue;
		if (!best || w->evals < best->evals ||
		    (w->evals == best->evals && w->shards_out < best->shards_out))
			best = w;
	}
	return best;
}

static int send_job(byold *d, run *r, eval_job *j, worker *w)
{
	char err[BYOL_ERR_LEN];
	Byol__EvalJob ej = BYOL__EVAL_JOB__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	ej.job_id = j->id;
	ej.run_id = (uint64_t)r->id;
	ej.step = (uint64_t)j->step;
	ej.kind = j->kind;
	ej.online.data = (uint8_t *)r->st.online;
	ej.online.len = r->m.L.total * sizeof(float);
	ej.bn_running.data = (uint8_t *)r->st.bn_running;
	ej.bn_running.len = r->m.bn_layout.total * sizeof(float);
	e.msg_case = BYOL__ENVELOPE__MSG_EVAL_JOB;
	e.eval_job = &ej;
	int rc = conn_send(w->c, &e, err);
	if (rc < 0) {
		if (rc != -EPIPE)
			conn_close(w->c, rc, "cannot send EvalJob: %s", err);
		return rc;
	}
	j->w = w;
	j->t_sent = mono_s();
	w->evals++;
	dlog(DLOG_INFO, "run %lld: %s evaluation of step %ld (job %llu) to worker %s",
	     (long long)r->id, j->kind, j->step, (unsigned long long)j->id, w->name);
	return 0;
}

static eval_job *new_job(byold *d, run *r, const char *kind, int final)
{
	eval_job *j = calloc(1, sizeof(*j));
	if (!j) {
		dlog(DLOG_ERROR, "run %lld: out of memory for an evaluation job", (long long)r->id);
		return NULL;
	}
	j->id = d->next_job_id++;
	j->step = r->k;
	j->final = final;
	snprintf(j->kind, sizeof(j->kind), "%s", kind);
	eval_job **tail = &r->jobs;
	while (*tail)
		tail = &(*tail)->next;
	*tail = j;
	return j;
}

static void remove_job(run *r, eval_job *j)
{
	for (eval_job **p = &r->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	free(j);
}

void evals_periodic(byold *d, run *r)
{
	worker *w = pick(d, r);
	if (!w) {
		dlog(DLOG_WARN, "run %lld: no worker for the kNN evaluation of step %ld: skipped",
		     (long long)r->id, r->k);
		return;
	}
	eval_job *j = new_job(d, r, "knn", 0);
	if (j && send_job(d, r, j, w) < 0)
		remove_job(r, j);
}

void evals_final(byold *d, run *r)
{
	if (r->final_started)
		return;
	r->final_started = 1;
	new_job(d, r, "knn", 1);
	if (r->cfg.probe)
		new_job(d, r, "probe", 1);
	evals_dispatch(d, r);
}

void evals_dispatch(byold *d, run *r)
{
	if (d->stopping || !r->ready)
		return;
	for (eval_job *j = r->jobs; j; j = j->next) {
		while (!j->w) {
			worker *w = pick(d, r);
			if (!w)
				return;
			send_job(d, r, j, w);   /* on failure that conn closes: pick again */
		}
	}
}

/* Takes job j from its worker; a periodic job is dropped (1), a final one waits
 * for another worker (0). */
static int take_back(byold *d, run *r, eval_job *j, const char *why)
{
	worker *w = j->w;
	j->w = NULL;
	j->taken_from = conn_id(w->c);
	if (w->evals > 0)
		w->evals--;
	if (!j->final) {
		devent(d, r->id, DLOG_WARN, "run %lld: the kNN evaluation of step %ld is lost: "
		       "worker %s %s", (long long)r->id, j->step, w->name, why);
		remove_job(r, j);
		return 1;
	}
	devent(d, r->id, DLOG_WARN, "run %lld: the final %s evaluation goes to another worker: "
	       "worker %s %s", (long long)r->id, j->kind, w->name, why);
	return 0;
}

void evals_worker_lost(byold *d, run *r, worker *w)
{
	for (eval_job *j = r->jobs, *next; j; j = next) {
		next = j->next;
		if (j->w == w)
			take_back(d, r, j, "left");
	}
	w->evals = 0;
}

void evals_cron(byold *d, run *r)
{
	double now = mono_s(), limit = d->cfg.eval_timeout_ms / 1000.0;
	int again = 0;
	for (eval_job *j = r->jobs, *next; j; j = next) {
		next = j->next;
		if (!j->w || now - j->t_sent < limit)
			continue;
		char why[128];
		snprintf(why, sizeof(why), "has not answered in %.1f s (limit %.1f s)",
			 now - j->t_sent, limit);
		j->w->stalled = 1;
		again |= !take_back(d, r, j, why);
	}
	if (again)
		evals_dispatch(d, r);
}

void evals_result(byold *d, worker *w, const Byol__EvalResult *er)
{
	run *r = d->run;
	char err[BYOL_ERR_LEN];
	eval_job *j = NULL;
	for (eval_job *x = r ? r->jobs : NULL; x; x = x->next)
		if (x->id == er->job_id)
			j = x;
	if (!j || (j->w != w && j->taken_from == conn_id(w->c))) {
		w->stalled = 0;         /* it answers again */
		worker_ignored(w, "EvalResult of job %llu (run %llu), which is not outstanding "
				  "with it: ignored", (unsigned long long)er->job_id,
			       (unsigned long long)er->run_id);
		coord_worker_free(d, w);
		return;
	}
	if (j->w != w || er->run_id != (uint64_t)r->id || er->step != (uint64_t)j->step ||
	    !er->kind || strcmp(er->kind, j->kind) != 0) {
		conn_close(w->c, -EPROTO, "EvalResult of job %llu does not match the job it was "
			   "given", (unsigned long long)er->job_id);
		return;
	}
	w->evals--;
	double secs = mono_s() - j->t_sent;
	char why[BYOL_ERR_LEN] = "";
	if (er->error && er->error[0])
		snprintf(why, sizeof(why), "%s", er->error);
	else if (!isfinite(er->accuracy) || er->accuracy < 0 || er->accuracy > 1)
		snprintf(why, sizeof(why), "accuracy %g is not in [0, 1]", er->accuracy);
	if (why[0]) {
		devent(d, r->id, DLOG_WARN, "run %lld: %s evaluation of step %ld failed on worker "
		       "%s: %s", (long long)r->id, j->kind, j->step, w->name, why);
		if (j->final)
			snprintf(r->final_note, sizeof(r->final_note), "completed; the final %s "
				 "evaluation failed: %s", j->kind, why);
	} else {
		if (store_eval_add(d->db, r->id, j->step, j->kind, er->accuracy, err) < 0)
			dlog(DLOG_ERROR, "store: %s", err);
		if (strcmp(j->kind, "knn") == 0) {
			r->last_knn = er->accuracy;
			if (j->final)
				r->final_knn = er->accuracy;
		} else if (j->final) {
			r->final_probe = er->accuracy;
		}
		devent(d, r->id, DLOG_INFO, "run %lld: %s accuracy %.4f at step %ld (%.1f s on "
		       "worker %s)", (long long)r->id, j->kind, er->accuracy, j->step, secs,
		       w->name);
	}
	remove_job(r, j);
	coord_worker_free(d, w);
	coord_progress(d, r);
}

int evals_idle(const run *r)
{
	return r->jobs == NULL;
}

void evals_free(run *r)
{
	while (r->jobs) {
		eval_job *j = r->jobs;
		if (j->w && j->w->evals > 0)
			j->w->evals--;
		r->jobs = j->next;
		free(j);
	}
}
