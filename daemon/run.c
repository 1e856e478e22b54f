/*
 * run.c — a run's life around its steps: picking the next run (running or
 * interrupted ones first, oldest first, then the queue), its set-up in the
 * threadpool, the wait for the workers' set-up before the first step, its
 * completion, its failure, and the stop at a step boundary on SIGTERM. The
 * steps themselves are coord.c's.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/data.h"
#include "byold.h"

/* ---- run objects ---- */

static void run_free(run *r)
{
	evals_free(r);
	worker_params_release(r);
	coord_rooms_release(r);
	free(r->rooms);
	if (r->slots)
		for (int j = 0; j < r->plan.shards; j++)
			coord_slot_free(&r->slots[j]);
	free(r->slots);
	free(r->nodes);
	free(r->node_hi);
	free(r->nbuf);
	free(r->nptr);
	train_state_free(&r->st);
	model_free(&r->m);
	free(r->config_json);
	for (int i = 0; i < r->n_candidates; i++)
		free(r->candidates[i]);
	free(r->candidates);
	free(r);
}

void run_timing(const run *r, char *out, size_t n)
{
	if (!r->n_timed) {
		snprintf(out, n, "no step timed");
		return;
	}
	double k = (double)r->n_timed, step = r->sum_step_s / k;
	double coord = (r->sum_send_s + r->sum_apply_s + r->sum_after_s) / k;
	snprintf(out, n, "%.1f ms per step over %ld steps: waiting for workers %.1f ms, "
		 "sending %.1f ms, apply %.1f ms, bookkeeping %.1f ms (coordinator %.0f%%)",
		 1e3 * step, r->n_timed, 1e3 * r->sum_wait_s / k, 1e3 * r->sum_send_s / k,
		 1e3 * r->sum_apply_s / k, 1e3 * r->sum_after_s / k,
		 step > 0 ? 100.0 * coord / step : 0.0);
}

/* The run leaves d->run; the next one starts. */
static void reap(byold *d, run *r)
{
	if (r->busy)
		return;
	coord_release_nodes(r);
	for (worker *w = d->workers; w; w = w->next)
		worker_flush(d, w);
	d->run = NULL;
	run_free(r);
	if (d->stopping)
		byold_shutdown(d);
	else
		coord_kick(d);
}

