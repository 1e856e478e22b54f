/*
 * test_history.c — byolctl history's query engine (daemon/history.c) on a real
 * SQLite store in a temporary directory: five runs of two experiments with
 * different configs, statuses, times and final metrics, queried with every
 * operator on numbers, text, times, config keys (numbers, enums, booleans,
 * lists) and final metrics; order and limit; the error messages with the
 * column of the offending token; and injection attempts that must change
 * nothing and match nothing.
 *
 * The runs (ids 1..5):
 *   1 alpha/0 completed  bn   lr 0.2 shard 32 probe on  widths 64,32  seed 1
 *   2 alpha/1 completed  none lr 0.5 shard 64 probe off widths 128,64 seed 2
 *   3 alpha/2 failed     gn   lr 1   shard 64 probe on  widths 64,32  seed 3
 *   4 beta/0  running    none lr 0.2 shard 16 (default widths)        seed 10
 *   5 beta/1  queued     the defaults                                 seed 11
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../daemon/byold.h"

static char dir[64];
static store *db;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_sec = s };
	return (int64_t)timegm(&tm) * 1000;
}

static void exec_sql(const char *fmt, ...)
{
	char q[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	char *msg = NULL;
	if (sqlite3_exec(store_sqlite(db), q, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", q, msg);
}

static int64_t count_runs(void)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_sqlite(db), "SELECT count(*) FROM runs", -1,
					    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* One experiment of n runs; sets[i] holds run i's overrides, NULL-ended. */
static void add_experiment(const char *name, int n, const char *const sets[][6])
{
	char err[BYOL_ERR_LEN] = "", names[4][32], hashes[4][17];
	char *jsons[4];
	store_run_spec spec[4];
	experiment_config *c = malloc(sizeof(*c));
	assert_non_null(c);
	for (int i = 0; i < n; i++) {
		config_defaults(c);
		for (int k = 0; sets[i][k]; k++)
			if (config_set(c, sets[i][k], err) < 0)
				fail_msg("config_set(%s): %s", sets[i][k], err);
		jsons[i] = config_to_json(c);
		assert_non_null(jsons[i]);
		config_hash(c, hashes[i]);
		snprintf(names[i], sizeof(names[i]), "%s/%d", name, i);
		spec[i] = (store_run_spec){ .name = names[i], .config_json = jsons[i],
					    .config_hash = hashes[i], .seed = c->seed,
					    .total_steps = 10 };
	}
	int64_t eid;
	if (store_experiment_add(db, name, jsons[0], NULL, spec, n, &eid, NULL, err) < 0)
		fail_msg("store_experiment_add: %s", err);
	for (int i = 0; i < n; i++)
		free(jsons[i]);
	free(c);
}

static void finish(int64_t id, store_status st, const char *final_json)
{
	char err[BYOL_ERR_LEN] = "";
	assert_int_equal(store_run_set_status(db, id, STORE_RUNNING, NULL, err), 0);
	if (st != STORE_RUNNING)
		assert_int_equal(store_run_finish(db, id, st, final_json, NULL, err), 0);
}

static void set_times(int64_t id, int64_t created, int64_t started, int64_t finished)
{
	char s[32] = "NULL", f[32] = "NULL";
	if (started)
		snprintf(s, sizeof(s), "%lld", (long long)started);
	if (finished)
		snprintf(f, sizeof(f), "%lld", (long long)finished);
	exec_sql("UPDATE runs SET created_ms = %lld, started_ms = %s, finished_ms = %s "
		 "WHERE id = %lld", (long long)created, s, f, (long long)id);
}

