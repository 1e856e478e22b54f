/*
 * config.h — the experiment file: INI in, validated struct and canonical JSON out.
 *
 * One table (config.c) of {section, key, type, min, max, default, field, help}
 * serves parsing (libinih), defaults, validation, `--set section.key=value`
 * overrides, the canonical JSON and the documentation (config_print_help). An
 * unknown section or key, a value that does not parse or is out of range, a
 * duplicate key: each is an error naming the file and line ("exp.ini:12: [model]
 * encoder_norm: 'bm' is not one of bn, gn, gn_ws, ln, none").
 *
 * File syntax: `[section]` lines and `key = value` lines; blank lines and lines
 * starting with ';' or '#' are comments, and so is the rest of a line from a ';'
 * or '#' that follows a blank ("lr = 0.2   ; for batch 256"). Lines may be
 * indented (no continuation lines) and are at most 198 characters. Booleans are
 * true/false, yes/no, on/off, 1/0. Lists are separated by commas and/or blanks
 * ("1024, 1024, 512"). Enums are the lower-case names listed by --help.
 *
 * The [sweep] section holds `section.key = v1, v2, ...` lines; each names a
 * known key and each value must be valid for it. A list-valued key's values
 * write their elements separated by blanks: `augment.crop_scale = 0.08 1.0,
 * 0.3 1.0`. A sweep expands to at most 4096 runs.
 *
 * Named variants: a `[variant NAME]` section holds `section.key = value` lines
 * (checked like --set) that together make one arm of an ablation; NAME is 1 to
 * 63 letters, digits, '_', '-', '.' or '+'. The key experiment.variant names
 * the variant a run uses: swept (`experiment.variant = a, b, c` in [sweep]) or
 * fixed. When a run is made (config_sweep_get) its variant's assignments are
 * applied on top of the base (they win over the base's keys and over --set),
 * then the other sweep axes. A value of experiment.variant with no [variant]
 * section stands for the base config unchanged (`bn_both` in `experiment.variant
 * = bn_both, none`); at most one value of the axis may be such a name, so a
 * typo is not silently a second copy of the base. Errors, each naming its line:
 * a section given twice, a key given twice in one, a variant setting
 * experiment.variant, experiment.name or a key the [sweep] varies, and, in a
 * file, a [variant] section no value of experiment.variant names.
 *
 * The canonical JSON is an object of sections, each an object of every key with
 * its value filled in (defaults included), in table order, lists as arrays,
 * numbers as numbers (floats as the shortest text that reads back to the same
 * float), no whitespace: {"experiment":{"name":"byol","method":"byol","seed":1},
 * "data":{"dir":...},...}. The JSON keys are the INI keys ([data] dir is
 * data_dir, [optim] name is optim). Parsing it back gives the same struct;
 * printing that gives the same bytes. Its hash is the config hash stored in
 * checkpoints.
 */
#ifndef BYOL_CONFIG_H
#define BYOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LIST 8
#define CONFIG_STR_LEN 256
#define CONFIG_MAX_SWEEP 8
#define CONFIG_MAX_SWEEP_VALUES 16
#define CONFIG_MAX_VARIANTS 16
#define CONFIG_MAX_VARIANT_KEYS 12
#define CONFIG_VARIANT_NAME_LEN 64

typedef enum { METHOD_BYOL, METHOD_SIMSIAM, METHOD_SIMCLR } method_kind;
typedef enum { ENCODER_MLP, ENCODER_CNN } encoder_kind;
typedef enum { NORM_BN, NORM_GN, NORM_GN_WS, NORM_LN, NORM_NONE } norm_kind;
typedef enum { INIT_DEFAULT, INIT_MODIFIED } init_kind;
typedef enum { OPT_LARS, OPT_SGD, OPT_ADAMW } opt_name;

typedef struct {
	char key[64];                                   /* "model.predictor_norm" */
	int n;
	char values[CONFIG_MAX_SWEEP_VALUES][CONFIG_STR_LEN];
} config_sweep_axis;

