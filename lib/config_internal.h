/*
 * config_internal.h — what lib/config.c and lib/config_json.c share: the table of
 * entries (config.c defines it), a parsed value, and the helpers that parse,
 * store and look up one entry. Private to the library: only those two files
 * include it; the contract is include/byol/config.h.
 */
#ifndef BYOL_CONFIG_INTERNAL_H
#define BYOL_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "byol/config.h"

typedef enum { T_INT, T_U64, T_FLOAT, T_BOOL, T_STRING, T_ENUM, T_INT_LIST, T_FLOAT_PAIR } ctype;

typedef struct {
	const char *section, *key;
	ctype type;
	double min, max;                /* numbers; each element of a list */
	const char *def;                /* default, as the file would write it */
	size_t off;                     /* the field */
	size_t count_off;               /* T_INT_LIST: its int count */
	const char *const *names;       /* T_ENUM: NULL-terminated */
	const char *help;
} centry;

/* A sweep may not expand into more runs than this. */
#define SWEEP_MAX_RUNS 4096

/* The table, one entry per key, grouped by section in file order. */
extern const centry config_entries[];
extern const int config_n_entries;

/* A value parsed from its text, before it is stored in the struct. */
typedef struct {
	int n;                          /* lists: element count */
	long long i;                    /* T_INT, T_BOOL, T_ENUM */
	uint64_t u;                     /* T_U64 */
	float f[CONFIG_MAX_LIST];       /* T_FLOAT (f[0]), T_FLOAT_PAIR */
	int list[CONFIG_MAX_LIST];      /* T_INT_LIST */
	char s[CONFIG_STR_LEN];         /* T_STRING */
} cvalue;

#define WHY_LEN 320

/* Writes the reason into w (WHY_LEN bytes); returns -EINVAL. */
int config_why(char *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses `text` as a value of entry e. Returns 0 or -EINVAL with the reason in w. */
int config_parse_value(const centry *e, const char *text, cvalue *v, char *w);

/* Parses `text` and stores it in e's field of c; c is untouched on error. */
int config_set_entry(experiment_config *c, const centry *e, const char *text, char *w);

/* Indexes into config_entries, or -1: the first entry of a section; the entry
 * of section and key; the entry of "section.key". */
int config_find_section(const char *section);
int config_find_entry(const char *section, const char *key);
int config_find_dotted(const char *dotted);

/* 0, or -EINVAL when c's sweep expands to more than SWEEP_MAX_RUNS runs. */
int config_sweep_runs_ok(const experiment_config *c, char *w);

#endif
