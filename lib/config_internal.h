/*
 * config_internal.h — what lib/config.c and lib/config_json.c share: the table of
 * entries (config.c defines it), a parsed value, and the helpers that parse,
 * store and look up one entry, and the sweep's and variants' helpers
 * (config_sweep.c). Private to the library: only the config*.c files include
 * it; the contract is include/byol/config.h.
 */
#ifndef BYOL_CONFIG_INTERNAL_H
#define BYOL_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "byol/config.h"

/* T_NAME: a string of at most 63 letters, digits, '_', '-', '.' or '+' (or
 * empty), stored like T_STRING: a name that goes into run names. */
typedef enum {
	T_INT, T_U64, T_FLOAT, T_BOOL, T_STRING, T_NAME, T_ENUM, T_INT_LIST, T_FLOAT_PAIR
} ctype;

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

/* The axis over "section.key", or -1; removing axis a. */
int config_sweep_find(const experiment_config *c, const char *key);
void config_sweep_remove(experiment_config *c, int a);

/* The value each axis takes in run i (the last axis varying fastest). */
void config_sweep_pick(const experiment_config *c, int i, int pick[CONFIG_MAX_SWEEP]);

/* 0, or -EINVAL when c's sweep expands to more than SWEEP_MAX_RUNS runs. */
int config_sweep_runs_ok(const experiment_config *c, char *w);

/* Adds (or with `replace`, replaces) the sweep axis `key` ("section.key") with
 * the values "v1, v2, ...". c is unchanged on error. */
int config_sweep_add(experiment_config *c, const char *key, const char *values, int replace,
		     char *w);

/* The axis over experiment.variant, or -1. */
int config_variant_axis(const experiment_config *c);

/* 1 when s is a variant name: 1 to 63 letters, digits, '_', '-', '.' or '+'. */
int config_variant_name_ok(const char *s);

/* The variant named `name`, or NULL. */
const config_variant *config_variant_find(const experiment_config *c, const char *name);

/* Appends an empty variant; returns its index, or -EINVAL with w (a bad or
 * repeated name, too many variants). */
int config_variant_add(experiment_config *c, const char *name, char *w);

/* Checks one assignment of a variant: a known "section.key" other than
 * experiment.variant and experiment.name, whose value parses. Returns the
 * entry's index, or -EINVAL with "key: what" in w. */
int config_assignment_check(const char *key, const char *value, char *w);

/* Appends key = value to variant v after config_assignment_check (the key
 * stored as section.key); -EINVAL with w for a key given twice or too many. */
int config_variant_assign(config_variant *v, const char *key, const char *value, char *w);

/* Cross checks of the variants against the sweep, for config_validate and the
 * INI parser (which adds line numbers). Each returns 0 when all is well, else
 * 1 with the culprit's indexes in the out parameters.
 * A variant assignment of a key the sweep varies: *v, *k, *axis. */
int config_variant_sets_swept(const experiment_config *c, int *v, int *k, int *axis);
/* Two values of the experiment.variant axis name no variant (only one may
 * stand for the base): *axis, the values *first and *second. */
int config_variant_two_bases(const experiment_config *c, int *axis, int *first, int *second);

#endif
