/*
 * test_store.c — byold's SQLite store: schema creation and refusal of files it
 * must not touch, experiments with their sweep runs, the run state machine,
 * metrics that replace rather than double, checkpoint pruning, workers, events,
 * data surviving a reopen, and a full disk that loses nothing committed.
 * Each test gets its own temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byol/store.h"

typedef struct {
	char dir[64];
	char db[192];
	char mnt[128];   /* non-empty while a tmpfs is mounted there */
	store *s;
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/byol-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/byold.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	store_close(f->s);
	if (f->mnt[0])
		umount2(f->mnt, MNT_DETACH);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static store *open_ok(fixture *f)
{
	char err[BYOL_ERR_LEN] = "";
	int rc = store_open(&f->s, f->db, err);
	if (rc)
		print_error("store_open: %s\n", err);
	assert_int_equal(rc, 0);
	return f->s;
}

static void reopen(fixture *f)
{
	store_close(f->s);
	f->s = NULL;
	open_ok(f);
}

/* runs "name/i" whose config differs in predictor_norm (bn for even i) */
static int64_t add_experiment(store *s, const char *name, int n, int64_t *run_ids)
{
	char names[16][32], cfg[16][128], err[BYOL_ERR_LEN] = "";
	store_run_spec spec[16];
	assert_true(n <= 16);
	for (int i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "%s/%d", name, i);
		snprintf(cfg[i], sizeof(cfg[i]), "{\"model\":{\"predictor_norm\":\"%s\"},\"i\":%d}",
			 i % 2 ? "none" : "bn", i);
		spec[i] = (store_run_spec){ .name = names[i], .config_json = cfg[i],
					    .config_hash = "0123456789abcdef", .seed = 100 + i,
					    .total_steps = 1000 };
	}
	int64_t eid = 0;
	int rc = store_experiment_add(s, name, "{\"model\":{},\"sweep\":{}}", "[experiment]\n",
				      spec, n, &eid, run_ids, err);
	if (rc)
		print_error("store_experiment_add: %s\n", err);
	assert_int_equal(rc, 0);
	assert_true(eid > 0);
	return eid;
}

static int64_t one_run(store *s)
{
	int64_t id;
	add_experiment(s, "one", 1, &id);
	return id;
}

static int64_t sql_int(store *s, const char *q)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_sqlite(s), q, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void raw_exec(const char *path, const char *q)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		print_error("'%s' does not contain '%s'\n", hay, needle);
	assert_non_null(strstr(hay, needle));
}

/* ---- open, schema, refusals ---- */

static void test_create_and_reopen(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(s, "PRAGMA foreign_keys"), 1);
	assert_int_equal(sql_int(s, "PRAGMA synchronous"), 1); /* NORMAL */
	assert_int_equal(sql_int(s, "SELECT count(*) FROM pragma_journal_mode WHERE "
				    "journal_mode = 'wal'"), 1);
	assert_int_equal(sql_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
				    "name IN ('experiments','runs','metrics','evals','checkpoints',"
				    "'workers','run_workers','events')"), 8);
	/* metrics are keyed (run_id, step) without a rowid */
	assert_int_equal(sql_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'metrics' "
				    "AND sql LIKE '%PRIMARY KEY (run_id, step)) WITHOUT ROWID'"), 1);
	reopen(f);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
				       "AND name = 'runs'"), 1);
}

