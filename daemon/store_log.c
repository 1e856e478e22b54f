/*
 * store_log.c — what a run leaves behind in byold's SQLite store: per-step
 * metrics, evaluation results, checkpoints, the workers that served it, and
 * the event log. See include/byol/store.h for the contract; store.c opens the
 * store and prepares the statements used here, and store_internal.h holds
 * what the two files share.
 */
#include "byol/store.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

static double col_real(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

/* ---- per-step metrics ---- */

static int metric_put(store *s, int64_t run_id, const store_metric *m, char *err)
{
	sqlite3_stmt *st = s->st[ST_MET_PUT];
	const double v[5] = { m->loss, m->lr, m->tau, m->collapse, m->img_per_s };
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, m->step);
	sqlite3_bind_int(st, 3, m->epoch);
	for (int i = 0; i < 5; i++) /* NaN binds as NULL */
		if (isnan(v[i]))
			sqlite3_bind_null(st, 4 + i);
		else
			sqlite3_bind_double(st, 4 + i, v[i]);
	sqlite3_bind_int64(st, 9, m->unix_ms);
	return store_exec(s, ST_MET_PUT, err);
}

int store_metrics_add(store *s, int64_t run_id, const store_metric *m, char *err)
{
	store_op(s, "add metrics of run %ld step %ld", (long)run_id, (long)m->step);
	return metric_put(s, run_id, m, err);
}

int store_metrics_add_batch(store *s, int64_t run_id, const store_metric *m, int n, char *err)
{
	if (n <= 0)
		return n == 0 ? 0 : byol_err(err, -EINVAL, "run %ld: %d metric rows", (long)run_id, n);
	store_op(s, "add %d metric rows of run %ld", n, (long)run_id);
	int code = store_begin(s, err);
	if (code < 0)
		return code;
	for (int i = 0; i < n; i++) {
		store_op(s, "add metrics of run %ld step %ld (row %d of %d)", (long)run_id,
		   (long)m[i].step, i + 1, n);
		if ((code = metric_put(s, run_id, &m[i], err)) < 0)
			goto fail;
	}
	store_op(s, "commit %d metric rows of run %ld", n, (long)run_id);
	if ((code = store_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	store_rollback(s);
	return code;
}

int store_metrics_read(store *s, int64_t run_id, int64_t from_step, int64_t to_step,
		       store_metric_fn fn, void *ctx, char *err)
{
	store_op(s, "read metrics of run %ld", (long)run_id);
	int code = store_reentered(s, ST_MET_READ, err), rc;
	if (code < 0)
		return code;
	sqlite3_stmt *st = s->st[ST_MET_READ];
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, from_step);
	sqlite3_bind_int64(st, 3, to_step < 0 ? INT64_MAX : to_step);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_metric m = {
			.step = sqlite3_column_int64(st, 0),
			.epoch = sqlite3_column_int(st, 1),
			.loss = col_real(st, 2),
			.lr = col_real(st, 3),
			.tau = col_real(st, 4),
			.collapse = col_real(st, 5),
			.img_per_s = col_real(st, 6),
			.unix_ms = sqlite3_column_int64(st, 7),
		};
		if ((code = fn(&m, ctx)) != 0)
			break;
	}
	if (!code && rc != SQLITE_DONE)
		code = store_fail(s, rc, err);
	store_done(st);
	return code;
}

int store_metrics_count(store *s, int64_t run_id, int64_t *n, char *err)
{
	store_op(s, "count metrics of run %ld", (long)run_id);
	sqlite3_stmt *st = s->st[ST_MET_COUNT];
	sqlite3_bind_int64(st, 1, run_id);
	int rc = sqlite3_step(st), code = 0;
	*n = 0;
	if (rc == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		code = store_fail(s, rc, err);
	store_done(st);
	return code;
}

/* ---- evaluations ---- */

int store_eval_add(store *s, int64_t run_id, int64_t step, const char *kind, double value,
		   char *err)
{
	if (!kind || (strcmp(kind, "knn") != 0 && strcmp(kind, "probe") != 0))
		return byol_err(err, -EINVAL, "run %ld: evaluation kind '%s' is not knn or probe",
				(long)run_id, kind ? kind : "(null)");
	store_op(s, "add the %s evaluation of run %ld step %ld", kind, (long)run_id, (long)step);
	sqlite3_stmt *st = s->st[ST_EVAL_PUT];
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, step);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	if (isnan(value))
		sqlite3_bind_null(st, 4);
	else
		sqlite3_bind_double(st, 4, value);
	sqlite3_bind_int64(st, 5, store_now_ms());
	return store_exec(s, ST_EVAL_PUT, err);
}

