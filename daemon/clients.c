/*
 * clients.c — byolctl's requests, one answer each on the same connection:
 * Submit -> SubmitReply | Error, StatusRequest -> StatusReply | Error,
 * ListRequest -> ListReply | Error, HistoryRequest -> ListReply | Error (the
 * queries compiled by history.c). A refused request is answered with an Error
 * and the connection stays open; a message a client may not send closes it.
 * ExportRequest (a stream of ExportChunk) and MetricsRequest are export.c's;
 * ShowRequest, CancelRequest, ResumeRequest and WorkersRequest control.c's;
 * WatchRequest (a RunStatus now, more pushed later) watch.c's.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "byol/frame.h"
#include "byold.h"

static void reply(conn *c, Byol__Envelope *e)
{
	char err[BYOL_ERR_LEN];
	int rc = conn_send(c, e, err);
	if (rc < 0 && rc != -EPIPE)
		conn_close(c, rc, "cannot answer: %s", err);
}

/* ---- Submit ---- */

/* Images in the train set of the idx directory dir (from the file header). */
static int count_train(const char *dir, long *n, char *err)
{
	char path[BYOLD_PATH_LEN];
	snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte.gz", dir);
	if (access(path, R_OK) < 0)
		snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte", dir);
	if (access(path, R_OK) < 0)
		return byol_err(err, -ENOENT, "[data] dir %s: no readable train-images-idx3-ubyte"
				"[.gz] in it", dir);
	gzFile f = gzopen(path, "rb");
	if (!f)
		return byol_err(err, -EIO, "%s: cannot open", path);
	unsigned char h[8];
	int got = gzread(f, h, sizeof(h));
	gzclose(f);
	if (got != (int)sizeof(h) || h[0] || h[1] || h[2] != 8 || (h[3] != 3 && h[3] != 4))
		return byol_err(err, -EINVAL, "%s: not an idx file of unsigned-byte images", path);
	*n = (long)((uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7]);
	return 0;
}

typedef struct {
	experiment_config base, one;
	store_run_spec *specs;
	char (*names)[STORE_NAME_LEN];
	char (*hashes)[17];
	char **jsons;
	int64_t *ids;
	uint64_t *ids_u;
	int n;
} submit_ctx;

static void submit_free(submit_ctx *x)
{
	for (int i = 0; x->jsons && i < x->n; i++)
		free(x->jsons[i]);
	free(x->jsons);
	free(x->specs);
	free(x->names);
	free(x->hashes);
	free(x->ids);
	free(x->ids_u);
	free(x);
}