static void test_newer_schema_refused(void **state)
{
	fixture *f = *state;
	open_ok(f);
	store_close(f->s);
	f->s = NULL;
	raw_exec(f->db, "PRAGMA user_version = 7");
	char err[BYOL_ERR_LEN] = "";
	store *s = (store *)1;
	assert_int_equal(store_open(&s, f->db, err), -EPROTO);
	assert_null(s);
	assert_contains(err, f->db);
	assert_contains(err, "schema version 7 is newer");
	/* left as it was */
	char set[64];
	snprintf(set, sizeof(set), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
	raw_exec(f->db, set);
	open_ok(f);
}

static int64_t index_count(store *s, const char *name)
{
	char q[160];
	snprintf(q, sizeof(q), "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
		 "name = '%s'", name);
	return sql_int(s, q);
}

/* A database of schema version 1 (before the history indexes) with a run in it
 * moves to the current version on open, keeping its data; the new indexes are
 * there and used. */
static void test_migrates_version_1(void **state)
{
	fixture *f = *state;
	int64_t id = one_run(open_ok(f));
	store_close(f->s);
	f->s = NULL;
	raw_exec(f->db, "DROP INDEX experiments_by_name; DROP INDEX runs_by_finished;"
			" PRAGMA user_version = 1");
	store *s = open_ok(f);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(index_count(s, "experiments_by_name"), 1);
	assert_int_equal(index_count(s, "runs_by_finished"), 1);
	store_run r;
	char err[BYOL_ERR_LEN] = "";
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	assert_string_equal(r.name, "one/0");
	store_run_release(&r);
	/* the planner finds an experiment by name through the index */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_sqlite(s), "EXPLAIN QUERY PLAN SELECT id FROM "
					    "experiments WHERE name = 'one'", -1, &st, NULL),
			 SQLITE_OK);
	int used = 0;
	while (sqlite3_step(st) == SQLITE_ROW)
		used |= strstr((const char *)sqlite3_column_text(st, 3), "experiments_by_name") != NULL;
	sqlite3_finalize(st);
	assert_true(used);
}

static void test_not_a_database_refused(void **state)
{
	fixture *f = *state;
	FILE *fp = fopen(f->db, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fprintf(fp, "[experiment]\nname = not a database %d\n", i);
	fclose(fp);
	struct stat before, after;
	assert_int_equal(stat(f->db, &before), 0);
	char err[BYOL_ERR_LEN] = "";
	store *s = (store *)1;
	assert_int_equal(store_open(&s, f->db, err), -EIO);
	assert_null(s);
	assert_contains(err, f->db);
	assert_contains(err, "not a SQLite database");
	assert_int_equal(stat(f->db, &after), 0);
	assert_int_equal(before.st_size, after.st_size);
}

static void test_foreign_database_refused(void **state)
{
	fixture *f = *state;
	raw_exec(f->db, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)");
	char err[BYOL_ERR_LEN] = "";
	store *s = NULL;
	assert_int_equal(store_open(&s, f->db, err), -EIO);
	assert_contains(err, f->db);
	assert_contains(err, "not a byold database");
	raw_exec(f->db, "DROP TABLE accounts; PRAGMA application_id = 42");
	assert_int_equal(store_open(&s, f->db, err), -EIO);
	assert_contains(err, "application_id");
}

/* ---- experiments and runs ---- */

static void test_experiment_sweep_queued_in_order(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t ids[4];
	int64_t eid = add_experiment(s, "byol-fmnist", 4, ids);
	for (int i = 1; i < 4; i++)
		assert_true(ids[i] > ids[i - 1]);

	store_run_filter flt = { .any_status = 1, .experiment_id = eid };
	store_run *runs;
	int n;
	assert_int_equal(store_run_list(s, &flt, &runs, &n, err), 0);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++) { /* newest first */
		const store_run *r = &runs[i];
		char name[32];
		snprintf(name, sizeof(name), "byol-fmnist/%d", 3 - i);
		assert_int_equal(r->id, ids[3 - i]);
		assert_int_equal(r->sweep_index, 3 - i);
		assert_string_equal(r->name, name);
		assert_int_equal(r->status, STORE_QUEUED);
		assert_int_equal(r->seed, 103 - i);
		assert_int_equal(r->total_steps, 1000);
		assert_int_equal(r->step, 0);
		assert_true(r->created_ms > 1600000000000);
		assert_int_equal(r->started_ms, 0);
		assert_null(r->final_json);
		assert_string_equal(r->config_hash, "0123456789abcdef");
		assert_non_null(strstr(r->config_json, (3 - i) % 2 ? "\"none\"" : "\"bn\""));
	}
	store_runs_free(runs, n);

	store_experiment e;
	assert_int_equal(store_experiment_get(s, eid, &e, err), 0);
	assert_string_equal(e.name, "byol-fmnist");
	assert_int_equal(e.n_runs, 4);
	assert_string_equal(e.ini_text, "[experiment]\n");
	assert_string_equal(e.config_json, "{\"model\":{},\"sweep\":{}}");
	store_experiment_release(&e);
	assert_int_equal(store_experiment_get(s, eid + 1, &e, err), -ENOENT);

	/* the stored config answers json_extract, as history queries will */
	assert_int_equal(sql_int(s, "SELECT count(*) FROM runs WHERE "
				    "json_extract(config_json, '$.model.predictor_norm') = 'bn'"), 2);
}