int store_evals_read(store *s, int64_t run_id, store_eval_fn fn, void *ctx, char *err)
{
	store_op(s, "read evaluations of run %ld", (long)run_id);
	int code = store_reentered(s, ST_EVAL_READ, err), rc;
	if (code < 0)
		return code;
	sqlite3_stmt *st = s->st[ST_EVAL_READ];
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_eval e = { .step = sqlite3_column_int64(st, 0) };
		store_copy_col(e.kind, sizeof(e.kind), st, 1);
		e.value = col_real(st, 2);
		e.unix_ms = sqlite3_column_int64(st, 3);
		if ((code = fn(&e, ctx)) != 0)
			break;
	}
	if (!code && rc != SQLITE_DONE)
		code = store_fail(s, rc, err);
	store_done(st);
	return code;
}

/* ---- checkpoints ---- */

int store_checkpoint_add(store *s, int64_t run_id, int64_t step, const char *path,
			 const char *sha256, int64_t bytes, char *err)
{
	if (!path || !*path)
		return byol_err(err, -EINVAL, "run %ld: checkpoint without a path", (long)run_id);
	if (strlen(path) >= STORE_PATH_LEN)
		return byol_err(err, -ENAMETOOLONG, "run %ld: checkpoint path longer than %d bytes",
				(long)run_id, STORE_PATH_LEN - 1);
	if (!store_hex_ok(sha256, 64))
		return byol_err(err, -EINVAL, "%s: sha256 is not 64 lower-case hex digits", path);
	store_op(s, "record checkpoint %s of run %ld step %ld", path, (long)run_id, (long)step);
	sqlite3_stmt *st = s->st[ST_CK_PUT];
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, step);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, bytes);
	sqlite3_bind_int64(st, 6, store_now_ms());
	return store_exec(s, ST_CK_PUT, err);
}

static int checkpoint_row(sqlite3_stmt *st, void *p)
{
	store_checkpoint *c = p;
	c->run_id = sqlite3_column_int64(st, 0);
	c->step = sqlite3_column_int64(st, 1);
	store_copy_col(c->path, sizeof(c->path), st, 2);
	store_copy_col(c->sha256, sizeof(c->sha256), st, 3);
	c->bytes = sqlite3_column_int64(st, 4);
	c->created_ms = sqlite3_column_int64(st, 5);
	return 0;
}

/* up to limit (-1: all) checkpoints of run_id, newest first */
static int checkpoints(store *s, int64_t run_id, int limit, store_checkpoint **out, int *n,
		       char *err)
{
	sqlite3_stmt *st = s->st[ST_CK_LIST];
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int(st, 2, limit);
	return store_collect(s, st, sizeof(**out), checkpoint_row, NULL, (void **)out, n, err);
}

int store_checkpoint_latest(store *s, int64_t run_id, store_checkpoint *out, char *err)
{
	store_op(s, "find the latest checkpoint of run %ld", (long)run_id);
	store_checkpoint *c;
	int n, code = checkpoints(s, run_id, 1, &c, &n, err);
	if (code < 0)
		return code;
	if (n == 0)
		return byol_err(err, -ENOENT, "run %ld has no checkpoint", (long)run_id);
	*out = c[0];
	free(c);
	return 0;
}

int store_checkpoint_list(store *s, int64_t run_id, store_checkpoint **out, int *n, char *err)
{
	store_op(s, "list the checkpoints of run %ld", (long)run_id);
	return checkpoints(s, run_id, -1, out, n, err);
}

