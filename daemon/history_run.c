/*
 * history_run.c — running a statement history.c compiled: its parameters
 * bound, one history_row per run it selects.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byold.h"
#include "history_internal.h"
#include "store_internal.h"


/* The run (the columns store_run_from_row reads), then the experiment's name. */
static int row_read(sqlite3_stmt *st, history_row *h)
{
	memset(h, 0, sizeof(*h));
	if (store_run_from_row(st, &h->run) < 0)
		return -ENOMEM;
	store_copy_col(h->experiment, sizeof(h->experiment), st, 15);
	return 0;
}

static int sqlite_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

int history_query_run(store *s, const history_query *q, history_row **out, int *n, char *err)
{
	sqlite3 *db = store_sqlite(s);
	sqlite3_stmt *st = NULL;
	history_row *rows = NULL;
	int count = 0, cap = 0, rc, code = 0;
	*out = NULL;
	*n = 0;
	if ((rc = sqlite3_prepare_v2(db, q->sql, -1, &st, NULL)) != SQLITE_OK) {
		code = byol_err(err, sqlite_code(rc), "history: %s", sqlite3_errmsg(db));
		goto fail;
	}
	for (int i = 0; i < q->n_binds; i++) {
		const bind_value *b = &q->binds[i];
		if (b->type == SQLITE_INTEGER)
			rc = sqlite3_bind_int64(st, i + 1, b->i);
		else if (b->type == SQLITE_FLOAT)
			rc = sqlite3_bind_double(st, i + 1, b->f);
		else
			rc = sqlite3_bind_text(st, i + 1, b->text, -1, SQLITE_STATIC);
		if (rc != SQLITE_OK) {
			code = byol_err(err, sqlite_code(rc), "history: parameter %d: %s", i + 1,
					sqlite3_errmsg(db));
			goto fail;
		}
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			int nc = cap ? cap * 2 : 64;
			history_row *nr = realloc(rows, (size_t)nc * sizeof(*nr));
			if (!nr) {
				code = byol_err(err, -ENOMEM, "history: out of memory for %d runs", nc);
				goto fail;
			}
			rows = nr;
			cap = nc;
		}
		if (row_read(st, &rows[count]) < 0) {
			code = byol_err(err, -ENOMEM, "history: out of memory");
			goto fail;
		}
		count++;
	}
	if (rc != SQLITE_DONE) {
		code = byol_err(err, sqlite_code(rc), "history: %s", sqlite3_errmsg(db));
		goto fail;
	}
	sqlite3_finalize(st);
	*out = rows;
	*n = count;
	return 0;
fail:
	sqlite3_finalize(st);
	history_rows_free(rows, count);
	return code;
}

int history_select(store *s, const history_spec *spec, history_row **out, int *n, char *err)
{
	history_query *q;
	*out = NULL;
	*n = 0;
	int rc = history_compile(spec, &q, err);
	if (rc < 0)
		return rc;
	rc = history_query_run(s, q, out, n, err);
	history_query_free(q);
	return rc;
}

void history_rows_free(history_row *rows, int n)
{
	for (int i = 0; rows && i < n; i++)
		store_run_release(&rows[i].run);
	free(rows);
}