static void test_experiment_is_one_transaction(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	store_run_spec spec[3];
	for (int i = 0; i < 3; i++)
		spec[i] = (store_run_spec){ .name = "r", .config_json = "{\"a\":1}",
					    .config_hash = "00000000000000ff", .total_steps = 1 };
	spec[2].config_json = "{\"a\":";   /* malformed: the third run fails in SQL */
	int64_t eid = -1, ids[3];
	assert_int_equal(store_experiment_add(s, "x", "{}", NULL, spec, 3, &eid, ids, err), -EINVAL);
	assert_int_equal(eid, 0);
	assert_contains(err, "config_json_is_object");
	spec[2].config_json = "[1, 2]";    /* JSON, but not an object */
	assert_int_equal(store_experiment_add(s, "x", "{}", NULL, spec, 3, &eid, ids, err), -EINVAL);
	spec[2].config_json = "{}";
	spec[1].config_hash = "0123";
	assert_int_equal(store_experiment_add(s, "x", "{}", NULL, spec, 3, &eid, ids, err), -EINVAL);
	assert_contains(err, "0123");
	assert_int_equal(sql_int(s, "SELECT count(*) FROM experiments"), 0);
	assert_int_equal(sql_int(s, "SELECT count(*) FROM runs"), 0);
	spec[1].config_hash = "00000000000000ff";
	assert_int_equal(store_experiment_add(s, "x", "{}", NULL, spec, 3, &eid, ids, err), 0);
	assert_int_equal(sql_int(s, "SELECT count(*) FROM runs"), 3);
}

