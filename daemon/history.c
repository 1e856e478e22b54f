/*
 * history.c — byolctl history and list: `key op value` terms compiled into ONE
 * parameterised SELECT over runs JOIN experiments.
 *
 *   status = completed and model.predictor_norm = none
 *   probe_acc > 0.86
 *   finished >= 2026-11-27T10:00 and name ~ 'byol-*'
 *
 * A where string holds one or more terms joined by `and`; the where strings of
 * a request are ANDed too. A key maps to a fixed SQL fragment of the tables
 * below, never to user text; every value and every JSON path is bound with
 * sqlite3_bind_*. Keys:
 *   id, experiment (its name), experiment_id, name, status, seed, step,
 *   total_steps, created, started, finished   columns of the run
 *   <section>.<key> or config.<section>.<key>  the run's canonical config,
 *                                               checked against the config table
 *   probe_acc, knn_acc, final_loss, collapse, img_per_s, train_seconds, steps,
 *   checkpoint, or final.<name>                 the run's final metrics
 * Operators: = (==) != < <= > >=, and for text ~ and !~ (a glob: * ? [...]).
 * Values: a number, a bare word, or text in '' or "" (\ escapes the next
 * character). The key decides how a value compares: numbers numerically, text
 * as text, a boolean as true/false, a list (model.encoder_widths) element by
 * element with = and != only. Times (created, started, finished) take unix
 * seconds or an ISO date in UTC — 2026-11-27, 2026-11-27T10, 2026-11-27T10:00,
 * 2026-11-27T10:00:30, with an optional Z or +HH:MM — that stands for its whole
 * day, hour, minute or second: `finished = 2026-11-27` is that day, `<` is
 * before it, `<=` up to its end, `>` after it. final.<name> compares a bare
 * number as a number and anything else as text. A run without the value (no
 * final metrics yet, a metric not measured) never matches.
 *
 * Errors name the where string and the column of the offending token:
 *   where 2: 'probe_acc >> 0.8': unknown operator '>>', ... (column 11)
 *
 * This file reads the terms and builds the statement; history_run.c runs it,
 * and the keys and how their values read are history_keys.c's
 * (history_internal.h).
 */
#include <ctype.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "byold.h"
#include "history_internal.h"

#define WHERE_MAX_LEN 4096
#define ECHO_LEN 100            /* bytes of a where string quoted in a message */

typedef enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_GLOB, CMP_NGLOB } cmp_op;

static const struct {
	const char *text;
	cmp_op op;
	const char *sql;
} ops[] = {
	{ "=", CMP_EQ, "=" }, { "==", CMP_EQ, "=" }, { "!=", CMP_NE, "!=" },
	{ "<", CMP_LT, "<" }, { "<=", CMP_LE, "<=" }, { ">", CMP_GT, ">" }, { ">=", CMP_GE, ">=" },
	{ "~", CMP_GLOB, "GLOB" }, { "!~", CMP_NGLOB, "GLOB" },
};
#define N_OPS ((int)(sizeof(ops) / sizeof(ops[0])))
#define OP_LIST "= != < <= > >= ~ !~"

#define SQL_CONFIG "json_extract(r.config_json, ?%d)"
#define SQL_FINAL "json_extract(r.final_json, ?%d)"

/* ---- the statement being built (history_query: history_internal.h) ---- */

