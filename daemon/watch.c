/*
 * watch.c — byolctl watch: RunStatus pushed to the connections watching a run.
 *
 * A WatchRequest is answered at once with the run's status (its experiment and
 * config included); unless the run has ended, the conn then joins d->watchers
 * for that run. After every applied step of the active run, watch_step sends
 * its live status (no store query) to each of its watchers whose last update
 * is interval_ms old. When a run's status changes, watch_run_status sends the
 * status from the store to every watcher of the run, whatever its interval, and
 * forgets the watchers of a run that ended (completed, failed, cancelled,
 * interrupted): that message is the last one, and the client closes. A watcher
 * that has heard nothing for WATCH_QUIET_S gets the status again from the cron
 * timer: a sign of life the client's timeout relies on, and fresh figures while
 * a step waits for workers.
 *
 * Back-pressure: a client that does not read keeps its frames in its conn's
 * write queue. A watcher whose queue holds more than WATCH_QUEUE_MAX bytes gets
 * no intermediate update (they are skipped, not queued), so a slow watcher
 * costs at most that much memory plus the final status.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byold.h"

#define WATCH_INTERVAL_MS 200           /* WatchRequest.interval_ms 0 */
#define WATCH_INTERVAL_MIN_MS 20
#define WATCH_INTERVAL_MAX_MS 60000
#define WATCH_QUIET_S 5.0
#define WATCH_QUEUE_MAX ((size_t)256 << 10)
#define ETA_SMOOTHING 0.1               /* weight of the newest step time */

struct watcher {
	watcher *next;
	conn *c;
	int64_t run_id;
	double interval_s;
	double last_sent;               /* mono_s; 0 never */
};

static int status_ended(store_status st)
{
	return st == STORE_COMPLETED || st == STORE_FAILED || st == STORE_CANCELLED ||
	       st == STORE_INTERRUPTED;
}

/* Sends rs to w's conn; a conn that cannot take it is closed. */
static void push(watcher *w, const Byol__RunStatus *rs, double now)
{
	char err[BYOL_ERR_LEN];
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_STATUS;
	e.run_status = (Byol__RunStatus *)rs;
	int rc = conn_send(w->c, &e, err);
	if (rc < 0 && rc != -EPIPE)
		conn_close(w->c, rc, "cannot send RunStatus: %s", err);
	w->last_sent = now;
}

static int watched(const byold *d, int64_t id)
{
	for (const watcher *w = d->watchers; w; w = w->next)
		if (w->run_id == id)
			return 1;
	return 0;
}

double watch_eta_s(const run *r)
{
	if (!r->ready || r->eta_step_s <= 0)
		return -1;
	long left = r->plan.total_steps - r->k;
	return left > 0 ? (double)left * r->eta_step_s : 0;
}

/* The active run's status from its live state (strings point into r). */
static void live_status(const run *r, Byol__RunStatus *rs)
{
	Byol__RunStatus init = BYOL__RUN_STATUS__INIT;
	*rs = init;
	rs->run_id = (uint64_t)r->id;
	rs->experiment_id = (uint64_t)r->experiment_id;
	rs->name = (char *)r->name;
	rs->status = (char *)store_status_name(STORE_RUNNING);
	rs->step = (uint64_t)r->k;
	rs->total_steps = (uint64_t)r->plan.total_steps;
	rs->epoch = r->k > 0 ? (uint64_t)((r->k - 1) / r->plan.steps_per_epoch + 1) : 0;
	if (r->have_last) {
		rs->loss = r->last.loss;
		rs->collapse = r->last.collapse;
		rs->lr = r->last.lr;
		rs->img_per_s = r->last_img_s;
	}
	if (r->last_knn >= 0)
		rs->knn_accuracy = r->last_knn;
	if (r->ckpt_step >= 0) {
		rs->checkpoint = (char *)r->ckpt_path;
		rs->checkpoint_step = (uint64_t)r->ckpt_step;
	}
	rs->eta_s = watch_eta_s(r);
	rs->seed = r->cfg.seed;
	rs->updated_unix_ms = wall_ms();
	rs->message = (char *)(r->cancelling ? "cancelling at the next step boundary" : "");
}

/* Smooths the time between applied steps of this session into r->eta_step_s. */
static void eta_update(run *r, double now)
{
	double dt = r->eta_t > 0 ? now - r->eta_t
				 : r->last_img_s > 0 ? r->plan.batch / r->last_img_s : 0;
	r->eta_t = now;
	if (dt <= 0 || !isfinite(dt))
		return;
	r->eta_step_s = r->eta_step_s > 0
				? (1 - ETA_SMOOTHING) * r->eta_step_s + ETA_SMOOTHING * dt
				: dt;
}