static void test_next_queued_is_oldest(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t a[2], b[1];
	add_experiment(s, "a", 2, a);
	add_experiment(s, "b", 1, b);
	store_run r;
	assert_int_equal(store_run_next_queued(s, &r, err), 0);
	assert_int_equal(r.id, a[0]);
	store_run_release(&r);
	assert_int_equal(store_run_set_status(s, a[0], STORE_RUNNING, NULL, err), 0);
	assert_int_equal(store_run_next_queued(s, &r, err), 0);
	assert_int_equal(r.id, a[1]);
	store_run_release(&r);
	assert_int_equal(store_run_set_status(s, a[1], STORE_CANCELLED, "by user", err), 0);
	assert_int_equal(store_run_next_queued(s, &r, err), 0);
	assert_int_equal(r.id, b[0]);
	store_run_release(&r);
	assert_int_equal(store_run_set_status(s, b[0], STORE_RUNNING, NULL, err), 0);
	assert_int_equal(store_run_next_queued(s, &r, err), -ENOENT);

	/* recovery: the running runs, newest first */
	store_run_filter flt = { .status = STORE_RUNNING };
	store_run *runs;
	int n;
	assert_int_equal(store_run_list(s, &flt, &runs, &n, err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(runs[0].id, b[0]);
	assert_int_equal(runs[1].id, a[0]);
	store_runs_free(runs, n);
	flt.limit = 1;
	assert_int_equal(store_run_list(s, &flt, &runs, &n, err), 0);
	assert_int_equal(n, 1);
	store_runs_free(runs, n);
	flt = (store_run_filter){ .status = STORE_COMPLETED };
	assert_int_equal(store_run_list(s, &flt, &runs, &n, err), 0);
	assert_int_equal(n, 0);
	assert_null(runs);
}

static void test_status_transitions(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s);
	store_run r;

	assert_int_equal(store_run_set_status(s, id, STORE_COMPLETED, NULL, err), -EINVAL);
	assert_contains(err, "from queued to completed");
	assert_int_equal(store_run_finish(s, id, STORE_COMPLETED, "{}", NULL, err), -EINVAL);

	assert_int_equal(store_run_note(s, id, "not running yet", err), -ENOENT);
	assert_contains(err, "no running run");
	assert_int_equal(store_run_set_status(s, id, STORE_RUNNING, "started", err), 0);
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	int64_t started = r.started_ms;
	assert_true(started > 0);
	assert_int_equal(r.finished_ms, 0);
	assert_string_equal(r.message, "started");
	store_run_release(&r);
	assert_int_equal(store_run_set_status(s, id, STORE_RUNNING, NULL, err), -EINVAL);
	assert_contains(err, "from running to running");

	/* a running run's message changes, its status and times stay */
	assert_int_equal(store_run_note(s, id, "cancel requested", err), 0);
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	assert_int_equal(r.status, STORE_RUNNING);
	assert_int_equal(r.started_ms, started);
	assert_string_equal(r.message, "cancel requested");
	store_run_release(&r);
	assert_int_equal(store_run_set_status(s, id, STORE_INTERRUPTED, "coordinator restart", err), 0);
	assert_int_equal(store_run_note(s, id, "too late", err), -ENOENT);
	assert_int_equal(store_run_set_status(s, id, STORE_COMPLETED, NULL, err), -EINVAL);
	assert_contains(err, "from interrupted to completed");
	usleep(5000);
	assert_int_equal(store_run_set_status(s, id, STORE_RUNNING, NULL, err), 0);
	assert_int_equal(store_run_set_step(s, id, 420, err), 0);
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	assert_int_equal(r.started_ms, started);             /* the first start is kept */
	assert_string_equal(r.message, "coordinator restart"); /* NULL keeps the message */
	assert_int_equal(r.step, 420);
	store_run_release(&r);

	/* a bad final_json leaves the run as it was */
	assert_int_equal(store_run_finish(s, id, STORE_COMPLETED, "{\"probe_acc\":", NULL, err),
			 -EINVAL);
	assert_int_equal(store_run_finish(s, id, STORE_RUNNING, "{}", NULL, err), -EINVAL);
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	assert_int_equal(r.status, STORE_RUNNING);
	assert_null(r.final_json);
	store_run_release(&r);

	assert_int_equal(store_run_finish(s, id, STORE_COMPLETED,
					  "{\"probe_acc\":0.871,\"knn_acc\":0.82}", "done", err), 0);
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	assert_int_equal(r.status, STORE_COMPLETED);
	assert_true(r.finished_ms >= r.started_ms);
	assert_string_equal(r.final_json, "{\"probe_acc\":0.871,\"knn_acc\":0.82}");
	store_run_release(&r);
	assert_int_equal(sql_int(s, "SELECT count(*) FROM runs WHERE "
				    "json_extract(final_json, '$.probe_acc') > 0.86"), 1);

	for (int to = STORE_QUEUED; to <= STORE_INTERRUPTED; to++)
		assert_int_equal(store_run_set_status(s, id, (store_status)to, NULL, err), -EINVAL);
	assert_contains(err, "from completed to interrupted");
	assert_int_equal(store_run_set_status(s, id + 100, STORE_RUNNING, NULL, err), -ENOENT);
	assert_int_equal(store_run_set_step(s, id + 100, 1, err), -ENOENT);
	assert_int_equal(store_run_note(s, id + 100, "x", err), -ENOENT);
	assert_int_equal(store_run_get(s, id + 100, &r, err), -ENOENT);

	store_status st;
	assert_int_equal(store_status_parse("interrupted", &st, err), 0);
	assert_int_equal(st, STORE_INTERRUPTED);
	assert_int_equal(store_status_parse("done", &st, err), -EINVAL);
}

/* A resume: failed, cancelled and interrupted runs may go back to queued
 * (finished_ms cleared, started_ms kept); a completed run may not. */
static void test_resume_transitions(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s);
	store_run r;
	static const store_status ends[] = { STORE_FAILED, STORE_CANCELLED, STORE_INTERRUPTED };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_run_set_status(s, id, STORE_RUNNING, NULL, err), 0);
		assert_int_equal(store_run_set_status(s, id, ends[i], "stopped", err), 0);
		assert_int_equal(store_run_set_status(s, id, STORE_QUEUED, "resumed", err), 0);
		assert_int_equal(store_run_get(s, id, &r, err), 0);
		assert_int_equal(r.status, STORE_QUEUED);
		assert_int_equal(r.finished_ms, 0);
		assert_true(r.started_ms > 0);
		assert_string_equal(r.message, "resumed");
		store_run_release(&r);
	}
	assert_int_equal(store_run_set_status(s, id, STORE_QUEUED, NULL, err), -EINVAL);
	assert_contains(err, "from queued to queued");
	assert_int_equal(store_run_set_status(s, id, STORE_RUNNING, NULL, err), 0);
	assert_int_equal(store_run_finish(s, id, STORE_COMPLETED, "{}", NULL, err), 0);
	assert_int_equal(store_run_set_status(s, id, STORE_QUEUED, NULL, err), -EINVAL);
	assert_contains(err, "from completed to queued");
}

