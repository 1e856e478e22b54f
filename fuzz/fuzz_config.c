/*
 * fuzz_config.c — libFuzzer target for the experiment file: config_parse_string
 * (the INI parser: lib/config.c over lib/inifile.c and libinih), then the --set
 * overrides, config_validate, the canonical JSON and the sweep.
 *
 * The input is the file's text up to its first NUL byte; each further
 * NUL-separated piece is one `--set section.key=value` applied after it. An
 * input starting with '{' is read as canonical JSON (config_from_json) instead.
 *
 * Checked beyond "no crash, no leak, no undefined behaviour":
 * - a failure is -EINVAL with a message naming the file and line
 *   ("fuzz.ini:3: ...") or the --set or "config JSON";
 * - a parsed config round-trips: config_to_json, config_from_json of that, and
 *   config_to_json again give the same bytes; likewise the experiment's JSON
 *   (config_experiment_json: with the sweep and the variants) and the first
 *   and last run of the sweep;
 * - config_sweep_names gives every run a name, each shorter than its slot and
 *   different from all the others;
 * - config_validate returns 0 or -EINVAL with a message.
 */
#include <errno.h>
#include <string.h>

#include "byol/config.h"
#include "byol/error.h"
#include "fuzz.h"

#define NAME "fuzz.ini"

/* A sweep of more runs than this is validated through its first and last runs
 * only: validating 4096 runs takes ~0.1 s. */
#define VALIDATE_MAX_RUNS 64

/* Longest run name checked: the smallest slot config_sweep_names takes. */
#define NAME_SLOT 32

static int by_string(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void check_names(const experiment_config *c, int runs)
{
	char err[BYOL_ERR_LEN] = "";
	char *names = malloc((size_t)runs * NAME_SLOT);
	FUZZ_CHECK(names, "out of memory");
	memset(names, 0xff, (size_t)runs * NAME_SLOT);
	int rc = config_sweep_names(c, names, NAME_SLOT, err);
	FUZZ_CHECK(rc == 0, "run names of %d runs: %s", runs, err);
	for (int i = 0; i < runs; i++) {
		const char *n = names + (size_t)i * NAME_SLOT;
		FUZZ_CHECK(memchr(n, '\0', NAME_SLOT), "run %d: name not terminated", i);
		/* (an empty experiment name, which config_validate refuses, names an
		 * only run "") */
		FUZZ_CHECK(n[0] || (!c->name[0] && runs == 1), "run %d: no name", i);
	}
	qsort(names, (size_t)runs, NAME_SLOT, by_string);
	for (int i = 1; i < runs; i++)
		FUZZ_CHECK(strcmp(names + (size_t)(i - 1) * NAME_SLOT,
				  names + (size_t)i * NAME_SLOT) != 0,
			   "two runs named '%s'", names + (size_t)i * NAME_SLOT);
	free(names);
}

/* The experiment's JSON (sweep and variants included) reads back to itself. */
static void check_experiment_json(const experiment_config *c)
{
	static experiment_config back;
	char err[BYOL_ERR_LEN] = "";
	char *j1 = config_experiment_json(c);
	FUZZ_CHECK(j1 != NULL, "config_experiment_json failed");
	int rc = config_from_json(&back, j1, err);
	FUZZ_CHECK(rc == 0, "experiment JSON does not read back: %s\n%s", err, j1);
	char *j2 = config_experiment_json(&back);
	FUZZ_CHECK(j2 != NULL, "config_experiment_json failed");
	FUZZ_CHECK(strcmp(j1, j2) == 0, "experiment JSON changed on a round trip:\n%s\n%s",
		   j1, j2);
	free(j1);
	free(j2);
}

static void check_roundtrip(const experiment_config *c)
{
	static experiment_config back;
	char err[BYOL_ERR_LEN] = "";
	char *j1 = config_to_json(c);
	FUZZ_CHECK(j1 != NULL, "config_to_json failed");
	int rc = config_from_json(&back, j1, err);
	FUZZ_CHECK(rc == 0, "canonical JSON does not read back: %s\n%s", err, j1);
	char *j2 = config_to_json(&back);
	FUZZ_CHECK(j2 != NULL, "config_to_json failed");
	FUZZ_CHECK(strcmp(j1, j2) == 0, "JSON changed on a round trip:\n%s\n%s", j1, j2);
	free(j1);
	free(j2);
}

static void check_validate(const experiment_config *c)
{
	char err[BYOL_ERR_LEN] = "";
	int rc = config_validate(c, err);
	FUZZ_CHECK(rc == 0 || (rc == -EINVAL && err[0]), "validate: rc %d \"%s\"", rc, err);
}

static void check_config(const experiment_config *c)
{
	static experiment_config run;
	char err[BYOL_ERR_LEN] = "";
	char hash[17];
	check_roundtrip(c);
	check_experiment_json(c);
	config_hash(c, hash);
	FUZZ_CHECK(strlen(hash) == 16, "hash '%s'", hash);
	int runs = config_sweep_count(c);
	FUZZ_CHECK(runs >= 1 && runs <= 4096, "a parsed sweep of %d runs", runs);
	check_names(c, runs);
	if (runs <= VALIDATE_MAX_RUNS)
		check_validate(c);
	const int pick[2] = { 0, runs - 1 };
	for (int k = 0; k < (runs > 1 ? 2 : 1); k++) {
		int rc = config_sweep_get(c, pick[k], &run, err);
		FUZZ_CHECK(rc == 0, "run %d of %d: %s", pick[k], runs, err);
		FUZZ_CHECK(run.n_sweep == 0 && run.n_variants == 0,
			   "a run with a sweep or variants");
		check_roundtrip(&run);
		check_validate(&run);
	}
	FUZZ_CHECK(config_sweep_get(c, runs, &run, err) == -EINVAL, "run %d of %d given", runs,
		   runs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static experiment_config c;
	char err[BYOL_ERR_LEN] = "";
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (text[0] == '{') {
		int rc = config_from_json(&c, text, err);
		if (rc == 0)
			check_config(&c);
		else
			FUZZ_CHECK(rc == -EINVAL && strncmp(err, "config JSON: ", 13) == 0,
				   "rc %d \"%s\"", rc, err);
		free(text);
		return 0;
	}

	int rc = config_parse_string(&c, text, NAME, err);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL && strncmp(err, NAME ":", strlen(NAME) + 1) == 0,
			   "rc %d \"%s\"", rc, err);
		free(text);
		return 0;
	}
	/* the overrides: NUL-separated after the text */
	size_t at = strlen(text) + 1;
	while (at < size) {
		const char *set = text + at;
		at += strlen(set) + 1;
		static experiment_config before;
		before = c;
		rc = config_set(&c, set, err);
		if (rc != 0) {
			FUZZ_CHECK(rc == -EINVAL && strncmp(err, "--set", 5) == 0, "rc %d \"%s\"",
				   rc, err);
			FUZZ_CHECK(memcmp(&before, &c, sizeof(c)) == 0,
				   "a failed --set %s changed the config", set);
		}
	}
	check_config(&c);
	free(text);
	return 0;
}