static void sql_add(history_query *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sql_add(history_query *q, const char *fmt, ...)
{
	if (q->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(q->sql + q->len, q->cap - q->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			q->oom = 1;
			return;
		}
		if ((size_t)n < q->cap - q->len) {
			q->len += (size_t)n;
			return;
		}
		size_t cap = q->cap * 2 + (size_t)n + 256;
		char *s = realloc(q->sql, cap);
		if (!s) {
			q->oom = 1;
			return;
		}
		q->sql = s;
		q->cap = cap;
	}
}

/* A new parameter; returns its number (?N), or 0 when out of memory. */
static int bind_new(history_query *q, bind_value v)
{
	if (q->oom)
		return 0;
	if (q->n_binds == q->cap_binds) {
		int cap = q->cap_binds * 2 + 16;
		bind_value *b = realloc(q->binds, (size_t)cap * sizeof(*b));
		if (!b) {
			free(v.text);
			q->oom = 1;
			return 0;
		}
		q->binds = b;
		q->cap_binds = cap;
	}
	q->binds[q->n_binds++] = v;
	return q->n_binds;
}

static int bind_int(history_query *q, int64_t i)
{
	return bind_new(q, (bind_value){ .type = SQLITE_INTEGER, .i = i });
}

static int bind_float(history_query *q, double f)
{
	return bind_new(q, (bind_value){ .type = SQLITE_FLOAT, .f = f });
}

static int bind_text(history_query *q, const char *s)
{
	char *t = strdup(s);
	if (!t) {
		q->oom = 1;
		return 0;
	}
	return bind_new(q, (bind_value){ .type = SQLITE_TEXT, .text = t });
}

/* Appends the SQL expression of key k (a column, or json_extract with its path
 * bound). path_param: the path's parameter, made on first use (shared by the
 * ORDER BY's two uses). */
static void sql_key(history_query *q, const key_info *k, int *path_param)
{
	if (k->src == SRC_COLUMN) {
		sql_add(q, "%s", k->sql);
		return;
	}
	if (!*path_param)
		*path_param = bind_text(q, k->path);
	sql_add(q, k->src == SRC_CONFIG ? SQL_CONFIG : SQL_FINAL, *path_param);
}

/* ---- parsing a where string ---- */

typedef struct {
	const char *text;               /* the whole where string */
	const char *p;
	char ctx[ECHO_LEN + 32];        /* "where 2: 'probe_acc >> 0.8'" */
} cursor;

static void cursor_init(cursor *cu, const char *label, int index, const char *text)
{
	char echo[ECHO_LEN + 4];
	size_t n = 0;
	for (const char *s = text; *s && n < ECHO_LEN; s++)
		echo[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	if (strlen(text) > ECHO_LEN) {
		memcpy(echo + n, "...", 3);
		n += 3;
	}
	echo[n] = '\0';
	cu->text = cu->p = text;
	if (index > 0)
		snprintf(cu->ctx, sizeof(cu->ctx), "%s %d: '%s'", label, index, echo);
	else
		snprintf(cu->ctx, sizeof(cu->ctx), "%s: '%s'", label, echo);
}

/* "<where N: 'text'>: <what> (column C)", C the 1-based column of `at`. */
static int at_err(const cursor *cu, const char *at, char *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int at_err(const cursor *cu, const char *at, char *err, const char *fmt, ...)
{
	char what[WHY_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return byol_err(err, -EINVAL, "%s: %s (column %d)", cu->ctx, what,
			(int)(at - cu->text) + 1);
}

static const char *skip(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

/* The token at p (up to a blank, at most 40 bytes, non-printables as ?) for
 * messages. */
static const char *token_at(const char *p, char *buf, size_t n)
{
	size_t k = 0;
	while (p[k] && !isspace((unsigned char)p[k]) && k + 1 < n && k < 40) {
		buf[k] = (unsigned char)p[k] < 0x20 || p[k] == 0x7f ? '?' : p[k];
		k++;
	}
	buf[k] = '\0';
	return buf;
}

/* Reads a key at cu->p into key (KEY_LEN). */
static int read_key(cursor *cu, char *key, char *err)
{
	const char *p = skip(cu->p), *k0 = p;
	char tok[48];
	if (!isalpha((unsigned char)*p) && *p != '_')
		return *p ? at_err(cu, p, err, "expected a key, found '%s'",
				   token_at(p, tok, sizeof(tok)))
			  : at_err(cu, p, err, "expected a key");
	while (isalnum((unsigned char)*p) || *p == '_' || *p == '.')
		p++;
	if (p - k0 >= KEY_LEN)
		return at_err(cu, k0, err, "key longer than %d bytes", KEY_LEN - 1);
	memcpy(key, k0, (size_t)(p - k0));
	key[p - k0] = '\0';
	cu->p = p;
	return 0;
}

static int read_op(cursor *cu, const char *key, cmp_op *op, char *err)
{
	const char *p = skip(cu->p), *o0 = p;
	char tok[48];
	while (*p && strchr("=!<>~", *p))
		p++;
	if (p == o0)
		return *o0 ? at_err(cu, o0, err, "expected an operator after '%s' (one of "
				    OP_LIST "), found '%s'", key, token_at(o0, tok, sizeof(tok)))
			   : at_err(cu, o0, err, "expected an operator after '%s' (one of "
				    OP_LIST ")", key);
	for (int i = 0; i < N_OPS; i++)
		if (strlen(ops[i].text) == (size_t)(p - o0) && !strncmp(ops[i].text, o0, p - o0)) {
			*op = ops[i].op;
			cu->p = p;
			return 0;
		}
	return at_err(cu, o0, err, "unknown operator '%.*s', expected one of " OP_LIST,
		      (int)(p - o0), o0);
}

/* Reads a value: 'text' or "text" (\ escapes), or a bare word up to a blank. */
static int read_value(cursor *cu, char *value, int *quoted, char *err)
{
	const char *p = skip(cu->p), *v0 = p;
	size_t n = 0;
	*quoted = 0;
	if (!*p)
		return at_err(cu, p, err, "expected a value");
	if (*p == '\'' || *p == '"') {
		char q = *p++;
		*quoted = 1;
		while (*p && *p != q) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= VALUE_LEN)
				return at_err(cu, v0, err, "value longer than %d bytes", VALUE_LEN - 1);
			value[n++] = *p++;
		}
		if (*p != q)
			return at_err(cu, v0, err, "unterminated text: no closing %c", q);
		p++;
	} else {
		while (*p && !isspace((unsigned char)*p)) {
			if (n + 1 >= VALUE_LEN)
				return at_err(cu, v0, err, "value longer than %d bytes", VALUE_LEN - 1);
			value[n++] = *p++;
		}
	}
	value[n] = '\0';
	cu->p = p;
	return 0;
}

static const char *op_sql(cmp_op op)
{
	for (int i = 0; i < N_OPS; i++)
		if (ops[i].op == op)
			return ops[i].sql;
	return "=";
}

static const char *op_text(cmp_op op)
{
	for (int i = 0; i < N_OPS; i++)
		if (ops[i].op == op)
			return ops[i].text;
	return "?";
}

/* `expr op ?N` with the expression of k (its path parameter in *path, made
 * when 0), for one bound value. */
static void sql_compare(history_query *q, const key_info *k, int *path, cmp_op op, int param)
{
	if (op == CMP_NGLOB)
		sql_add(q, "NOT (");
	sql_key(q, k, path);
	sql_add(q, " %s ?%d", op_sql(op), param);
	if (op == CMP_NGLOB)
		sql_add(q, ")");
}

/* A number value into a parameter: an integer as an integer. */
static int bind_number(history_query *q, double v, int is_int, int64_t i)
{
	return is_int ? bind_int(q, i) : bind_float(q, v);
}

/* The time period [lo, hi) under op. */
static void sql_time(history_query *q, const key_info *k, cmp_op op, int64_t lo, int64_t hi)
{
	switch (op) {
	case CMP_EQ:
		sql_add(q, "(%s >= ?%d AND %s < ?%d)", k->sql, bind_int(q, lo), k->sql,
			bind_int(q, hi));
		break;
	case CMP_NE:
		sql_add(q, "(%s < ?%d OR %s >= ?%d)", k->sql, bind_int(q, lo), k->sql,
			bind_int(q, hi));
		break;
	case CMP_LT: sql_add(q, "%s < ?%d", k->sql, bind_int(q, lo)); break;
	case CMP_LE: sql_add(q, "%s < ?%d", k->sql, bind_int(q, hi)); break;
	case CMP_GT: sql_add(q, "%s >= ?%d", k->sql, bind_int(q, hi)); break;
	case CMP_GE: sql_add(q, "%s >= ?%d", k->sql, bind_int(q, lo)); break;
	default: break;
	}
}

/* A list compared element by element: the length, then each element. */
static void sql_list(history_query *q, const key_info *k, cmp_op op, const double *v, int n)
{
	int path = bind_text(q, k->path);
	sql_add(q, "%s(json_array_length(r.config_json, ?%d) = ?%d", op == CMP_NE ? "NOT " : "",
		path, bind_int(q, n));
	for (int i = 0; i < n; i++) {
		char el[KEY_LEN + 24];
		snprintf(el, sizeof(el), "%s[%d]", k->path, i);
		sql_add(q, " AND json_extract(r.config_json, ?%d) = ?%d", bind_text(q, el),
			bind_float(q, v[i]));
	}
	sql_add(q, ")");
}

/* Compiles one term (key k, operator op at o0, value at v0) into q. */
static int compile_term(history_query *q, cursor *cu, const key_info *k, cmp_op op,
			const char *o0, const char *value, int quoted, const char *v0, char *err)
{
	double v;
	int is_int;
	int64_t iv;
	char why[WHY_LEN];
	int path = 0;
	int numeric = history_parse_number(value, &v, &is_int, &iv) == 0;
	int glob = op == CMP_GLOB || op == CMP_NGLOB;
	int ordering = op != CMP_EQ && op != CMP_NE && !glob;

	switch (k->type) {
	case K_INT:
	case K_NUM:
		if (glob)
			break;
		if (!numeric)
			return at_err(cu, v0, err, "'%s' compares with a number, not '%s'", k->name,
				      value);
		sql_compare(q, k, &path, op, bind_number(q, v, is_int, iv));
		return 0;
	case K_TEXT:
		if (k->src == SRC_CONFIG && !glob && !ordering &&
		    history_config_value_ok(k, value, why) < 0)
			return at_err(cu, v0, err, "%s", why);
		sql_compare(q, k, &path, op, bind_text(q, value));
		return 0;
	case K_STATUS: {
		store_status st;
		if (ordering)
			break;
		if (!glob && store_status_parse(value, &st, why) < 0)
			return at_err(cu, v0, err, "%s", why);
		sql_compare(q, k, &path, op, bind_text(q, value));
		return 0;
	}
	case K_TIME: {
		int64_t lo, hi;
		if (glob)
			break;
		if (history_parse_time(value, &lo, &hi) < 0)
			return at_err(cu, v0, err, "'%s' is not a time: unix seconds or an ISO date "
				      "in UTC like 2026-11-27 or 2026-11-27T10:00", value);
		sql_time(q, k, op, lo, hi);
		return 0;
	}
	case K_BOOL: {
		int b;
		if (ordering || glob)
			break;
		if (history_parse_bool(value, &b) < 0)
			return at_err(cu, v0, err, "'%s' compares with true or false, not '%s'",
				      k->name, value);
		sql_compare(q, k, &path, op, bind_int(q, b));
		return 0;
	}
	case K_LIST: {
		double list[CONFIG_MAX_LIST];
		int n;
		if (ordering || glob)
			return at_err(cu, o0, err, "'%s' is a list: compare it with = or !=",
				      k->name);
		if (history_parse_list(value, list, &n, CONFIG_MAX_LIST) < 0)
			return at_err(cu, v0, err, "'%s' compares with a list of at most %d numbers "
				      "like '1024, 512', not '%s'", k->name, CONFIG_MAX_LIST,
				      value);
		sql_list(q, k, op, list, n);
		return 0;
	}
	case K_ANY: {
		path = bind_text(q, k->path);
		int as_number = numeric && !quoted && !glob;
		sql_add(q, "(json_type(r.final_json, ?%d) %s AND ", path,
			as_number ? "IN ('integer','real')" : "= 'text'");
		sql_compare(q, k, &path, op, as_number ? bind_number(q, v, is_int, iv)
						: bind_text(q, value));
		sql_add(q, ")");
		return 0;
	}
	}
	return at_err(cu, o0, err, "'%s' cannot be compared with '%s'%s", k->name, op_text(op),
		      k->type == K_STATUS ? " (= != ~ !~)" : glob ? " (~ and !~ take text)" : "");
}

/* What a term costs per run: SQLite tests the terms of a WHERE in the order
 * written, so the cheap ones go first and spare the others most rows: a
 * column, then the small final metrics JSON, then the config JSON (a list:
 * several extractions of it). The terms are ANDed: their order changes
 * nothing else. */
static int term_cost(const key_info *k)
{
	if (k->src == SRC_COLUMN)
		return 0;
	if (k->src == SRC_FINAL)
		return 1;
	return k->type == K_LIST ? 3 : 2;
}

/* 1 when the key reads the experiments table (e.name). */
static int uses_experiments(const key_info *k)
{
	return k->src == SRC_COLUMN && strncmp(k->sql, "e.", 2) == 0;
}

/* Moves the term just compiled (the SQL from mark on) aside. */
static void set_aside(history_query *q, size_t mark, int cost)
{
	if (q->oom)
		return;
	char *t = strdup(q->sql + mark);
	if (!t) {
		q->oom = 1;
		return;
	}
	q->terms[q->n_terms++] = (term_sql){ t, cost };
	q->len = mark;
	q->sql[mark] = '\0';
}

/* Appends the terms set aside, cheapest first (in the order given within a
 * cost). */
static void place_terms(history_query *q)
{
	for (int cost = 0; cost <= 3; cost++)
		for (int i = 0; i < q->n_terms; i++)
			if (q->terms[i].cost == cost)
				sql_add(q, "%s", q->terms[i].sql);
}

/* Every term of one where string into q, each as "AND (...)", set aside. */
static int compile_where(history_query *q, cursor *cu, int *terms, char *err)
{
	char key[KEY_LEN], why[WHY_LEN], tok[48];
	char *value = malloc(VALUE_LEN);
	int rc = 0;
	if (!value)
		return byol_err(err, -ENOMEM, "out of memory");
	if (strlen(cu->text) > WHERE_MAX_LEN) {
		rc = byol_err(err, -EINVAL, "%s: longer than %d bytes", cu->ctx, WHERE_MAX_LEN);
		goto out;
	}
	for (;;) {
		if (++*terms > HISTORY_MAX_TERMS) {
			rc = at_err(cu, skip(cu->p), err, "more than %d terms", HISTORY_MAX_TERMS);
			goto out;
		}
		const char *k0 = skip(cu->p);
		if ((rc = read_key(cu, key, err)) < 0)
			goto out;
		key_info k;
		if (history_key_resolve(key, &k, why) < 0) {
			rc = at_err(cu, k0, err, "%s", why);
			goto out;
		}
		cmp_op op = CMP_EQ;
		const char *o0 = skip(cu->p);
		if ((rc = read_op(cu, key, &op, err)) < 0)
			goto out;
		int quoted;
		const char *v0 = skip(cu->p);
		if ((rc = read_value(cu, value, &quoted, err)) < 0)
			goto out;
		size_t mark = q->len;
		sql_add(q, " AND (");
		if ((rc = compile_term(q, cu, &k, op, o0, value, quoted, v0, err)) < 0)
			goto out;
		sql_add(q, ")");
		set_aside(q, mark, term_cost(&k));
		if (uses_experiments(&k))
			q->join_experiments = 1;
		const char *p = skip(cu->p);
		if (!*p)
			break;
		if (strncasecmp(p, "and", 3) != 0 || (p[3] && !isspace((unsigned char)p[3]))) {
			rc = at_err(cu, p, err, "expected 'and' or the end after the value, found "
				    "'%s'", token_at(p, tok, sizeof(tok)));
			goto out;
		}
		cu->p = p + 3;
		if (!*skip(cu->p)) {
			rc = at_err(cu, skip(cu->p), err, "expected a term after 'and'");
			goto out;
		}
	}
out:
	free(value);
	return rc;
}

/* The order key: *has_key 0 for the default (newest first). */
static int parse_order(const char *order, key_info *k, int *has_key, int *desc, char *err)
{
	const char *o = order ? order : "";
	*has_key = *desc = 0;
	while (isspace((unsigned char)*o))
		o++;
	if (!*o)
		return 0;
	cursor cu;
	char key[KEY_LEN], why[WHY_LEN], tok[48];
	cursor_init(&cu, "order", 0, order);
	*desc = *o == '-';
	if (*o == '-' || *o == '+')
		o++;
	cu.p = o;
	if (read_key(&cu, key, err) < 0)
		return -EINVAL;
	if (*skip(cu.p))
		return at_err(&cu, skip(cu.p), err, "expected one key, '-key' for descending; "
			      "found '%s' after it", token_at(skip(cu.p), tok, sizeof(tok)));
	if (history_key_resolve(key, k, why) < 0)
		return at_err(&cu, o, err, "%s", why);
	if (k->type == K_LIST)
		return at_err(&cu, o, err, "'%s' is a list: runs cannot be ordered by it", k->name);
	*has_key = 1;
	return 0;
}

/* ORDER BY over the key `key` (an SQL alias or expression), runs without a
 * value last either way, ties newest first. */
static void sql_order(history_query *q, const char *key, const char *id, int nullable,
		      int desc)
{
	if (nullable)
		sql_add(q, " ORDER BY %s IS NULL, %s %s, %s DESC", key, key, desc ? "DESC" : "ASC",
			id);
	else
		sql_add(q, " ORDER BY %s %s, %s DESC", key, desc ? "DESC" : "ASC", id);
}

#define HISTORY_COLS                                                                    \
	"r.id, r.experiment_id, r.sweep_index, r.status, r.name, r.config_hash, r.seed, " \
	"r.created_ms, r.started_ms, r.finished_ms, r.total_steps, r.step, r.message, "  \
	"r.config_json, r.final_json, e.name"
#define HISTORY_FROM "runs AS r JOIN experiments AS e ON e.id = r.experiment_id"

/*
 * Two steps in one statement: the inner SELECT filters, orders and limits
 * the run ids (with the order key), the outer one reads the whole rows of
 * those only, so a sort never carries the configs of every run.
 *
 *   SELECT <cols> FROM (SELECT r.id AS id, <key> AS k FROM runs r [JOIN
 *     experiments e, for experiment terms] WHERE 1 AND (<term>) ... ORDER BY k
 *     ... LIMIT ?N) AS h
 *   JOIN runs r ON r.id = h.id JOIN experiments e ... ORDER BY h.k ..., h.id DESC
 */
int history_compile(const history_spec *spec, history_query **out, char *err)
{
	*out = NULL;
	history_query *q = calloc(1, sizeof(*q));
	if (!q)
		return byol_err(err, -ENOMEM, "out of memory");
	const char *label = spec->label ? spec->label : "where";
	int rc = 0, terms = 0, has_key, desc, path = 0;
	key_info k;
	if (spec->n_where < 0 || (spec->n_where > 0 && !spec->where)) {
		rc = byol_err(err, -EINVAL, "history: bad where list");
		goto fail;
	}
	/* the terms first, set aside; then the statement around them */
	for (int i = 0; i < spec->n_where; i++) {
		const char *w = spec->where[i] ? spec->where[i] : "";
		cursor cu;
		cursor_init(&cu, label, spec->number_where ? i + 1 : 0, w);
		if ((rc = compile_where(q, &cu, &terms, err)) < 0)
			goto fail;
	}
	if ((rc = parse_order(spec->order, &k, &has_key, &desc, err)) < 0)
		goto fail;
	if (has_key && uses_experiments(&k))
		q->join_experiments = 1;
	sql_add(q, "SELECT " HISTORY_COLS " FROM (SELECT r.id AS id");
	if (has_key) {
		sql_add(q, ", ");
		sql_key(q, &k, &path);
		sql_add(q, " AS k");
	}
	sql_add(q, " FROM %s WHERE 1", q->join_experiments ? HISTORY_FROM : "runs AS r");
	place_terms(q);
	if (has_key)
		sql_order(q, "k", "r.id", k.nullable, desc);
	else
		sql_add(q, " ORDER BY r.id DESC");
	unsigned limit = spec->limit ? spec->limit : HISTORY_DEFAULT_LIMIT;
	sql_add(q, " LIMIT ?%d) AS h JOIN " HISTORY_FROM " AND r.id = h.id",
		bind_int(q, limit > HISTORY_MAX_LIMIT ? HISTORY_MAX_LIMIT : limit));
	if (has_key)
		sql_order(q, "h.k", "h.id", k.nullable, desc);
	else
		sql_add(q, " ORDER BY h.id DESC");
	if (q->oom) {
		rc = byol_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	*out = q;
	return 0;
fail:
	history_query_free(q);
	return rc;
}

const char *history_query_sql(const history_query *q)
{
	return q->sql;
}

void history_query_free(history_query *q)
{
	if (!q)
		return;
	for (int i = 0; i < q->n_binds; i++)
		free(q->binds[i].text);
	for (int i = 0; i < q->n_terms; i++)
		free(q->terms[i].sql);
	free(q->binds);
	free(q->sql);
	free(q);
}