/* ---- metrics ---- */

typedef struct {
	store_metric rows[2000];
	int n;
	int stop_after;   /* > 0: return 7 after that many rows */
	store *s;         /* when set, the callback re-enters the store */
	int inner_rc;
} collected;

static int collect_metric(const store_metric *m, void *ctx)
{
	collected *c = ctx;
	if (c->n < 2000)
		c->rows[c->n] = *m;
	c->n++;
	if (c->s) {
		char err[BYOL_ERR_LEN];
		c->inner_rc = store_metrics_read(c->s, 1, 0, -1, collect_metric, ctx, err);
		assert_int_equal(store_event_add(c->s, 0, STORE_INFO, "from a callback", NULL, err),
				 0);
		c->s = NULL;
	}
	return c->stop_after > 0 && c->n >= c->stop_after ? 7 : 0;
}

static store_metric metric(int64_t step, double loss)
{
	return (store_metric){ .step = step, .epoch = (int)(step / 100), .loss = loss,
			       .lr = 0.2, .tau = 0.99, .collapse = 0.9, .img_per_s = 5000,
			       .unix_ms = 1700000000000 + step };
}

static void test_metrics_step_redone_replaces(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s), n;
	store_metric m = metric(5, 1.5);
	assert_int_equal(store_metrics_add(s, id, &m, err), 0);
	m.loss = 1.25;
	m.unix_ms += 60000;
	assert_int_equal(store_metrics_add(s, id, &m, err), 0); /* after a restart */
	assert_int_equal(store_metrics_count(s, id, &n, err), 0);
	assert_int_equal(n, 1);
	static collected c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_metrics_read(s, id, 0, -1, collect_metric, &c, err), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.rows[0].step, 5);
	assert_true(c.rows[0].loss == 1.25);
	assert_int_equal(c.rows[0].unix_ms, m.unix_ms);

	/* a diverged loss is kept as NaN */
	m = metric(6, NAN);
	assert_int_equal(store_metrics_add(s, id, &m, err), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_metrics_read(s, id, 6, 6, collect_metric, &c, err), 0);
	assert_int_equal(c.n, 1);
	assert_true(isnan(c.rows[0].loss));
	assert_true(c.rows[0].tau == 0.99);

	/* metrics of a run that does not exist */
	assert_int_equal(store_metrics_add(s, id + 1, &m, err), -EINVAL);
	assert_contains(err, "FOREIGN KEY");
}

