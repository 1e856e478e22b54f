/*
 * store_internal.h — what daemon/store.c (open, migrations, the statement
 * table, experiments and runs) and daemon/store_log.c (metrics, evaluations,
 * checkpoints, workers, events) share: the store struct, the ids of its
 * prepared statements, and the helpers that step them and report failures.
 * Private to the store: only those two files include it; the contract is
 * include/byol/store.h.
 */
#ifndef BYOLD_STORE_INTERNAL_H
#define BYOLD_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "byol/store.h"

/* Prepared statements, indexes into store.st; the SQL text is in store.c. */
enum {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SYNC_FULL, ST_SYNC_NORMAL,
	ST_EXP_INSERT, ST_EXP_GET, ST_RUN_INSERT, ST_RUN_GET,
	ST_RUN_LIST, ST_RUN_LIST_S, ST_RUN_LIST_E, ST_RUN_LIST_ES, ST_RUN_NEXT,
	ST_RUN_STATUS, ST_RUN_MOVE, ST_RUN_STEP, ST_RUN_NOTE,
	ST_MET_PUT, ST_MET_READ, ST_MET_COUNT, ST_EVAL_PUT, ST_EVAL_READ,
	ST_CK_PUT, ST_CK_LIST, ST_CK_OLD, ST_CK_DELETE,
	ST_WK_SEEN, ST_WK_SERVED, ST_RW_PUT, ST_WK_LIST, ST_RW_LIST,
	ST_EV_PUT, ST_EV_ALL, ST_EV_ALL_DESC, ST_EV_RUN, ST_EV_RUN_DESC,
	N_ST
};

struct store {
	sqlite3 *db;
	char *path;
	int version;
	char op[160];             /* what the current call is doing, for messages */
	sqlite3_stmt *st[N_ST];
};

/* The system clock in unix milliseconds. */
int64_t store_now_ms(void);

/* Names what the current call does, for the messages of store_fail(). */
void store_op(store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "<db path>: <op>: <SQLite's message>" into err; returns SQLite's rc mapped
 * to a negative errno. Call it before anything else runs on the connection
 * (the message is its). */
int store_fail(store *s, int rc, char *err);

/* Resets st and clears its bindings, ready for the next use. */
void store_done(sqlite3_stmt *st);

/* Steps statement id (bound by the caller) to its end and resets it; 0 or
 * store_fail's code. */
int store_exec(store *s, int id, char *err);

/* BEGIN IMMEDIATE and COMMIT: 0 or store_fail's code. */
int store_begin(store *s, char *err);
int store_commit(store *s, char *err);

/* Ends a failed transaction, if SQLite has not already rolled it back. */
void store_rollback(store *s);

/* Copies text column col of st into dst (n bytes, truncated, "" for NULL). */
void store_copy_col(char *dst, size_t n, sqlite3_stmt *st, int col);
/* A malloc'd copy of text column col, NULL for SQL NULL; *oom set when out of
 * memory. */
char *store_dup_col(sqlite3_stmt *st, int col, int *oom);
/* Columns 0..14 of a row that starts with RUN_COLS (store.c) into *r;
 * -ENOMEM when a string cannot be copied (r released). */
int store_run_from_row(sqlite3_stmt *st, store_run *r);
/* 1 when a run may move from status `from` to `to`. */
int store_transition_ok(store_status from, store_status to);

/* Steps st (bound by the caller) to its end, turning each row into an element
 * of el bytes with row() (0 or -ENOMEM) in a malloc'd array *out of *n. On
 * failure every element is released (release may be NULL) and *out is NULL. */
int store_collect(store *s, sqlite3_stmt *st, size_t el, int (*row)(sqlite3_stmt *, void *),
		  void (*release)(void *), void **out, int *n, char *err);

/* 0, or -EINVAL when name is NULL, empty (unless allow_empty) or does not fit
 * STORE_NAME_LEN; `what` names it in the message. */
int store_name_ok(const char *name, const char *what, int allow_empty, char *err);

/* 0, or -EBUSY when read statement id is already walking (its callback called
 * the store again). */
int store_reentered(store *s, int id, char *err);

/* 1 when h is exactly len lower-case hex digits, else 0. */
int store_hex_ok(const char *h, size_t len);

#endif
