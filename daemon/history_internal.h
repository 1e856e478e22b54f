/*
 * history_internal.h — what daemon/history.c (where strings compiled into one
 * parameterised statement), daemon/history_run.c (running it) and
 * daemon/history_keys.c (the keys a term may name, and how their values read)
 * share. Private to those files; the contract is the history section of
 * byold.h.
 */
#ifndef BYOLD_HISTORY_INTERNAL_H
#define BYOLD_HISTORY_INTERNAL_H

#include <stdint.h>

#include "byold.h"

#define KEY_LEN 96
#define VALUE_LEN 1024
#define WHY_LEN 320             /* a reason, without the where string around it */

/* ---- a compiled statement (history.c builds it, history_run.c runs it) ---- */

typedef struct {
	int type;                       /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT */
	int64_t i;
	double f;
	char *text;
} bind_value;

/* A compiled term, kept aside to be placed by its cost (see term_cost). */
typedef struct {
	char *sql;                      /* " AND (...)" */
	int cost;
} term_sql;

struct history_query {
	char *sql;
	size_t len, cap;
	bind_value *binds;
	int n_binds, cap_binds;
	term_sql terms[HISTORY_MAX_TERMS];
	int n_terms;
	int join_experiments;           /* a term or the order reads e.name */
	int oom;
};

typedef enum {
	K_INT,          /* an integer column: numbers */
	K_TEXT,         /* text: any value; also ~ and !~ */
	K_STATUS,       /* a run status name: = != ~ !~ */
	K_TIME,         /* unix milliseconds: unix seconds or an ISO date */
	K_NUM,          /* a JSON number */
	K_BOOL,         /* a JSON boolean (json_extract reads 1 / 0) */
	K_LIST,         /* a JSON array of numbers: = and != */
	K_ANY,          /* final.<name>: a bare number is a number, else text */
} key_type;

typedef enum { SRC_COLUMN, SRC_CONFIG, SRC_FINAL } key_src;

typedef struct {
	key_src src;
	key_type type;
	const char *sql;                /* SRC_COLUMN */
	int nullable;
	char name[KEY_LEN];             /* canonical: "model.predictor_norm", "probe_acc" */
	char path[KEY_LEN + 8];         /* JSON path: "$.model.predictor_norm" */
} key_info;

/* Resolves a key as written ("model.predictor_norm", "config.model.lr",
 * "probe_acc", "final.custom", "seed") into *k. Returns 0, or -EINVAL with the
 * reason in why (WHY_LEN bytes): an unknown key, with the nearest known one. */
int history_key_resolve(const char *key, key_info *k, char *why);

/* 0, or -EINVAL with the reason in why when value is not one the config
 * table takes for text key k ("'bnn' is not one of bn, gn, ..."). */
int history_config_value_ok(const key_info *k, const char *value, char *why);

/* A decimal number (no hexadecimal, inf or nan) into *out; *is_int and *i when
 * it is written as an integer. 0 or -1. */
int history_parse_number(const char *s, double *out, int *is_int, int64_t *i);
/* Unix seconds, or an ISO date in UTC (2026-11-27, 2026-11-27T10,
 * 2026-11-27T10:00, 2026-11-27T10:00:30, a T or a blank, an optional Z or
 * +HH:MM), as the period it names: [*lo, *hi) in unix milliseconds. 0 or -1. */
int history_parse_time(const char *s, int64_t *lo, int64_t *hi);
/* true/yes/on/1 or false/no/off/0 (any case). 0 or -1. */
int history_parse_bool(const char *s, int *out);
/* "1024, 1024, 512", "1024,1024,512", "1024 512" or "[1024, 512]": 1 to max
 * numbers into v[0..*n). 0 or -1. */
int history_parse_list(const char *s, double *v, int *n, int max);

#endif