static void on_submit(byold *d, conn *c, const Byol__Submit *s)
{
	char err[BYOL_ERR_LEN], why[BYOL_ERR_LEN];
	const char *src = s->source && s->source[0] ? s->source : "<submit>";
	int rc;
	char *base_json = NULL;
	submit_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		send_error(c, -ENOMEM, "out of memory");
		return;
	}
	if (s->config_case == BYOL__SUBMIT__CONFIG_INI_TEXT)
		rc = config_parse_string(&x->base, s->ini_text, src, err);
	else if (s->config_case == BYOL__SUBMIT__CONFIG_CONFIG_JSON)
		rc = config_from_json(&x->base, s->config_json, err);
	else
		rc = byol_err(err, -EINVAL, "Submit holds no experiment");
	for (size_t i = 0; rc == 0 && i < s->n_overrides; i++)
		rc = config_set(&x->base, s->overrides[i], err);
	if (rc == 0 && (rc = config_validate(&x->base, why)) < 0)
		byol_err(err, rc, "%s: %s", src, why);
	int n = rc == 0 ? config_sweep_count(&x->base) : 0;
	if (rc == 0 && n < 1)
		rc = byol_err(err, -EINVAL, "%s: the sweep expands to no run", src);
	if (rc < 0)
		goto fail;
	x->n = n;
	x->specs = calloc((size_t)n, sizeof(*x->specs));
	x->names = calloc((size_t)n, sizeof(*x->names));
	x->hashes = calloc((size_t)n, sizeof(*x->hashes));
	x->jsons = calloc((size_t)n, sizeof(char *));
	x->ids = calloc((size_t)n, sizeof(int64_t));
	x->ids_u = calloc((size_t)n, sizeof(uint64_t));
	if (!x->specs || !x->names || !x->hashes || !x->jsons || !x->ids || !x->ids_u) {
		rc = byol_err(err, -ENOMEM, "out of memory for %d runs", n);
		goto fail;
	}
	/* "NAME/variant=none,seed=2": unique in the experiment */
	if ((rc = config_sweep_names(&x->base, (char *)x->names, STORE_NAME_LEN, why)) < 0) {
		byol_err(err, rc, "%s: %s", src, why);
		goto fail;
	}
	char counted_dir[CONFIG_STR_LEN] = "";
	long n_images = 0;
	for (int i = 0; i < n; i++) {
		if ((rc = config_sweep_get(&x->base, i, &x->one, why)) < 0) {
			byol_err(err, rc, "%s: sweep run %d: %s", src, i, why);
			goto fail;
		}
		if (strcmp(counted_dir, x->one.data_dir) != 0) {
			if ((rc = count_train(x->one.data_dir, &n_images, why)) < 0) {
				byol_err(err, rc, "%s: %s", src, why);
				goto fail;
			}
			snprintf(counted_dir, sizeof(counted_dir), "%s", x->one.data_dir);
		}
		long n_train = x->one.train_limit > 0 && x->one.train_limit < n_images
				       ? x->one.train_limit : n_images;
		step_plan plan;
		if ((rc = step_plan_make(&plan, &x->one, n_train, why)) < 0) {
			if (n > 1)
				byol_err(err, rc, "%s: sweep run %d (%s): %s", src, i, x->names[i], why);
			else
				byol_err(err, rc, "%s: %s", src, why);
			goto fail;
		}
		if (!(x->jsons[i] = config_to_json(&x->one))) {
			rc = byol_err(err, -ENOMEM, "out of memory");
			goto fail;
		}
		config_hash(&x->one, x->hashes[i]);
		x->specs[i] = (store_run_spec){
			.name = x->names[i], .config_json = x->jsons[i], .config_hash = x->hashes[i],
			.seed = x->one.seed, .total_steps = plan.total_steps,
		};
	}
	if (!(base_json = config_experiment_json(&x->base))) {
		rc = byol_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	char ename[STORE_NAME_LEN];
	snprintf(ename, sizeof(ename), "%.*s", STORE_NAME_LEN - 1, x->base.name);
	int64_t eid;
	const char *ini = s->config_case == BYOL__SUBMIT__CONFIG_INI_TEXT ? s->ini_text : NULL;
	if ((rc = store_experiment_add(d->db, ename, base_json, ini, x->specs, n, &eid, x->ids,
				       err)) < 0)
		goto fail;
	Byol__SubmitReply sr = BYOL__SUBMIT_REPLY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	for (int i = 0; i < n; i++)
		x->ids_u[i] = (uint64_t)x->ids[i];
	sr.experiment_id = (uint64_t)eid;
	sr.n_run_id = (size_t)n;
	sr.run_id = x->ids_u;
	e.msg_case = BYOL__ENVELOPE__MSG_SUBMIT_REPLY;
	e.submit_reply = &sr;
	reply(c, &e);
	devent(d, 0, DLOG_INFO, "experiment %lld (%s) submitted by %s (%s): %d run%s, %lld..%lld",
	       (long long)eid, ename, conn_name(c), conn_peer(c), n, n == 1 ? "" : "s",
	       (long long)x->ids[0], (long long)x->ids[n - 1]);
	free(base_json);
	submit_free(x);
	coord_kick(d);
	return;
fail:
	dlog(DLOG_INFO, "submit from %s refused: %s", conn_peer(c), err);
	send_error(c, rc, "%s", err);
	free(base_json);
	submit_free(x);
}