void watch_step(byold *d, run *r)
{
	double now = mono_s();
	eta_update(r, now);
	Byol__RunStatus rs;
	int built = 0;
	for (watcher *w = d->watchers; w; w = w->next) {
		if (w->run_id != r->id || now - w->last_sent < w->interval_s ||
		    conn_write_queue_size(w->c) > WATCH_QUEUE_MAX)
			continue;
		if (!built) {
			live_status(r, &rs);
			built = 1;
		}
		push(w, &rs, now);
	}
}

/* The status of run id from the store to its watchers. Those of a run that
 * ended are forgotten; from the cron (cron = 1) an interrupted run is not taken
 * as ended: it continues when byold starts again. */
static void send_stored(byold *d, int64_t id, int cron)
{
	char err[BYOL_ERR_LEN];
	run_detail *x = calloc(1, sizeof(*x));
	if (!x) {
		dlog(DLOG_ERROR, "watch: out of memory for the status of run %lld", (long long)id);
		return;
	}
	if (run_detail_load(d, (uint64_t)id, x, err) < 0) {
		dlog(DLOG_WARN, "watch: run %lld: %s", (long long)id, err);
		goto out;
	}
	run_view *v = &x->v;
	v->rs.config_json = (char *)"";  /* the first answer had it */
	int ended = status_ended(v->row.status) && !(cron && v->row.status == STORE_INTERRUPTED);
	double now = mono_s();
	for (watcher **pp = &d->watchers; *pp;) {
		watcher *w = *pp;
		if (w->run_id != id) {
			pp = &w->next;
			continue;
		}
		push(w, &v->rs, now);
		if (ended) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
out:
	run_detail_release(x);
	free(x);
}

void watch_run_status(byold *d, int64_t id)
{
	if (watched(d, id))
		send_stored(d, id, 0);
}

void watch_cron(byold *d)
{
	double now = mono_s();
	for (watcher *w = d->watchers; w; w = w->next) {
		if (now - w->last_sent < WATCH_QUIET_S ||
		    conn_write_queue_size(w->c) > WATCH_QUEUE_MAX)
			continue;
		run *r = d->run;
		if (r && r->id == w->run_id && r->ready && r->phase != RUN_DONE) {
			Byol__RunStatus rs;
			live_status(r, &rs);
			push(w, &rs, now);
			continue;
		}
		/* a queued or interrupted run: its status from the store (the rare
		 * case; one watcher at a time keeps the cron short) */
		send_stored(d, w->run_id, 1);
		return;
	}
}

void watch_start(byold *d, conn *c, const Byol__WatchRequest *q)
{
	char err[BYOL_ERR_LEN];
	run_detail *x = calloc(1, sizeof(*x));
	if (!x) {
		send_error(c, -ENOMEM, "out of memory");
		return;
	}
	int rc = run_detail_load(d, q->run_id, x, err);
	if (rc < 0) {
		send_error(c, rc, "%s", err);
		goto out;
	}
	watcher *w = NULL;
	if (!status_ended(x->v.row.status) || x->v.row.status == STORE_INTERRUPTED) {
		for (w = d->watchers; w; w = w->next)
			if (w->c == c && w->run_id == x->v.row.id)
				break;
		if (!w && !(w = calloc(1, sizeof(*w)))) {
			send_error(c, -ENOMEM, "out of memory for a watcher");
			goto out;
		}
		if (!w->c) {
			w->c = c;
			w->run_id = x->v.row.id;
			w->next = d->watchers;
			d->watchers = w;
		}
		unsigned ms = q->interval_ms ? q->interval_ms : WATCH_INTERVAL_MS;
		if (ms < WATCH_INTERVAL_MIN_MS)
			ms = WATCH_INTERVAL_MIN_MS;
		if (ms > WATCH_INTERVAL_MAX_MS)
			ms = WATCH_INTERVAL_MAX_MS;
		w->interval_s = ms / 1000.0;
		dlog(DLOG_DEBUG, "conn %llu %s watches run %lld every %u ms",
		     (unsigned long long)conn_id(c), conn_peer(c), (long long)w->run_id, ms);
	}
	watcher once = { .c = c };
	push(w ? w : &once, &x->v.rs, mono_s());
out:
	run_detail_release(x);
	free(x);
}

void watch_conn_closed(byold *d, conn *c)
{
	for (watcher **pp = &d->watchers; *pp;) {
		watcher *w = *pp;
		if (w->c == c) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}