typedef struct {
	char key[64];                                   /* "model.predictor_norm" */
	char value[CONFIG_STR_LEN];                     /* as written: "none" */
} config_assignment;

typedef struct {
	char name[CONFIG_VARIANT_NAME_LEN];             /* "projector_only" */
	int n;
	config_assignment set[CONFIG_MAX_VARIANT_KEYS];
} config_variant;

typedef struct {
	/* [experiment] */
	char name[CONFIG_STR_LEN];      /* default "byol" */
	method_kind method;             /* byol */
	uint64_t seed;                  /* 1; at most 2^53 - 1 (exact in JSON) */
	char variant[CONFIG_STR_LEN];   /* "": the named variant of the run */
	/* [data] */
	char data_dir[CONFIG_STR_LEN];  /* DATA_DEFAULT_DIR */
	int train_limit;                /* 0 = all */
	int batch_size;                 /* 256, global batch B, multiple of shard_size */
	int shard_size;                 /* 64 */
	/* [augment] */
	float crop_scale[2];            /* 0.3, 1.0 */
	float crop_ratio[2];            /* 0.75, 1.3333334 (= 4/3 as a float) */
	float flip;                     /* 0.5 */
	float jitter;                   /* 0.4 */
	float blur;                     /* 0 */
	float solarize;                 /* 0 */
	/* [model] */
	encoder_kind encoder;           /* mlp */
	int encoder_widths[CONFIG_MAX_LIST];    /* mlp: 1024, 1024, 512; cnn: channels */
	int n_encoder_widths;
	int cnn_strides[CONFIG_MAX_LIST];       /* cnn only: 1, 2, 2 (one per width) */
	int n_cnn_strides;
	int proj_hidden;                /* 1024 */
	int proj_dim;                   /* 128 */
	int pred_hidden;                /* 1024 */
	norm_kind encoder_norm, projector_norm, predictor_norm;    /* bn */
	int gn_groups;                  /* 32 (clamped to divide each width) */
	init_kind init;                 /* default */
	/* [optim] */
	opt_name optim;                 /* lars */
	float lr;                       /* 1.0, for batch 256; scaled by B/256 */
	float weight_decay;             /* 1.5e-6 */
	float momentum;                 /* 0.9 */
	float lars_eta;                 /* 1e-3 */
	int epochs;                     /* 10 */
	float warmup_epochs;            /* 1 */
	/* [ema] */
	float tau_base;                 /* 0.99 */
	/* [loss] */
	float temperature;              /* simclr: 0.5 */
	/* [eval] */
	float knn_every_epochs;         /* 1; 0 = never */
	int knn_k;                      /* 20 */
	int probe;                      /* true */
	int probe_epochs;               /* 30 */
	/* [checkpoint] */
	int every_steps;                /* 200 */
	int keep;                       /* 3 */
	/* [sweep] */
	config_sweep_axis sweep[CONFIG_MAX_SWEEP];
	int n_sweep;
	/* [variant NAME] sections, in file order */
	config_variant variants[CONFIG_MAX_VARIANTS];
	int n_variants;
} experiment_config;

/* Fills every default (zeroes the struct first: no sweep, no variants). */
void config_defaults(experiment_config *c);

/* Fills the defaults, then applies the INI file; `path` names the file in
 * messages. Returns 0, or -EINVAL with "path:line: [section] key: what" in err,
 * or -errno from opening/reading the file (-ENOENT, -EFBIG over 1 MiB) with
 * "path: ...". On failure *c holds a partial result: do not use it. Does not
 * run the cross-key checks: call config_validate after the overrides. */
int config_parse_file(experiment_config *c, const char *path, char *err);
/* Same, from a NUL-terminated string; `name` (NULL: "<string>") stands for
 * the file in messages. */