void store_paths_free(char **paths, int n)
{
	for (int i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

static int path_row(sqlite3_stmt *st, void *p)
{
	const char *t = (const char *)sqlite3_column_text(st, 0);
	return (*(char **)p = strdup(t ? t : "")) ? 0 : -ENOMEM;
}

static void path_release(void *p)
{
	free(*(char **)p);
}

int store_checkpoint_prune(store *s, int64_t run_id, int keep, char ***paths, int *n, char *err)
{
	*paths = NULL;
	*n = 0;
	if (keep < 0)
		return byol_err(err, -EINVAL, "run %ld: keep %d checkpoints", (long)run_id, keep);
	store_op(s, "prune the checkpoints of run %ld to %d", (long)run_id, keep);
	char **arr = NULL;
	int cnt = 0, code;
	/* the caller deletes files once this returns: the removal must be on disk */
	if ((code = store_exec(s, ST_SYNC_FULL, err)) < 0)
		return code;
	if ((code = store_begin(s, err)) < 0)
		goto out;
	sqlite3_stmt *q = s->st[ST_CK_OLD], *d = s->st[ST_CK_DELETE];
	sqlite3_bind_int64(q, 1, run_id);
	sqlite3_bind_int(q, 2, keep);
	if ((code = store_collect(s, q, sizeof(*arr), path_row, path_release, (void **)&arr, &cnt,
			    err)) < 0)
		goto out;
	sqlite3_bind_int64(d, 1, run_id);
	sqlite3_bind_int(d, 2, keep);
	if ((code = store_exec(s, ST_CK_DELETE, err)) < 0)
		goto out;
	if (sqlite3_changes(s->db) != cnt) {
		code = byol_err(err, -EIO, "%s: %s: selected %d rows but deleted %d", s->path, s->op,
				cnt, sqlite3_changes(s->db));
		goto out;
	}
	code = store_commit(s, err);
out:
	if (code < 0) {
		store_rollback(s);
		store_paths_free(arr, cnt);
	} else {
		*paths = arr;
		*n = cnt;
	}
	store_exec(s, ST_SYNC_NORMAL, NULL);
	return code;
}

/* ---- workers ---- */

int store_worker_seen(store *s, const char *name, const char *host, int threads, char *err)
{
	int code;
	if ((code = store_name_ok(name, "worker name", 0, err)) < 0 ||
	    (code = store_name_ok(host ? host : "", "worker host", 1, err)) < 0)
		return code;
	if (threads < 0)
		return byol_err(err, -EINVAL, "worker %s: %d threads", name, threads);
	store_op(s, "record worker %s", name);
	sqlite3_stmt *st = s->st[ST_WK_SEEN];
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, host ? host : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, threads);
	sqlite3_bind_int64(st, 4, store_now_ms());
	return store_exec(s, ST_WK_SEEN, err);
}

int store_worker_served(store *s, const char *name, int64_t run_id, int64_t shards, char *err)
{
	int code;
	if ((code = store_name_ok(name, "worker name", 0, err)) < 0)
		return code;
	if (shards < 0)
		return byol_err(err, -EINVAL, "worker %s: %ld shards", name, (long)shards);
	store_op(s, "record %ld shards of run %ld by worker %s", (long)shards, (long)run_id, name);
	int64_t now = store_now_ms();
	if ((code = store_begin(s, err)) < 0)
		return code;
	sqlite3_stmt *w = s->st[ST_WK_SERVED], *r = s->st[ST_RW_PUT];
	sqlite3_bind_text(w, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(w, 2, shards);
	sqlite3_bind_int64(w, 3, now);
	if ((code = store_exec(s, ST_WK_SERVED, err)) < 0)
		goto fail;
	if (sqlite3_changes(s->db) == 0) {
		code = byol_err(err, -ENOENT, "no worker named %s", name);
		goto fail;
	}
	sqlite3_bind_int64(r, 1, run_id);
	sqlite3_bind_text(r, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r, 3, shards);
	sqlite3_bind_int64(r, 4, now);
	if ((code = store_exec(s, ST_RW_PUT, err)) < 0 || (code = store_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	store_rollback(s);
	return code;
}

static int worker_row(sqlite3_stmt *st, void *p)
{
	store_worker *w = p;
	store_copy_col(w->name, sizeof(w->name), st, 0);
	store_copy_col(w->host, sizeof(w->host), st, 1);
	w->threads = sqlite3_column_int(st, 2);
	w->first_seen_ms = sqlite3_column_int64(st, 3);
	w->last_seen_ms = sqlite3_column_int64(st, 4);
	w->shards_done = sqlite3_column_int64(st, 5);
	return 0;
}

int store_worker_list(store *s, store_worker **out, int *n, char *err)
{
	store_op(s, "list workers");
	return store_collect(s, s->st[ST_WK_LIST], sizeof(**out), worker_row, NULL, (void **)out,
			     n, err);
}

static int run_worker_row(sqlite3_stmt *st, void *p)
{
	store_run_worker *w = p;
	store_copy_col(w->worker, sizeof(w->worker), st, 0);
	w->shards = sqlite3_column_int64(st, 1);
	w->first_ms = sqlite3_column_int64(st, 2);
	w->last_ms = sqlite3_column_int64(st, 3);
	return 0;
}

int store_run_workers(store *s, int64_t run_id, store_run_worker **out, int *n, char *err)
{
	store_op(s, "list the workers of run %ld", (long)run_id);
	sqlite3_bind_int64(s->st[ST_RW_LIST], 1, run_id);
	return store_collect(s, s->st[ST_RW_LIST], sizeof(**out), run_worker_row, NULL,
			     (void **)out, n, err);
}

/* ---- events ---- */

int store_event_add(store *s, int64_t run_id, store_level level, const char *message,
		    int64_t *id, char *err)
{
	if ((int)level < 0 || (int)level > STORE_ERROR)
		return byol_err(err, -EINVAL, "event level %d", (int)level);
	store_op(s, "add an event%s", run_id ? " of a run" : "");
	sqlite3_stmt *st = s->st[ST_EV_PUT];
	sqlite3_bind_int64(st, 1, store_now_ms());
	if (run_id)
		sqlite3_bind_int64(st, 2, run_id);
	sqlite3_bind_text(st, 3, store_level_name(level), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, message ? message : "", -1, SQLITE_STATIC);
	int code = store_exec(s, ST_EV_PUT, err);
	if (id)
		*id = code == 0 ? sqlite3_last_insert_rowid(s->db) : 0;
	return code;
}

static int event_row(sqlite3_stmt *st, void *p)
{
	store_event *e = p;
	const char *lv = (const char *)sqlite3_column_text(st, 3);
	e->id = sqlite3_column_int64(st, 0);
	e->unix_ms = sqlite3_column_int64(st, 1);
	e->run_id = sqlite3_column_int64(st, 2);
	e->level = STORE_INFO;
	for (int i = 0; lv && i <= STORE_ERROR; i++)
		if (strcmp(lv, store_level_name((store_level)i)) == 0)
			e->level = (store_level)i;
	store_copy_col(e->message, sizeof(e->message), st, 4);
	return 0;
}

int store_event_list(store *s, const store_event_filter *f, store_event **out, int *n, char *err)
{
	store_event_filter all = { 0 };
	if (!f)
		f = &all;
	store_op(s, "list events");
	int id = f->run_id ? (f->newest_first ? ST_EV_RUN_DESC : ST_EV_RUN)
			   : (f->newest_first ? ST_EV_ALL_DESC : ST_EV_ALL);
	sqlite3_stmt *st = s->st[id];
	if (f->run_id)
		sqlite3_bind_int64(st, 1, f->run_id);
	sqlite3_bind_int64(st, 2, f->after_id);
	sqlite3_bind_int(st, 3, f->limit > 0 ? f->limit : -1);
	return store_collect(s, st, sizeof(**out), event_row, NULL, (void **)out, n, err);
}