void run_fail(byold *d, run *r, const char *fmt, ...)
{
	char msg[BYOL_ERR_LEN], err[BYOL_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	devent(d, r->id, DLOG_ERROR, "run %lld (%s) failed: %s", (long long)r->id, r->name, msg);
	if (store_run_finish(d->db, r->id, STORE_FAILED, NULL, msg, err) < 0)
		dlog(DLOG_ERROR, "store: %s", err);
	watch_run_status(d, r->id);
	coord_release_nodes(r);
	r->phase = RUN_DONE;
	coord_progress(d, r);
}

/* ---- starting a run ---- */

/* The oldest run with status st into *out; -ENOENT when none. */
static int oldest_with(byold *d, store_status st, store_run *out, char *err)
{
	store_run_filter f = { .status = st };
	store_run *runs;
	int n, rc = store_run_list(d->db, &f, &runs, &n, err);
	if (rc < 0)
		return rc;
	if (!n)
		return -ENOENT;
	*out = runs[n - 1];     /* newest first */
	runs[n - 1].config_json = runs[n - 1].final_json = NULL;
	store_runs_free(runs, n);
	return 0;
}

static void setup_work(uv_work_t *req);
static void setup_done(uv_work_t *req, int status);

/* A run cancelled while a step was in flight, whose daemon stopped before the
 * step boundary: it ends cancelled at its latest checkpoint (`resume` goes on
 * from there). Returns 1 (go on with the next run); < 0 when the store failed. */
static int finish_pending_cancel(byold *d, const store_run *row)
{
	char err[BYOL_ERR_LEN], msg[STORE_MSG_LEN];
	int n = (int)strcspn(row->message, ";");
	snprintf(msg, sizeof(msg), "cancelled: byold stopped while the %.*s waited for the "
		 "step boundary", n, row->message);
	int rc = store_run_set_status(d->db, row->id, STORE_CANCELLED, msg, err);
	if (rc < 0) {
		dlog(DLOG_ERROR, "store: run %lld: %s", (long long)row->id, err);
		return rc;
	}
	devent(d, row->id, DLOG_INFO, "run %lld (%s) %s; its latest checkpoint is kept",
	       (long long)row->id, row->name, msg);
	watch_run_status(d, row->id);
	return 1;
}

/* Creates d->run from row and queues its set-up. Returns 0; 1 when the run
 * failed at once (marked failed: go on with the next); < 0 when the store or
 * memory failed (stop trying for now). */
static int run_start(byold *d, const store_run *row)
{
	char err[BYOL_ERR_LEN];
	int rc;
	if (row->status == STORE_RUNNING && !strncmp(row->message, RUN_CANCEL_PENDING,
						     strlen(RUN_CANCEL_PENDING)))
		return finish_pending_cancel(d, row);
	run *r = calloc(1, sizeof(*r));
	if (!r) {
		dlog(DLOG_ERROR, "out of memory for run %lld", (long long)row->id);
		return -ENOMEM;
	}
	r->d = d;
	r->id = row->id;
	r->experiment_id = row->experiment_id;
	snprintf(r->name, sizeof(r->name), "%s", row->name);
	r->status_at_start = row->status;
	r->resumed_step = r->ckpt_step = -1;
	r->final_knn = r->final_probe = r->last_knn = -1;
	snprintf(r->dir, sizeof(r->dir), "%s/runs/%lld", d->cfg.state_dir, (long long)r->id);
	if (row->status != STORE_RUNNING &&
	    (rc = store_run_set_status(d->db, r->id, STORE_RUNNING,
				       row->status == STORE_QUEUED ? "started" : "resumed", err)) < 0) {
		dlog(DLOG_ERROR, "store: run %lld: %s", (long long)r->id, err);
		free(r);
		return rc;
	}
	watch_run_status(d, r->id);
	if (!(r->config_json = strdup(row->config_json ? row->config_json : ""))) {
		free(r);
		return -ENOMEM;
	}
	if ((rc = config_from_json(&r->cfg, r->config_json, err)) < 0) {
		d->run = r;
		r->phase = RUN_SETUP;
		run_fail(d, r, "%s", err);
		return 1;
	}
	if (ckpt_candidates(d, r, err) < 0)
		dlog(DLOG_WARN, "run %lld: %s", (long long)r->id, err);
	d->run = r;
	r->phase = RUN_SETUP;
	r->busy++;
	r->setup_req.data = r;
	devent(d, r->id, DLOG_INFO, "run %lld (%s) %s", (long long)r->id, r->name,
	       row->status == STORE_QUEUED ? "starting" : "resuming");
	uv_queue_work(d->loop, &r->setup_req, setup_work, setup_done);
	return 0;
}

void coord_kick(byold *d)
{
	static int kicking;     /* a run failing at once calls back here through reap */
	if (kicking)
		return;
	kicking = 1;
	while (!d->run && !d->stopping && !d->shut) {
		store_run row;
		char err[BYOL_ERR_LEN];
		memset(&row, 0, sizeof(row));
		int rc = oldest_with(d, STORE_RUNNING, &row, err);
		if (rc == -ENOENT)
			rc = oldest_with(d, STORE_INTERRUPTED, &row, err);
		if (rc == -ENOENT)
			rc = store_run_next_queued(d->db, &row, err);
		if (rc < 0) {
			if (rc != -ENOENT)
				dlog(DLOG_ERROR, "store: %s", err);
			store_run_release(&row);
			break;
		}
		rc = run_start(d, &row);
		store_run_release(&row);
		if (rc < 0)
			break;          /* the store or memory: do not spin */
	}
	kicking = 0;
}

/* ---- set-up, in the threadpool ---- */

static void setup_work(uv_work_t *req)
{
	run *r = req->data;
	char *err = r->setup_err;
	dataset train;
	memset(&train, 0, sizeof(train));
	int rc;
	if ((rc = make_dirs(r->dir, err)) < 0 ||
	    (rc = dataset_load_dir(&train, NULL, r->cfg.data_dir, r->cfg.train_limit, err)) < 0 ||
	    (rc = model_build(&r->m, &r->cfg, train.h, train.w, train.c, err)) < 0 ||
	    (rc = step_plan_make(&r->plan, &r->cfg, train.n, err)) < 0)
		goto out;
	/* the largest frames: StepParams with the target, NodeResult, EvalJob */
	size_t P = r->m.L.total, NB = r->m.bn_layout.total;
	size_t biggest = (P + (P > NB ? P : NB)) * sizeof(float) + 4096;
	size_t max_frame = (size_t)r->d->cfg.max_frame_mb << 20;
	if (biggest > max_frame) {
		rc = byol_err(err, -EMSGSIZE, "the model's %zu parameters need frames of %zu MiB, "
			      "over max_frame_mb %d", P, (biggest >> 20) + 1, r->d->cfg.max_frame_mb);
		goto out;
	}
	/* the parameters come from the latest checkpoint that loads, else the init */
	if ((rc = train_state_alloc(&r->st, &r->m, err)) < 0)
		goto out;
	ckpt_restore(r);
	if (r->resumed_step < 0 &&
	    (rc = train_state_init_params(&r->st, &r->m, &r->plan, &train, err)) < 0)
		goto out;
	if (r->st.step > r->plan.total_steps) {
		rc = byol_err(err, -EINVAL, "checkpoint %s is at step %ld, past the run's %ld steps",
			      r->resumed_path, r->st.step, r->plan.total_steps);
		goto out;
	}
	r->st.pool = r->d->apply_pool;
	int S = r->plan.shards;
	r->slots = calloc((size_t)S, sizeof(*r->slots));
	r->nodes = calloc((size_t)S, sizeof(*r->nodes));
	r->node_hi = calloc((size_t)S, sizeof(*r->node_hi));
	r->nbuf = calloc((size_t)S, sizeof(*r->nbuf));
	r->nptr = calloc((size_t)S, sizeof(*r->nptr));
	if (!r->slots || !r->nodes || !r->node_hi || !r->nbuf || !r->nptr)
		rc = byol_err(err, -ENOMEM, "out of memory for %d shard slots", S);
out:
	dataset_free(&train);
	r->setup_rc = rc;
}

static void setup_done(uv_work_t *req, int status)
{
	run *r = req->data;
	byold *d = r->d;
	(void)status;
	r->busy--;
	if (r->setup_rc < 0) {
		run_fail(d, r, "setup: %s", r->setup_err);
		return;
	}
	r->ready = 1;
	r->k = r->st.step;
	char err[BYOL_ERR_LEN];
	if (store_run_set_step(d->db, r->id, r->k, err) < 0)    /* a resume goes back */
		dlog(DLOG_WARN, "store: %s", err);
	if (r->resumed_step >= 0) {
		r->ckpt_step = r->resumed_step;
		snprintf(r->ckpt_path, sizeof(r->ckpt_path), "%s", r->resumed_path);
	}
	char from[BYOLD_PATH_LEN + 64];
	if (r->resumed_step >= 0)
		snprintf(from, sizeof(from), "from step %ld (%s)", r->resumed_step, r->resumed_path);
	else
		snprintf(from, sizeof(from), "from step 0");
	devent(d, r->id, DLOG_INFO, "run %lld (%s): %s %s, %zu parameters, %ld steps of %d images "
	       "(%d shards of %d, %ld steps per epoch), %ld train images; %s",
	       (long long)r->id, r->name, config_method_name(r->cfg.method),
	       r->cfg.encoder == ENCODER_MLP ? "mlp" : "cnn", r->m.L.total, r->plan.total_steps,
	       r->plan.batch, r->plan.shards, r->plan.shard, r->plan.steps_per_epoch,
	       r->plan.n_train, from);
	if (run_stopping(d, r)) {
		coord_progress(d, r);
		return;
	}
	for (worker *w = d->workers; w; w = w->next)
		if (w->state != W_NEW && conn_is_open(w->c))
			worker_send_setup(d, w);
	if (r->k >= r->plan.total_steps) {
		r->phase = RUN_FINAL;
		evals_final(d, r);
		coord_progress(d, r);
	} else {
		r->starting = 1;
		r->t_ready = mono_s();
		run_maybe_start(d, r);
	}
}

/* The first step of this session starts once every worker sent RunSetup has
 * answered (or start_wait_ms has passed) and at least one is ready, so that
 * the workers setting up together share it from the start. */
void run_maybe_start(byold *d, run *r)
{
	if (!r->starting || d->stopping)
		return;
	int ready = 0, pending = 0;
	for (worker *w = d->workers; w; w = w->next) {
		ready += worker_can_step(d, w);
		pending += w->state == W_SETUP && w->run_id == r->id && conn_is_open(w->c);
	}
	if (!ready || (pending && mono_s() - r->t_ready < d->cfg.start_wait_ms / 1000.0))
		return;
	r->starting = 0;
	coord_begin_step(d, r);
}

/* ---- the end of a run ---- */

typedef struct {
	long from;
	double loss, collapse, n, seconds, images;
	int batch;
} final_sums;

static int sum_metric(const store_metric *m, void *ctx)
{
	final_sums *f = ctx;
	if (m->step >= f->from) {
		f->loss += m->loss;
		f->collapse += m->collapse;
		f->n++;
	}
	if (m->img_per_s > 0) {
		f->seconds += f->batch / m->img_per_s;
		f->images += f->batch;
	}
	return 0;
}

static void complete(byold *d, run *r)
{
	char err[BYOL_ERR_LEN];
	final_sums f = { .from = r->plan.total_steps - r->plan.steps_per_epoch,
			 .batch = r->plan.batch };
	if (store_metrics_read(d->db, r->id, 0, -1, sum_metric, &f, err) < 0)
		dlog(DLOG_WARN, "store: %s", err);
	cJSON *o = cJSON_CreateObject();
	char *json = NULL;
	if (o) {
		if (r->final_probe >= 0)
			cJSON_AddNumberToObject(o, "probe_acc", r->final_probe);
		else
			cJSON_AddNullToObject(o, "probe_acc");
		if (r->final_knn >= 0)
			cJSON_AddNumberToObject(o, "knn_acc", r->final_knn);
		else
			cJSON_AddNullToObject(o, "knn_acc");
		cJSON_AddNumberToObject(o, "final_loss", f.n ? f.loss / f.n : 0);
		cJSON_AddNumberToObject(o, "collapse", f.n ? f.collapse / f.n : 0);
		cJSON_AddNumberToObject(o, "img_per_s", f.seconds > 0 ? f.images / f.seconds : 0);
		cJSON_AddNumberToObject(o, "train_seconds", f.seconds);
		cJSON_AddNumberToObject(o, "steps", (double)r->k);
		if (r->ckpt_step >= 0)
			cJSON_AddStringToObject(o, "checkpoint", r->ckpt_path);
		json = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
	}
	const char *msg = r->final_note[0] ? r->final_note : "completed";
	if (store_run_finish(d->db, r->id, STORE_COMPLETED, json, msg, err) < 0)
		dlog(DLOG_ERROR, "store: run %lld: %s", (long long)r->id, err);
	watch_run_status(d, r->id);
	char knn[32] = "-", probe[32] = "-";
	if (r->final_knn >= 0)
		snprintf(knn, sizeof(knn), "%.4f", r->final_knn);
	if (r->final_probe >= 0)
		snprintf(probe, sizeof(probe), "%.4f", r->final_probe);
	devent(d, r->id, DLOG_INFO, "run %lld (%s) completed: loss %.4f (last epoch), knn %s, "
	       "probe %s", (long long)r->id, r->name, f.n ? f.loss / f.n : 0, knn, probe);
	free(json);
	r->phase = RUN_DONE;
	reap(d, r);
}

/* Stopping: abandon the step, checkpoint at the boundary, mark interrupted. */
static void stop_run(byold *d, run *r)
{
	char err[BYOL_ERR_LEN];
	if (r->busy)
		return;
	if (r->phase == RUN_DONE) {
		reap(d, r);
		return;
	}
	coord_release_nodes(r);
	if (r->ready && r->k > r->ckpt_step && r->k > 0 && !r->stop_ckpt_tried) {
		r->stop_ckpt_tried = 1;
		ckpt_start(d, r);
		return;
	}
	char msg[BYOLD_PATH_LEN + 128], tl[512];
	if (r->ckpt_step >= 0)
		snprintf(msg, sizeof(msg), "stopped at step %ld; checkpoint at step %ld: %s", r->k,
			 r->ckpt_step, r->ckpt_path);
	else
		snprintf(msg, sizeof(msg), "stopped at step %ld; no checkpoint", r->k);
	if (store_run_set_status(d->db, r->id, run_stop_status(r), msg, err) < 0)
		dlog(DLOG_ERROR, "store: run %lld: %s", (long long)r->id, err);
	watch_run_status(d, r->id);
	run_timing(r, tl, sizeof(tl));
	devent(d, r->id, DLOG_INFO, "run %lld %s: %s; %s", (long long)r->id,
	       store_status_name(run_stop_status(r)), msg, tl);
	r->phase = RUN_DONE;
	reap(d, r);
}

void coord_progress(byold *d, run *r)
{
	if (!r || r != d->run)
		return;
	if (run_stopping(d, r)) {
		stop_run(d, r);
		return;
	}
	if (r->busy && r->phase != RUN_STEP && r->phase != RUN_FINAL)
		return;
	switch (r->phase) {
	case RUN_DONE:
		reap(d, r);
		break;
	case RUN_STEP:
		if (r->waiting_ckpt && !r->ckpt_busy)
			coord_start_apply(d, r);
		break;
	case RUN_FINAL:
		if (!r->ckpt_busy && evals_idle(r))
			complete(d, r);
		break;
	default:
		break;
	}
}

void coord_stop(byold *d)
{
	d->stopping = 1;
	if (d->run)
		stop_run(d, d->run);
	else
		byold_shutdown(d);
}