int config_parse_string(experiment_config *c, const char *text, const char *name,
			char *err);

/* Applies one override "section.key=value" (the --set form; blanks around the
 * key and value are ignored). Setting a key that the sweep varies drops that
 * sweep axis (experiment.variant=NAME: every run is variant NAME, its section
 * still applied); a key a variant sets is overridden by the variant. "sweep.section.key=v1,v2" adds or replaces a sweep axis.
 * Returns 0 or -EINVAL with "--set: [section] key: what" in err; on failure c
 * is unchanged. */
int config_set(experiment_config *c, const char *assignment, char *err);

/* Cross-key checks (batch_size % shard_size == 0, crop_scale[0] <= [1], ...)
 * and the table's ranges. With a sweep, checks every combination instead of
 * the base ("sweep run 3 (data.shard_size=100): ..."); with variants, each run
 * as its variant makes it, and the variants themselves ("[variant none]
 * model.init: ..."). Call after all overrides. Returns 0 or -EINVAL with
 * "[section] key: what" in err. */
int config_validate(const experiment_config *c, char *err);

/* The canonical JSON (malloc'd; caller frees; NULL when out of memory) —
 * without the sweep and the variants: a run's config. */
char *config_to_json(const experiment_config *c);
/* The experiment's JSON: the canonical JSON followed, when there are any, by
 * "sweep": {"section.key": ["v1", "v2", ...], ...} (axes in order, values as
 * written) and "variants": {"NAME": {"section.key": "value", ...}, ...}
 * (malloc'd; NULL when out of memory). config_from_json reads it back. */
char *config_experiment_json(const experiment_config *c);
/* Fills the defaults, then applies canonical (or partial: missing keys keep
 * defaults) JSON, or an experiment's JSON with "sweep" and "variants" (checked
 * as the INI file's [sweep] and [variant] sections are). Unknown sections or
 * keys, duplicate keys, values of the wrong JSON type or out of range are
 * errors: -EINVAL with "config JSON: [section] key: what" in err. */
int config_from_json(experiment_config *c, const char *json, char *err);

/* 64-bit FNV-1a of the canonical JSON, as 16 hex digits + NUL into out[17]. */
void config_hash(const experiment_config *c, char out[17]);

/* Number of runs the sweep expands to (1 without a sweep; 0 for a malformed
 * sweep in a struct filled by hand, which config_validate reports). */
int config_sweep_count(const experiment_config *c);
/* The i-th combination (0-based, the last axis varying fastest): base with the
 * variant it names applied (experiment.variant, swept or fixed), then the
 * sweep's other values, and n_sweep = n_variants = 0. out may be base. With no
 * sweep, i = 0 gives the one run (base with its variant applied). Returns 0 or
 * -EINVAL (i out of range, a value that does not parse in a struct filled by
 * hand). */
int config_sweep_get(const experiment_config *base, int i, experiment_config *out,
		     char *err);

/* Names for the n = config_sweep_count(c) runs, into names (n slots of len
 * bytes each, len >= 32): without a sweep, or with one run, the experiment's
 * name; else "NAME/key=value,key=value" over the axes of more than one value,
 * key the part after the dot ("bn-ablation/variant=none,seed=2"; the whole
 * section.key when two such axes share it), blanks in values as '_'. A name
 * longer than len - 1 bytes is cut at a UTF-8 character boundary; runs whose
 * names would then be equal are named "NAME/INDEX" instead, so every name is
 * unique. Returns 0 or -EINVAL / -ENOMEM with err. */
int config_sweep_names(const experiment_config *c, char *names, size_t len, char *err);

/* Writes the table as documentation ("section.key  type  default  help" lines,
 * the type with its range or its enum names). */
void config_print_help(void *file /* FILE* */);

/* The INI/JSON name of a value ("gn_ws", "simclr"); "?" when out of range. */
const char *config_norm_name(norm_kind k);
const char *config_method_name(method_kind k);

#endif