/* ---- RunStatus ---- */

static int last_metric(const store_metric *m, void *ctx)
{
	run_view *v = ctx;
	v->rs.loss = m->loss;
	v->rs.collapse = m->collapse;
	v->rs.img_per_s = m->img_per_s;
	if (m->unix_ms > v->rs.updated_unix_ms)
		v->rs.updated_unix_ms = m->unix_ms;
	return 0;
}

static int eval_walk(const store_eval *e, void *ctx)
{
	run_view *v = ctx;
	if (strcmp(e->kind, "knn") == 0)
		v->rs.knn_accuracy = e->value;
	else if (strcmp(e->kind, "probe") == 0)
		v->rs.probe_accuracy = e->value;
	return 0;
}

static double json_num(const cJSON *o, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(x) && isfinite(x->valuedouble) ? x->valuedouble : 0;
}

void run_view_fill(byold *d, run_view *v)
{
	char err[BYOL_ERR_LEN];
	store_run *row = &v->row;
	Byol__RunStatus init = BYOL__RUN_STATUS__INIT;
	Byol__RunStatus *rs = &v->rs;
	*rs = init;
	rs->run_id = (uint64_t)row->id;
	rs->experiment_id = (uint64_t)row->experiment_id;
	rs->name = row->name;
	rs->status = (char *)store_status_name(row->status);
	rs->step = (uint64_t)(row->step > 0 ? row->step : 0);
	rs->total_steps = (uint64_t)(row->total_steps > 0 ? row->total_steps : 0);
	rs->message = row->message;
	rs->updated_unix_ms = row->finished_ms ? row->finished_ms
			      : row->started_ms ? row->started_ms : row->created_ms;
	if (row->step > 0 &&
	    store_metrics_read(d->db, row->id, row->step - 1, row->step - 1, last_metric, v, err) < 0)
		dlog(DLOG_WARN, "store: %s", err);
	if (store_evals_read(d->db, row->id, eval_walk, v, err) < 0)
		dlog(DLOG_WARN, "store: %s", err);
	cJSON *fin = row->final_json ? cJSON_Parse(row->final_json) : NULL;
	if (fin) {
		rs->loss = json_num(fin, "final_loss");
		rs->collapse = json_num(fin, "collapse");
		rs->img_per_s = json_num(fin, "img_per_s");
		if (json_num(fin, "knn_acc") > 0)
			rs->knn_accuracy = json_num(fin, "knn_acc");
		if (json_num(fin, "probe_acc") > 0)
			rs->probe_accuracy = json_num(fin, "probe_acc");
		cJSON_Delete(fin);
	}
	store_checkpoint ck;
	if (store_checkpoint_latest(d->db, row->id, &ck, NULL) == 0) {
		snprintf(v->ckpt, sizeof(v->ckpt), "%s", ck.path);
		rs->checkpoint = v->ckpt;
		rs->checkpoint_step = (uint64_t)ck.step;
	}
	run *r = d->run;
	if (r && r->id == row->id && r->ready) {
		rs->step = (uint64_t)r->k;
		rs->total_steps = (uint64_t)r->plan.total_steps;
		if (r->have_last) {
			rs->loss = r->last.loss;
			rs->collapse = r->last.collapse;
			rs->img_per_s = r->last_img_s;
		}
	}
}