static void test_metrics_batch(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s), n;
	assert_int_equal(id, 1); /* collect_metric's re-entry reads run 1 */
	static store_metric m[1000];
	for (int i = 0; i < 1000; i++)
		m[i] = metric(i, 10.0 - i * 0.001);
	assert_int_equal(store_metrics_add_batch(s, id, m, 1000, err), 0);
	assert_int_equal(store_metrics_count(s, id, &n, err), 0);
	assert_int_equal(n, 1000);

	static collected c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_metrics_read(s, id, 100, 199, collect_metric, &c, err), 0);
	assert_int_equal(c.n, 100);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(c.rows[i].step, 100 + i);
		assert_true(c.rows[i].loss == m[100 + i].loss);
		assert_int_equal(c.rows[i].epoch, 1);
	}
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	assert_int_equal(store_metrics_read(s, id, 0, -1, collect_metric, &c, err), 7);
	assert_int_equal(c.n, 3);

	/* the callback may write, but not restart the same walk */
	memset(&c, 0, sizeof(c));
	c.s = s;
	assert_int_equal(store_metrics_read(s, id, 0, 9, collect_metric, &c, err), 0);
	assert_int_equal(c.inner_rc, -EBUSY);
	assert_int_equal(c.n, 10);

	/* one bad row: none of the batch is kept, not even the re-done steps */
	for (int i = 0; i < 1000; i++)
		m[i] = metric(900 + i, 1.0);
	m[500].step = -1;
	assert_int_equal(store_metrics_add_batch(s, id, m, 1000, err), -EINVAL);
	assert_contains(err, "step -1");
	assert_int_equal(store_metrics_count(s, id, &n, err), 0);
	assert_int_equal(n, 1000);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_metrics_read(s, id, 900, -1, collect_metric, &c, err), 0);
	assert_int_equal(c.n, 100);
	assert_true(c.rows[0].loss != 1.0);
}

static int collect_eval(const store_eval *e, void *ctx)
{
	store_eval *out = ctx;
	int i = 0;
	while (out[i].kind[0])
		i++;
	out[i] = *e;
	return 0;
}

static void test_evals(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s);
	assert_int_equal(store_eval_add(s, id, 200, "probe", 0.70, err), 0);
	assert_int_equal(store_eval_add(s, id, 200, "knn", 0.50, err), 0);
	assert_int_equal(store_eval_add(s, id, 200, "knn", 0.55, err), 0);
	assert_int_equal(store_eval_add(s, id, 100, "knn", 0.40, err), 0);
	assert_int_equal(store_eval_add(s, id, 300, "linear", 0.9, err), -EINVAL);
	store_eval got[8];
	memset(got, 0, sizeof(got));
	assert_int_equal(store_evals_read(s, id, collect_eval, got, err), 0);
	assert_int_equal(got[0].step, 100);
	assert_int_equal(got[1].step, 200);
	assert_string_equal(got[1].kind, "knn");
	assert_true(got[1].value == 0.55);
	assert_string_equal(got[2].kind, "probe");
	assert_true(got[2].value == 0.70);
	assert_int_equal(got[3].kind[0], 0);
}

/* ---- checkpoints ---- */

static const char *SHA = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

