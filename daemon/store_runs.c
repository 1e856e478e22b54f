/*
 * store_runs.c — experiments and runs in the store: adding an experiment with
 * its runs, reading them, listing, status transitions and step progress. See
 * include/byol/store.h for the contract; store.c opens the database and holds
 * the statements and helpers (store_internal.h).
 */
#include "byol/store.h"
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store_internal.h"

/* ---- experiments and runs ---- */

int store_experiment_add(store *s, const char *name, const char *config_json,
			 const char *ini_text, const store_run_spec *runs, int n_runs,
			 int64_t *experiment_id, int64_t *run_ids, char *err)
{
	int code;
	*experiment_id = 0;
	if ((code = store_name_ok(name, "experiment name", 0, err)) < 0)
		return code;
	if (n_runs < 1 || !runs)
		return byol_err(err, -EINVAL, "experiment '%s': %d runs (at least 1)", name, n_runs);
	if (!config_json)
		return byol_err(err, -EINVAL, "experiment '%s': no config JSON", name);
	for (int i = 0; i < n_runs; i++) {
		if ((code = store_name_ok(runs[i].name, "run name", 0, err)) < 0)
			return code;
		if (!runs[i].config_json)
			return byol_err(err, -EINVAL, "run '%s': no config JSON", runs[i].name);
		if (!store_hex_ok(runs[i].config_hash, 16))
			return byol_err(err, -EINVAL, "run '%s': config hash '%s' is not 16 hex "
					"digits", runs[i].name,
					runs[i].config_hash ? runs[i].config_hash : "(null)");
		if (runs[i].seed > (uint64_t)INT64_MAX || runs[i].total_steps < 0)
			return byol_err(err, -EINVAL, "run '%s': seed or total_steps out of range",
					runs[i].name);
	}
	int64_t now = store_now_ms();
	store_op(s, "add experiment '%s'", name);
	if ((code = store_begin(s, err)) < 0)
		return code;
	sqlite3_stmt *e = s->st[ST_EXP_INSERT], *r = s->st[ST_RUN_INSERT];
	sqlite3_bind_text(e, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(e, 2, now);
	sqlite3_bind_int(e, 3, n_runs);
	sqlite3_bind_text(e, 4, config_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(e, 5, ini_text, -1, SQLITE_STATIC); /* NULL binds NULL */
	if ((code = store_exec(s, ST_EXP_INSERT, err)) < 0)
		goto fail;
	int64_t eid = sqlite3_last_insert_rowid(s->db);
	for (int i = 0; i < n_runs; i++) {
		sqlite3_bind_int64(r, 1, eid);
		sqlite3_bind_int(r, 2, i);
		sqlite3_bind_text(r, 3, runs[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(r, 4, runs[i].config_hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(r, 5, (int64_t)runs[i].seed);
		sqlite3_bind_int64(r, 6, now);
		sqlite3_bind_int64(r, 7, runs[i].total_steps);
		sqlite3_bind_text(r, 8, runs[i].config_json, -1, SQLITE_STATIC);
		store_op(s, "add run '%s' of experiment '%s'", runs[i].name, name);
		if ((code = store_exec(s, ST_RUN_INSERT, err)) < 0)
			goto fail;
		if (run_ids)
			run_ids[i] = sqlite3_last_insert_rowid(s->db);
	}
	store_op(s, "add experiment '%s'", name);
	if ((code = store_commit(s, err)) < 0)
		goto fail;
	*experiment_id = eid;
	return 0;
fail:
	store_rollback(s);
	return code;
}

int store_experiment_get(store *s, int64_t id, store_experiment *out, char *err)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st = s->st[ST_EXP_GET];
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st), code = 0, oom = 0;
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		store_copy_col(out->name, sizeof(out->name), st, 1);
		out->created_ms = sqlite3_column_int64(st, 2);
		out->n_runs = sqlite3_column_int(st, 3);
		out->config_json = store_dup_col(st, 4, &oom);
		out->ini_text = store_dup_col(st, 5, &oom);
		if (oom) {
			store_experiment_release(out);
			code = byol_err(err, -ENOMEM, "experiment %ld: out of memory", (long)id);
		}
	} else if (rc == SQLITE_DONE) {
		code = byol_err(err, -ENOENT, "no experiment %ld", (long)id);
	} else {
		store_op(s, "read experiment %ld", (long)id);
		code = store_fail(s, rc, err);
	}
	store_done(st);
	return code;
}

void store_experiment_release(store_experiment *e)
{
	if (!e)
		return;
	free(e->config_json);
	free(e->ini_text);
	e->config_json = e->ini_text = NULL;
}

int store_run_from_row(sqlite3_stmt *st, store_run *r)
{
	int oom = 0;
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->experiment_id = sqlite3_column_int64(st, 1);
	r->sweep_index = sqlite3_column_int(st, 2);
	store_status_parse((const char *)sqlite3_column_text(st, 3), &r->status, NULL);
	store_copy_col(r->name, sizeof(r->name), st, 4);
	store_copy_col(r->config_hash, sizeof(r->config_hash), st, 5);
	r->seed = (uint64_t)sqlite3_column_int64(st, 6);
	r->created_ms = sqlite3_column_int64(st, 7);
	r->started_ms = sqlite3_column_int64(st, 8);   /* NULL reads as 0 */
	r->finished_ms = sqlite3_column_int64(st, 9);
	r->total_steps = sqlite3_column_int64(st, 10);
	r->step = sqlite3_column_int64(st, 11);
	store_copy_col(r->message, sizeof(r->message), st, 12);
	r->config_json = store_dup_col(st, 13, &oom);
	r->final_json = store_dup_col(st, 14, &oom);
	if (oom) {
		store_run_release(r);
		return -ENOMEM;
	}
	return 0;
}

/* first row of statement id (bound by the caller) into *out; -ENOENT if none */
static int run_one(store *s, int id, store_run *out, char *err)
{
	sqlite3_stmt *st = s->st[id];
	int rc = sqlite3_step(st), code = 0;
	memset(out, 0, sizeof(*out));
	if (rc == SQLITE_ROW) {
		if (store_run_from_row(st, out) < 0)
			code = byol_err(err, -ENOMEM, "%s: out of memory", s->op);
	} else if (rc == SQLITE_DONE) {
		code = -ENOENT;
	} else {
		code = store_fail(s, rc, err);
	}
	store_done(st);
	return code;
}

int store_run_get(store *s, int64_t id, store_run *out, char *err)
{
	store_op(s, "read run %ld", (long)id);
	sqlite3_bind_int64(s->st[ST_RUN_GET], 1, id);
	int code = run_one(s, ST_RUN_GET, out, err);
	return code == -ENOENT ? byol_err(err, code, "no run %ld", (long)id) : code;
}

int store_run_next_queued(store *s, store_run *out, char *err)
{
	store_op(s, "find the next queued run");
	int code = run_one(s, ST_RUN_NEXT, out, err);
	return code == -ENOENT ? byol_err(err, code, "no run is queued") : code;
}

void store_run_release(store_run *r)
{
	if (!r)
		return;
	free(r->config_json);
	free(r->final_json);
	r->config_json = r->final_json = NULL;
}

void store_runs_free(store_run *runs, int n)
{
	for (int i = 0; runs && i < n; i++)
		store_run_release(&runs[i]);
	free(runs);
}

static int run_row(sqlite3_stmt *st, void *r)
{
	return store_run_from_row(st, r);
}

static void run_release(void *r)
{
	store_run_release(r);
}

int store_run_list(store *s, const store_run_filter *f, store_run **out, int *n, char *err)
{
	store_run_filter all = { .any_status = 1 };
	if (!f)
		f = &all;
	store_op(s, "list runs");
	int id = f->any_status ? (f->experiment_id ? ST_RUN_LIST_E : ST_RUN_LIST)
			       : (f->experiment_id ? ST_RUN_LIST_ES : ST_RUN_LIST_S);
	sqlite3_stmt *st = s->st[id];
	if (!f->any_status)
		sqlite3_bind_text(st, 1, store_status_name(f->status), -1, SQLITE_STATIC);
	if (f->experiment_id)
		sqlite3_bind_int64(st, 2, f->experiment_id);
	sqlite3_bind_int(st, 3, f->limit > 0 ? f->limit : -1);
	return store_collect(s, st, sizeof(**out), run_row, run_release, (void **)out, n, err);
}

/* Moves run id to `to` (checking the transition) in one transaction; sets
 * final_json when set_final. */
static int move(store *s, int64_t id, store_status to, const char *message, int set_final,
		const char *final_json, char *err)
{
	if (strcmp(store_status_name(to), "?") == 0)
		return byol_err(err, -EINVAL, "run %ld: bad status %d", (long)id, (int)to);
	store_op(s, "move run %ld to %s", (long)id, store_status_name(to));
	int code = store_begin(s, err), rc;
	if (code < 0)
		return code;
	sqlite3_stmt *q = s->st[ST_RUN_STATUS], *u = s->st[ST_RUN_MOVE];
	store_status from = STORE_QUEUED;
	sqlite3_bind_int64(q, 1, id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		store_status_parse((const char *)sqlite3_column_text(q, 0), &from, NULL);
	else if (rc == SQLITE_DONE)
		code = byol_err(err, -ENOENT, "no run %ld", (long)id);
	else
		code = store_fail(s, rc, err);
	store_done(q);
	if (code < 0)
		goto fail;
	if (!store_transition_ok(from, to)) {
		code = byol_err(err, -EINVAL, "run %ld: cannot move from %s to %s", (long)id,
				store_status_name(from), store_status_name(to));
		goto fail;
	}
	sqlite3_bind_int64(u, 1, id);
	sqlite3_bind_text(u, 2, store_status_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(u, 3, store_now_ms());
	sqlite3_bind_text(u, 4, message, -1, SQLITE_STATIC);
	sqlite3_bind_int(u, 5, set_final);
	sqlite3_bind_text(u, 6, final_json, -1, SQLITE_STATIC);
	if ((code = store_exec(s, ST_RUN_MOVE, err)) < 0 || (code = store_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	store_rollback(s);
	return code;
}

int store_run_set_status(store *s, int64_t id, store_status to, const char *message, char *err)
{
	return move(s, id, to, message, 0, NULL, err);
}

int store_run_finish(store *s, int64_t id, store_status to, const char *final_json,
		     const char *message, char *err)
{
	if (to != STORE_COMPLETED && to != STORE_FAILED && to != STORE_CANCELLED)
		return byol_err(err, -EINVAL, "run %ld: cannot finish as %s", (long)id,
				store_status_name(to));
	return move(s, id, to, message, 1, final_json, err);
}

int store_run_note(store *s, int64_t id, const char *message, char *err)
{
	sqlite3_bind_int64(s->st[ST_RUN_NOTE], 1, id);
	sqlite3_bind_text(s->st[ST_RUN_NOTE], 2, message, -1, SQLITE_STATIC);
	store_op(s, "set the message of run %ld", (long)id);
	int code = store_exec(s, ST_RUN_NOTE, err);
	if (code == 0 && sqlite3_changes(s->db) == 0)
		code = byol_err(err, -ENOENT, "no running run %ld", (long)id);
	return code;
}

int store_run_set_step(store *s, int64_t id, int64_t step, char *err)
{
	if (step < 0)
		return byol_err(err, -EINVAL, "run %ld: step %ld < 0", (long)id, (long)step);
	sqlite3_bind_int64(s->st[ST_RUN_STEP], 1, id);
	sqlite3_bind_int64(s->st[ST_RUN_STEP], 2, step);
	store_op(s, "set the step of run %ld", (long)id);
	int code = store_exec(s, ST_RUN_STEP, err);
	if (code == 0 && sqlite3_changes(s->db) == 0)
		code = byol_err(err, -ENOENT, "no run %ld", (long)id);
	return code;
}