static void status_reply(conn *c, run_view *views, int n, byold *d, int with_workers)
{
	Byol__StatusReply sr = BYOL__STATUS_REPLY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	Byol__RunStatus **rp = calloc((size_t)(n ? n : 1), sizeof(*rp));
	int nw = 0;
	for (worker *w = d->workers; with_workers && w; w = w->next)
		nw++;
	Byol__WorkerStatus *ws = calloc((size_t)(nw ? nw : 1), sizeof(*ws));
	Byol__WorkerStatus **wp = calloc((size_t)(nw ? nw : 1), sizeof(*wp));
	if (!rp || !ws || !wp) {
		send_error(c, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++)
		rp[i] = &views[i].rs;
	int i = 0;
	for (worker *w = d->workers; with_workers && w; w = w->next, i++) {
		worker_status_fill(w, &ws[i]);
		wp[i] = &ws[i];
	}
	sr.n_runs = (size_t)n;
	sr.runs = rp;
	sr.n_workers = (size_t)nw;
	sr.workers = wp;
	sr.version = BYOLD_VERSION;
	sr.uptime_s = (wall_ms() - d->started_ms) / 1000;
	e.msg_case = BYOL__ENVELOPE__MSG_STATUS_REPLY;
	e.status_reply = &sr;
	reply(c, &e);
out:
	free(rp);
	free(ws);
	free(wp);
}

static void on_status(byold *d, conn *c, const Byol__StatusRequest *q)
{
	char err[BYOL_ERR_LEN];
	if (q->run_id) {
		run_view *v = calloc(1, sizeof(*v));
		if (!v) {
			send_error(c, -ENOMEM, "out of memory");
			return;
		}
		int rc = q->run_id > INT64_MAX ? -ENOENT
					       : store_run_get(d->db, (int64_t)q->run_id, &v->row, err);
		if (rc == -ENOENT)
			send_error(c, rc, "no run %llu", (unsigned long long)q->run_id);
		else if (rc < 0)
			send_error(c, rc, "%s", err);
		else {
			run_view_fill(d, v);
			status_reply(c, v, 1, d, 0);
		}
		store_run_release(&v->row);
		free(v);
		return;
	}
	store_run_filter f = { .status = STORE_RUNNING };
	store_run *rows;
	int n;
	if (store_run_list(d->db, &f, &rows, &n, err) < 0) {
		send_error(c, -EIO, "%s", err);
		return;
	}
	run_view *v = calloc((size_t)(n ? n : 1), sizeof(*v));
	if (!v) {
		store_runs_free(rows, n);
		send_error(c, -ENOMEM, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		v[i].row = rows[i];
		run_view_fill(d, &v[i]);
	}
	status_reply(c, v, n, d, 1);
	free(v);
	store_runs_free(rows, n);
}

/* ---- ListRequest and HistoryRequest (queries compiled by history.c) ---- */

/* Answers a ListReply with the runs of spec: each as run_view_fill makes it, plus
 * its experiment, config, final metrics, times and seed. */
static void answer_history(byold *d, conn *c, const history_spec *spec)
{
	char err[BYOL_ERR_LEN];
	history_row *rows;
	int n;
	int rc = history_select(d->db, spec, &rows, &n, err);
	if (rc < 0) {
		dlog(rc == -EINVAL ? DLOG_DEBUG : DLOG_WARN, "query from %s refused: %s",
		     conn_peer(c), err);
		send_error(c, rc, "%s", err);
		return;
	}
	run_view *v = calloc((size_t)(n ? n : 1), sizeof(*v));
	Byol__RunStatus **rp = calloc((size_t)(n ? n : 1), sizeof(*rp));
	if (!v || !rp) {
		send_error(c, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const store_run *row = &rows[i].run;
		Byol__RunStatus *rs = &v[i].rs;
		v[i].row = *row;        /* shares the strings of rows[i], freed below */
		run_view_fill(d, &v[i]);
		rs->experiment = rows[i].experiment;
		rs->config_json = row->config_json ? row->config_json : (char *)"{}";
		rs->final_json = row->final_json ? row->final_json : (char *)"{}";
		rs->created_unix_ms = row->created_ms;
		rs->started_unix_ms = row->started_ms;
		rs->finished_unix_ms = row->finished_ms;
		rs->seed = row->seed;
		rp[i] = rs;
	}
	Byol__ListReply lr = BYOL__LIST_REPLY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	lr.n_runs = (size_t)n;
	lr.runs = rp;
	e.msg_case = BYOL__ENVELOPE__MSG_LIST_REPLY;
	e.list_reply = &lr;
	reply(c, &e);
out:
	free(v);
	free(rp);
	history_rows_free(rows, n);
}

/* ListRequest.filter: the terms of one where string ("filter: ..." in errors). */
static void on_list(byold *d, conn *c, const Byol__ListRequest *q)
{
	const char *filter = q->filter ? q->filter : "";
	while (*filter == ' ' || *filter == '\t')
		filter++;
	history_spec spec = {
		.where = &filter, .n_where = filter[0] ? 1 : 0, .label = "filter",
		.limit = q->limit ? q->limit : (unsigned)d->cfg.list_limit,
	};
	answer_history(d, c, &spec);
}

static void on_history(byold *d, conn *c, const Byol__HistoryRequest *q)
{
	history_spec spec = {
		.where = (const char *const *)q->where, .n_where = (int)q->n_where,
		.order = q->order, .limit = q->limit, .label = "where", .number_where = 1,
	};
	if (q->n_where > HISTORY_MAX_TERMS) {
		send_error(c, -EINVAL, "more than %d where terms", HISTORY_MAX_TERMS);
		return;
	}
	answer_history(d, c, &spec);
}

/* A client's answers queued past this close it: it sends requests and does not
 * read what they answer (twice the high water, at which its requests are no
 * longer read: only those of one read can still come in). */
#define CLIENT_QUEUE_MAX (2 * CONN_HIGH_WATER_DEFAULT)

void client_message(byold *d, conn *c, Byol__Envelope *e)
{
	if (conn_write_queue_size(c) > CLIENT_QUEUE_MAX) {
		conn_close(c, -ENOBUFS, "%zu MiB of answers wait for this client, which does not "
			   "read them", conn_write_queue_size(c) >> 20);
		return;
	}
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_SUBMIT:
		on_submit(d, c, e->submit);
		return;
	case BYOL__ENVELOPE__MSG_STATUS_REQUEST:
		on_status(d, c, e->status_request);
		return;
	case BYOL__ENVELOPE__MSG_LIST_REQUEST:
		on_list(d, c, e->list_request);
		return;
	case BYOL__ENVELOPE__MSG_HISTORY_REQUEST:
		on_history(d, c, e->history_request);
		return;
	case BYOL__ENVELOPE__MSG_EXPORT_REQUEST:
		export_start(d, c, e->export_request);
		return;
	case BYOL__ENVELOPE__MSG_METRICS_REQUEST:
		metrics_answer(d, c, e->metrics_request);
		return;
	case BYOL__ENVELOPE__MSG_SHOW_REQUEST:
		control_show(d, c, e->show_request);
		return;
	case BYOL__ENVELOPE__MSG_WATCH_REQUEST:
		watch_start(d, c, e->watch_request);
		return;
	case BYOL__ENVELOPE__MSG_CANCEL_REQUEST:
		control_cancel(d, c, e->cancel_request);
		return;
	case BYOL__ENVELOPE__MSG_RESUME_REQUEST:
		control_resume(d, c, e->resume_request);
		return;
	case BYOL__ENVELOPE__MSG_WORKERS_REQUEST:
		control_workers(d, c);
		return;
	case BYOL__ENVELOPE__MSG_HEARTBEAT:
		return;
	default:
		conn_close(c, -EPROTO, "unexpected %s from a client", frame_msg_name(e->msg_case));
	}
}

void client_closed(byold *d, conn *c, int code, const char *reason)
{
	dlog(DLOG_DEBUG, "conn %llu %s: client closed (%s)", (unsigned long long)conn_id(c),
	     conn_peer(c), code ? reason : "orderly");
	export_conn_closed(d, c);
	watch_conn_closed(d, c);
}

void client_congested(byold *d, conn *c, int on)
{
	/* its next requests wait until it has read most of what is queued */
	conn_set_reading(c, !on);
	export_conn_congested(d, c, on);
}