static int setup(void **state)
{
	char err[BYOL_ERR_LEN] = "", path[128];
	snprintf(dir, sizeof(dir), "%s/byol-history-XXXXXX",
		 getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/byold.db", dir);
	if (store_open(&db, path, err) < 0)
		fail_msg("store_open: %s", err);
	static const char *const alpha[][6] = {
		{ "model.predictor_norm=bn", "optim.lr=0.2", "data.shard_size=32",
		  "model.encoder_widths=64, 32", "experiment.seed=1", NULL },
		{ "model.predictor_norm=none", "optim.lr=0.5", "eval.probe=false",
		  "model.encoder_widths=128, 64", "experiment.seed=2", NULL },
		{ "model.predictor_norm=gn", "model.encoder_widths=64,32", "experiment.seed=3",
		  NULL },
	};
	static const char *const beta[][6] = {
		{ "model.predictor_norm=none", "optim.lr=0.2", "data.shard_size=16",
		  "experiment.seed=10", NULL },
		{ "experiment.seed=11", NULL },
	};
	add_experiment("alpha", 3, alpha);
	add_experiment("beta", 2, beta);
	finish(1, STORE_COMPLETED, "{\"probe_acc\":0.87,\"knn_acc\":0.85,\"collapse\":0.9,"
	       "\"final_loss\":1.5,\"checkpoint\":\"/ck/1\",\"custom\":\"abc\",\"score\":3}");
	finish(2, STORE_COMPLETED, "{\"probe_acc\":0.81,\"knn_acc\":0.8,\"collapse\":0.2,"
	       "\"score\":\"7\"}");
	finish(3, STORE_FAILED, NULL);
	finish(4, STORE_RUNNING, NULL);
	set_times(1, utc_ms(2026, 11, 25, 9, 0, 0), utc_ms(2026, 11, 25, 9, 1, 0),
		  utc_ms(2026, 11, 25, 12, 0, 0));
	set_times(2, utc_ms(2026, 11, 26, 10, 0, 0), utc_ms(2026, 11, 26, 10, 1, 0),
		  utc_ms(2026, 11, 27, 10, 0, 0));
	set_times(3, utc_ms(2026, 11, 26, 23, 59, 59), utc_ms(2026, 11, 27, 0, 0, 5),
		  utc_ms(2026, 11, 27, 0, 10, 0));
	set_times(4, utc_ms(2026, 11, 27, 10, 0, 30), utc_ms(2026, 11, 27, 10, 1, 0), 0);
	set_times(5, utc_ms(2026, 11, 27, 12, 0, 0), 0, 0);
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	store_close(db);
	db = NULL;
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* The ids answered, "5,4,3" ("" for none), or the error (rc < 0). */
static int run_query(const char *const *where, int n, const char *order, unsigned limit,
		     char *out, size_t len, char *err)
{
	history_spec spec = { .where = where, .n_where = n, .order = order, .limit = limit,
			      .label = "where", .number_where = 1 };
	history_row *rows;
	int count;
	int rc = history_select(db, &spec, &rows, &count, err);
	out[0] = '\0';
	if (rc < 0)
		return rc;
	size_t k = 0;
	for (int i = 0; i < count; i++)
		k += (size_t)snprintf(out + k, len - k, "%s%lld", i ? "," : "",
				      (long long)rows[i].run.id);
	history_rows_free(rows, count);
	return 0;
}

static void expect_where(const char *where, const char *want)
{
	char got[256], err[BYOL_ERR_LEN] = "";
	if (run_query(&where, where ? 1 : 0, NULL, 0, got, sizeof(got), err) < 0)
		fail_msg("where '%s': %s", where, err);
	if (strcmp(got, want) != 0)
		fail_msg("where '%s': runs [%s], expected [%s]", where, got, want);
}

static void expect_order(const char *order, unsigned limit, const char *want)
{
	char got[256], err[BYOL_ERR_LEN] = "";
	if (run_query(NULL, 0, order, limit, got, sizeof(got), err) < 0)
		fail_msg("order '%s': %s", order, err);
	if (strcmp(got, want) != 0)
		fail_msg("order '%s' limit %u: runs [%s], expected [%s]", order, limit, got, want);
}

/* where (or, when where is NULL, order) is refused with a message holding want. */
static void expect_error(const char *where, const char *order, const char *want)
{
	char got[256], err[BYOL_ERR_LEN] = "";
	int rc = run_query(&where, where ? 1 : 0, order, 0, got, sizeof(got), err);
	if (rc != -EINVAL)
		fail_msg("'%s': rc %d (runs [%s]), expected -EINVAL", where ? where : order, rc,
			 got);
	if (!strstr(err, want))
		fail_msg("'%s': message '%s' does not hold '%s'", where ? where : order, err, want);
}

/* ---- tests ---- */

static void test_default_order_and_limit(void **state)
{
	expect_where(NULL, "5,4,3,2,1");
	expect_order(NULL, 2, "5,4");
	expect_order("", 0, "5,4,3,2,1");
	/* a limit over the maximum is clamped, not refused */
	expect_order(NULL, 4000000000u, "5,4,3,2,1");
}

static void test_number_operators(void **state)
{
	expect_where("seed = 2", "2");
	expect_where("seed == 2", "2");
	expect_where("seed != 2", "5,4,3,1");
	expect_where("seed < 3", "2,1");
	expect_where("seed <= 3", "3,2,1");
	expect_where("seed > 3", "5,4");
	expect_where("seed >= 10", "5,4");
	expect_where("seed=-1", "");
	expect_where("id > 3.5", "5,4");
	expect_where("id >= 2 and id <= 3", "3,2");
	expect_where("experiment_id = 2", "5,4");
	expect_where("step = 0", "5,4,3,2,1");
	expect_where("total_steps >= 1e1", "5,4,3,2,1");
	expect_where("seed > '3'", "5,4");     /* a number key takes quoted numbers too */
}

static void test_text_operators(void **state)
{
	expect_where("name = alpha/1", "2");
	expect_where("name = 'beta/0'", "4");
	expect_where("name = \"beta/0\"", "4");
	expect_where("name != alpha/1", "5,4,3,1");
	expect_where("name < b", "3,2,1");
	expect_where("name >= beta/1", "5");
	expect_where("name ~ 'alpha/*'", "3,2,1");
	expect_where("name !~ '*0'", "5,3,2");
	expect_where("name ~ '?lpha/[01]'", "2,1");
	expect_where("experiment = beta", "5,4");
	expect_where("experiment = BETA", "");          /* text is exact */
	expect_where("status = completed", "2,1");
	expect_where("status != completed", "5,4,3");
	expect_where("status ~ 'c*'", "2,1");
	expect_where("status = queued AND experiment = beta", "5");
	/* a number on a text key is text */
	expect_where("name = 10", "");
	expect_where("name = 'it\\'s'", "");
}

static void test_config_keys(void **state)
{
	expect_where("model.predictor_norm = none", "4,2");
	expect_where("config.model.predictor_norm = bn", "5,1");
	expect_where("model.predictor_norm != bn", "4,3,2");
	expect_where("model.predictor_norm ~ 'g*'", "3");
	expect_where("model.predictor_norm > bn", "4,3,2");
	expect_where("optim.lr = 0.2", "4,1");
	expect_where("optim.lr = 1", "5,3");
	expect_where("optim.lr < 1", "4,2,1");
	expect_where("data.shard_size = 64", "5,3,2");
	expect_where("data.shard_size < 64", "4,1");
	expect_where("eval.probe = false", "2");
	expect_where("eval.probe = yes", "5,4,3,1");
	expect_where("eval.probe != true", "2");
	expect_where("model.encoder_widths = '64, 32'", "3,1");
	expect_where("model.encoder_widths = [128,64]", "2");
	expect_where("model.encoder_widths = 64,32", "3,1");
	expect_where("model.encoder_widths != '64 32'", "5,4,2");
	expect_where("model.encoder_widths = '64, 32, 1'", "");
	expect_where("augment.crop_scale = '0.3, 1'", "5,4,3,2,1");
	expect_where("experiment.seed >= 3", "5,4,3");
	expect_where("experiment.name = alpha", "");    /* each run's own config: "byol" */
	expect_where("experiment.name = byol", "5,4,3,2,1");
	expect_where("model.predictor_norm = none and optim.lr = 0.2", "4");
}

static void test_final_metrics(void **state)
{
	expect_where("probe_acc >= 0.87", "1");
	expect_where("probe_acc > 0.8", "2,1");
	expect_where("final.probe_acc > 0.8", "2,1");
	expect_where("knn_acc < 0.86", "2,1");
	expect_where("collapse < 0.5", "2");
	expect_where("final_loss = 1.5", "1");
	expect_where("checkpoint = /ck/1", "1");
	/* runs without final metrics never match, not even != */
	expect_where("probe_acc > 0", "2,1");
	expect_where("probe_acc != 0.87", "2");
	/* final.<name>: a bare number compares with numbers, quoted text with text */
	expect_where("final.custom = abc", "1");
	expect_where("final.score = 3", "1");
	expect_where("final.score = '7'", "2");
	expect_where("final.score > 1", "1");
	expect_where("final.score ~ '*'", "2");
	expect_where("final.nothing = 1", "");
	expect_where("status = completed and probe_acc < 0.85", "2");
}

static void test_time_keys(void **state)
{
	char w[96];
	expect_where("created = 2026-11-26", "3,2");
	expect_where("created < 2026-11-26", "1");
	expect_where("created <= 2026-11-26", "3,2,1");
	expect_where("created > 2026-11-26", "5,4");
	expect_where("created >= 2026-11-26", "5,4,3,2");
	expect_where("created != 2026-11-26", "5,4,1");
	expect_where("created >= 2026-11-27T10:00", "5,4");
	expect_where("created = 2026-11-27T10:00", "4");
	expect_where("created > 2026-11-27T10:00", "5");
	expect_where("created = 2026-11-27T10:00:30", "4");
	expect_where("created = 2026-11-27T10:00:30Z", "4");
	expect_where("created = 2026-11-27T10", "4");
	expect_where("created = '2026-11-27 12:00'", "5");
	expect_where("created = 2026-11-27T12:00+02:00", "4");
	expect_where("finished >= 2026-11-27", "3,2");
	expect_where("started != 2026-11-27", "2,1");   /* not started: never matches */
	snprintf(w, sizeof(w), "finished < %lld", (long long)(utc_ms(2026, 11, 26, 0, 0, 0) / 1000));
	expect_where(w, "1");
	snprintf(w, sizeof(w), "finished = %lld", (long long)(utc_ms(2026, 11, 27, 10, 0, 0) / 1000));
	expect_where(w, "2");
	snprintf(w, sizeof(w), "created >= %lld.5", (long long)(utc_ms(2026, 11, 27, 10, 0, 30) / 1000));
	expect_where(w, "5");
}

static void test_order(void **state)
{
	expect_order("-probe_acc", 0, "1,2,5,4,3");     /* no value: last, newest first */
	expect_order("probe_acc", 0, "2,1,5,4,3");
	expect_order("+probe_acc", 0, "2,1,5,4,3");
	expect_order("name", 0, "1,2,3,4,5");
	expect_order("-name", 0, "5,4,3,2,1");
	expect_order("finished", 0, "1,3,2,5,4");
	expect_order("seed", 2, "1,2");
	expect_order("id", 0, "1,2,3,4,5");
	expect_order("model.predictor_norm", 0, "5,1,3,4,2");
	expect_order("-optim.lr", 0, "5,3,2,4,1");
	expect_order("-final.score", 0, "2,1,5,4,3");   /* SQLite: text after numbers */
	expect_order(" -knn_acc ", 1, "1");
	expect_order("experiment", 0, "3,2,1,5,4");
	expect_order("-experiment", 3, "5,4,3");

	char got[256], err[BYOL_ERR_LEN];
	const char *where[] = { "status = completed", "probe_acc > 0.5" };
	assert_int_equal(run_query(where, 2, "-collapse", 1, got, sizeof(got), err), 0);
	assert_string_equal(got, "1");
}

static void test_error_messages(void **state)
{
	char got[256], err[BYOL_ERR_LEN] = "";
	const char *w = "probe_acc >> 0.8";
	assert_int_equal(run_query(&w, 1, NULL, 0, got, sizeof(got), err), -EINVAL);
	assert_string_equal(err, "where 1: 'probe_acc >> 0.8': unknown operator '>>', expected "
			    "one of = != < <= > >= ~ !~ (column 11)");
	const char *two[] = { "status = completed", "model.predictr_norm = bn" };
	assert_int_equal(run_query(two, 2, NULL, 0, got, sizeof(got), err), -EINVAL);
	assert_string_equal(err, "where 2: 'model.predictr_norm = bn': unknown key "
			    "'model.predictr_norm', did you mean model.predictor_norm? (column 1)");

	expect_error("predictor_norm = bn", NULL, "did you mean model.predictor_norm? (column 1)");
	expect_error("probe_ac > 0.8", NULL, "did you mean probe_acc?");
	expect_error("seed = 1 and bogus = 1", NULL, "unknown key 'bogus': keys are id, "
		     "experiment, name, status");
	expect_error("config.model.nope = 1", NULL, "unknown key 'model.nope'");
	expect_error("status completed", NULL, "expected an operator after 'status' (one of "
		     "= != < <= > >= ~ !~), found 'completed' (column 8)");
	expect_error("status", NULL, "expected an operator after 'status'");
	expect_error("status = completed and probe_acc >", NULL, "expected a value (column 35)");
	expect_error("= 3", NULL, "expected a key, found '=' (column 1)");
	expect_error("", NULL, "where 1: '': expected a key (column 1)");
	expect_error("name = 'abc", NULL, "unterminated text: no closing ' (column 8)");
	expect_error("status = completed or id = 1", NULL,
		     "expected 'and' or the end after the value, found 'or' (column 20)");
	expect_error("status = completed and", NULL, "expected a term after 'and' (column 23)");
	expect_error("probe_acc > high", NULL,
		     "'probe_acc' compares with a number, not 'high' (column 13)");
	expect_error("seed = abc", NULL, "'seed' compares with a number");
	expect_error("status < running", NULL,
		     "'status' cannot be compared with '<' (= != ~ !~) (column 8)");
	expect_error("status = done", NULL, "unknown run status 'done'");
	expect_error("seed ~ 1*", NULL, "'seed' cannot be compared with '~' (~ and !~ take text)");
	expect_error("model.predictor_norm = bnn", NULL, "model.predictor_norm: 'bnn' is not "
		     "one of bn, gn, gn_ws, ln, none (column 24)");
	expect_error("model.encoder_widths > 3", NULL,
		     "'model.encoder_widths' is a list: compare it with = or != (column 22)");
	expect_error("model.encoder_widths = a,b", NULL, "compares with a list of at most");
	expect_error("eval.probe = maybe", NULL, "'eval.probe' compares with true or false");
	expect_error("created = 2026-13-01", NULL, "'2026-13-01' is not a time");
	expect_error("created = 2026-02-29", NULL, "is not a time");
	expect_error("created = 2026-11-27T25:00", NULL, "is not a time");
	expect_error("created ~ 2026*", NULL, "'created' cannot be compared with '~'");
	expect_error("final.bad-name = 1", NULL, "expected an operator after 'final.bad'");
	expect_error("seed = 0x10", NULL, "compares with a number, not '0x10'");
	expect_error("seed = nan", NULL, "compares with a number, not 'nan'");
	/* a control character is echoed as ? (one line) */
	expect_error("seed\n= 1 x", NULL, "where 1: 'seed?= 1 x'");
	expect_error(NULL, "-probe_ac", "order: '-probe_ac': unknown key 'probe_ac', did you "
		     "mean probe_acc? (column 2)");
	expect_error(NULL, "model.encoder_widths", "is a list: runs cannot be ordered by it");
	expect_error(NULL, "seed desc", "expected one key, '-key' for descending; found 'desc' "
		     "after it (column 6)");

	/* too many terms, too long */
	char many[1024] = "seed >= 0";
	for (int i = 1; i <= HISTORY_MAX_TERMS; i++)
		strcat(many, " and seed >= 0");
	expect_error(many, NULL, "more than 32 terms");
	char *longw = malloc(5000);
	assert_non_null(longw);
	memset(longw, 'a', 4999);
	longw[4999] = '\0';
	memcpy(longw, "name = ", 7);
	expect_error(longw, NULL, "longer than 4096 bytes");
	free(longw);

	/* ListRequest's filter: unnumbered */
	history_spec spec = { .where = &w, .n_where = 1, .label = "filter" };
	history_row *rows;
	int n;
	assert_int_equal(history_select(db, &spec, &rows, &n, err), -EINVAL);
	assert_null(rows);
	assert_int_equal(n, 0);
	const char *want = "filter: 'probe_acc >> 0.8': unknown operator '>>'";
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void test_injection_is_harmless(void **state)
{
	char got[256], err[BYOL_ERR_LEN] = "";
	/* a bare word stops at the blank: the rest is not a term */
	expect_error("name = x'; DROP TABLE runs; --", NULL,
		     "expected 'and' or the end after the value, found 'DROP' (column 12)");
	/* quoted: one text value that matches no name */
	expect_where("name = \"x'; DROP TABLE runs; --\"", "");
	expect_where("name = \"' OR '1'='1\"", "");
	expect_where("name = \"alpha/0' OR 1=1 --\"", "");
	expect_where("experiment = \"beta\\\" OR 1=1 --\"", "");
	expect_where("final.custom = \"abc') OR 1=1 --\"", "");
	expect_error("id) OR (1=1", NULL, "expected an operator after 'id'");
	expect_error("name = 'a' OR 'b' = 'b'", NULL, "found 'OR'");
	expect_error(NULL, "id; DROP TABLE runs", "expected one key, '-key' for descending; "
		     "found ';' after it (column 3)");
	expect_error("final.x') OR 1=1 -- = 1", NULL, "expected an operator after 'final.x'");
	assert_int_equal(count_runs(), 5);

	/* the statement holds fixed fragments and parameters, never the user's text */
	history_spec spec = {
		.where = (const char *const[]){ "name = zzqq and model.predictor_norm = none",
						"final.zzscore > 1" },
		.n_where = 2, .order = "-final.zzorder", .label = "where", .number_where = 1,
	};
	history_query *q;
	assert_int_equal(history_compile(&spec, &q, err), 0);
	const char *sql = history_query_sql(q);
	assert_null(strstr(sql, "zz"));
	assert_null(strstr(sql, "predictor_norm"));
	assert_null(strstr(sql, "none"));
	assert_non_null(strstr(sql, "json_extract(r.config_json, ?"));
	assert_non_null(strstr(sql, "json_extract(r.final_json, ?"));
	history_row *rows;
	int n;
	assert_int_equal(history_query_run(db, q, &rows, &n, err), 0);
	assert_int_equal(n, 0);
	history_rows_free(rows, n);
	history_query_free(q);
	(void)got;
}

/* The terms are ANDed in the order of their cost (a column, the final
 * metrics, the config, a config list), whatever order they were written in;
 * the experiments table is joined only for an experiment term. */
static void test_cheap_terms_first(void **state)
{
	char err[BYOL_ERR_LEN] = "", got[64];
	const char *where[] = { "model.encoder_widths = '64, 32' and model.predictor_norm = bn",
				"probe_acc > 0.5 and seed < 3" };
	history_spec spec = { .where = where, .n_where = 2, .label = "where", .number_where = 1 };
	history_query *q;
	assert_int_equal(history_compile(&spec, &q, err), 0);
	const char *sql = history_query_sql(q);
	const char *seed = strstr(sql, "(r.seed <"), *fin = strstr(sql, "(json_extract(r.final_json");
	const char *cfg = strstr(sql, "(json_extract(r.config_json"),
		   *list = strstr(sql, "(json_array_length(r.config_json");
	assert_non_null(seed);
	assert_true(seed < fin && fin < cfg && cfg < list);
	assert_null(strstr(sql, "experiments AS e ON e.id = r.experiment_id WHERE"));
	history_query_free(q);
	assert_int_equal(run_query(where, 2, NULL, 0, got, sizeof(got), err), 0);
	assert_string_equal(got, "1");
	const char *ew = "experiment = alpha and seed > 1";
	spec = (history_spec){ .where = &ew, .n_where = 1, .label = "where", .number_where = 1 };
	assert_int_equal(history_compile(&spec, &q, err), 0);
	assert_non_null(strstr(history_query_sql(q), "experiments AS e ON e.id = r.experiment_id WHERE"));
	history_query_free(q);
	expect_where(ew, "3,2");
}

static void test_rows_carry_the_run(void **state)
{
	char err[BYOL_ERR_LEN] = "";
	const char *w = "id = 1";
	history_spec spec = { .where = &w, .n_where = 1, .label = "where", .number_where = 1 };
	history_row *rows;
	int n;
	assert_int_equal(history_select(db, &spec, &rows, &n, err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].experiment, "alpha");
	assert_string_equal(rows[0].run.name, "alpha/0");
	assert_int_equal(rows[0].run.status, STORE_COMPLETED);
	assert_int_equal(rows[0].run.seed, 1);
	assert_int_equal(rows[0].run.total_steps, 10);
	assert_true(rows[0].run.created_ms == utc_ms(2026, 11, 25, 9, 0, 0));
	assert_true(rows[0].run.finished_ms == utc_ms(2026, 11, 25, 12, 0, 0));
	assert_non_null(strstr(rows[0].run.config_json, "\"predictor_norm\":\"bn\""));
	assert_non_null(strstr(rows[0].run.final_json, "\"probe_acc\":0.87"));
	history_rows_free(rows, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_order_and_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_number_operators, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_operators, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_injection_is_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cheap_terms_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_carry_the_run, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