static void test_checkpoint_prune_keeps_newest(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "", path[64];
	int64_t id = one_run(s), other = one_run(s);
	for (int k = 1; k <= 5; k++) {
		snprintf(path, sizeof(path), "/var/lib/byold/ck/%d.safetensors", k * 200);
		assert_int_equal(store_checkpoint_add(s, id, k * 200, path, SHA, 1000 + k, err), 0);
	}
	assert_int_equal(store_checkpoint_add(s, other, 200, "/o/200", SHA, 1, err), 0);
	assert_int_equal(store_checkpoint_add(s, id, 1200, "/x", "0F1E", 1, err), -EINVAL);
	store_checkpoint c;
	assert_int_equal(store_checkpoint_latest(s, id, &c, err), 0);
	assert_int_equal(c.step, 1000);
	assert_string_equal(c.path, "/var/lib/byold/ck/1000.safetensors");
	assert_string_equal(c.sha256, SHA);
	assert_int_equal(c.bytes, 1005);

	char **gone;
	int n;
	assert_int_equal(store_checkpoint_prune(s, id, 2, &gone, &n, err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(gone[0], "/var/lib/byold/ck/200.safetensors");
	assert_string_equal(gone[1], "/var/lib/byold/ck/400.safetensors");
	assert_string_equal(gone[2], "/var/lib/byold/ck/600.safetensors");
	store_paths_free(gone, n);
	assert_int_equal(sql_int(s, "PRAGMA synchronous"), 1); /* back to NORMAL */

	store_checkpoint *list;
	assert_int_equal(store_checkpoint_list(s, id, &list, &n, err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].step, 1000);
	assert_int_equal(list[1].step, 800);
	free(list);

	assert_int_equal(store_checkpoint_prune(s, id, 2, &gone, &n, err), 0);
	assert_int_equal(n, 0);
	assert_null(gone);
	/* the same step again replaces its row */
	assert_int_equal(store_checkpoint_add(s, id, 1000, "/new/1000", SHA, 7, err), 0);
	assert_int_equal(store_checkpoint_prune(s, id, 0, &gone, &n, err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(gone[0], "/var/lib/byold/ck/800.safetensors");
	assert_string_equal(gone[1], "/new/1000");
	store_paths_free(gone, n);
	assert_int_equal(store_checkpoint_latest(s, id, &c, err), -ENOENT);
	assert_int_equal(store_checkpoint_latest(s, other, &c, err), 0); /* untouched */
	assert_int_equal(c.step, 200);
}

/* ---- workers and events ---- */

static void test_workers_and_events(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s);
	assert_int_equal(store_worker_seen(s, "w1", "node-a", 2, err), 0);
	assert_int_equal(store_worker_seen(s, "w0", "node-b", 1, err), 0);
	assert_int_equal(store_worker_seen(s, "w1", "node-a", 4, err), 0);
	assert_int_equal(store_worker_served(s, "w1", id, 3, err), 0);
	assert_int_equal(store_worker_served(s, "w1", id, 5, err), 0);
	assert_int_equal(store_worker_served(s, "w9", id, 1, err), -ENOENT);
	assert_int_equal(store_worker_served(s, "w0", id + 1, 4, err), -EINVAL);

	store_worker *w;
	int n;
	assert_int_equal(store_worker_list(s, &w, &n, err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(w[0].name, "w0");
	assert_int_equal(w[0].shards_done, 0); /* the refused call left nothing */
	assert_string_equal(w[1].name, "w1");
	assert_string_equal(w[1].host, "node-a");
	assert_int_equal(w[1].threads, 4);
	assert_int_equal(w[1].shards_done, 8);
	assert_true(w[1].last_seen_ms >= w[1].first_seen_ms);
	free(w);
	store_run_worker *rw;
	assert_int_equal(store_run_workers(s, id, &rw, &n, err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rw[0].worker, "w1");
	assert_int_equal(rw[0].shards, 8);
	free(rw);

	int64_t e1, e2, e3;
	assert_int_equal(store_event_add(s, 0, STORE_INFO, "byold started", &e1, err), 0);
	assert_int_equal(store_event_add(s, id, STORE_WARN, "worker w1 lost", &e2, err), 0);
	assert_int_equal(store_event_add(s, 0, STORE_ERROR, "disk almost full", &e3, err), 0);
	assert_true(e1 < e2 && e2 < e3);
	assert_int_equal(store_event_add(s, id + 5, STORE_INFO, "?", NULL, err), -EINVAL);
	store_event *ev;
	assert_int_equal(store_event_list(s, NULL, &ev, &n, err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ev[0].id, e1);
	assert_int_equal(ev[0].run_id, 0);
	assert_int_equal(ev[1].level, STORE_WARN);
	assert_string_equal(ev[2].message, "disk almost full");
	free(ev);
	store_event_filter flt = { .run_id = id };
	assert_int_equal(store_event_list(s, &flt, &ev, &n, err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].id, e2);
	free(ev);
	flt = (store_event_filter){ .newest_first = 1, .limit = 2 };
	assert_int_equal(store_event_list(s, &flt, &ev, &n, err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ev[0].id, e3);
	assert_int_equal(ev[1].id, e2);
	free(ev);
	flt = (store_event_filter){ .after_id = e2 };
	assert_int_equal(store_event_list(s, &flt, &ev, &n, err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].level, STORE_ERROR);
	free(ev);
}

/* ---- durability ---- */

static void test_survives_reopen(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t ids[2], n;
	add_experiment(s, "keep", 2, ids);
	assert_int_equal(store_run_set_status(s, ids[0], STORE_RUNNING, NULL, err), 0);
	assert_int_equal(store_run_set_step(s, ids[0], 3, err), 0);
	store_metric m[3] = { metric(0, 3), metric(1, 2), metric(2, 1) };
	assert_int_equal(store_metrics_add_batch(s, ids[0], m, 3, err), 0);
	assert_int_equal(store_checkpoint_add(s, ids[0], 2, "/ck/2", SHA, 99, err), 0);
	assert_int_equal(store_worker_seen(s, "w", "h", 2, err), 0);
	reopen(f);
	s = f->s;
	store_run r;
	assert_int_equal(store_run_get(s, ids[0], &r, err), 0);
	assert_int_equal(r.status, STORE_RUNNING);
	assert_int_equal(r.step, 3);
	store_run_release(&r);
	assert_int_equal(store_metrics_count(s, ids[0], &n, err), 0);
	assert_int_equal(n, 3);
	store_checkpoint c;
	assert_int_equal(store_checkpoint_latest(s, ids[0], &c, err), 0);
	assert_string_equal(c.path, "/ck/2");
	assert_int_equal(store_run_next_queued(s, &r, err), 0);
	assert_int_equal(r.id, ids[1]);
	store_run_release(&r);
	/* ids are never reused */
	int64_t id3 = one_run(s);
	assert_true(id3 > ids[1]);
}

typedef struct {
	int64_t next;
	int gaps;
} steps_seen;

static int check_step(const store_metric *m, void *ctx)
{
	steps_seen *c = ctx;
	if (m->step != c->next)
		c->gaps++;
	c->next = m->step + 1;
	return 0;
}

static void test_disk_full_loses_nothing_committed(void **state)
{
	fixture *f = *state;
	snprintf(f->mnt, sizeof(f->mnt), "%s/tiny", f->dir);
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	if (mount("tmpfs", f->mnt, "tmpfs", 0, "size=256k") != 0) {
		f->mnt[0] = 0;
		print_message("skipped: cannot mount a tmpfs here (needs root)\n");
		skip();
	}
	snprintf(f->db, sizeof(f->db), "%s/byold.db", f->mnt);
	store *s = open_ok(f);
	char err[BYOL_ERR_LEN] = "";
	int64_t id = one_run(s), committed = 0, n;
	static store_metric m[100];
	int rc = 0;
	while (committed < 1000000) {
		for (int i = 0; i < 100; i++)
			m[i] = metric(committed + i, 1.0 / (1 + committed + i));
		if ((rc = store_metrics_add_batch(s, id, m, 100, err)) != 0)
			break;
		committed += 100;
	}
	print_message("full after %ld committed rows: %s\n", (long)committed, err);
	assert_int_equal(rc, -ENOSPC);
	assert_contains(err, f->db);
	assert_contains(err, "full");
	assert_true(committed > 0);

	/* still readable, everything committed is there, nothing of the failed batch */
	assert_int_equal(store_metrics_count(s, id, &n, err), 0);
	assert_int_equal(n, committed);
	steps_seen c = { 0 };
	assert_int_equal(store_metrics_read(s, id, 0, -1, check_step, &c, err), 0);
	assert_int_equal(c.gaps, 0);
	assert_int_equal(c.next, committed);
	store_run r;
	assert_int_equal(store_run_get(s, id, &r, err), 0);
	store_run_release(&r);
	/* a single row fails the same way and leaves the store usable */
	m[0] = metric(committed, 0.5);
	int one = store_metrics_add(s, id, &m[0], err);
	assert_true(one == 0 || one == -ENOSPC);
	if (one == 0)
		committed++;

	/* and after a restart on the still-full disk */
	reopen(f);
	assert_int_equal(store_metrics_count(f->s, id, &n, err), 0);
	assert_int_equal(n, committed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrates_version_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_database_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_experiment_sweep_queued_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_experiment_is_one_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_queued_is_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_transitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_transitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_step_redone_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_prune_keeps_newest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers_and_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_loses_nothing_committed, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
