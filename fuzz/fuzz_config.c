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
 *   config_to_json again give the same bytes; likewise for the first and last
 *   run of its sweep;
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
	config_hash(c, hash);
	FUZZ_CHECK(strlen(hash) == 16, "hash '%s'", hash);
	int runs = config_sweep_count(c);
	FUZZ_CHECK(runs >= 1 && runs <= 4096, "a parsed sweep of %d runs", runs);
	if (runs <= VALIDATE_MAX_RUNS)
		check_validate(c);
	const int pick[2] = { 0, runs - 1 };
	for (int k = 0; k < 2 && c->n_sweep; k++) {
		int rc = config_sweep_get(c, pick[k], &run, err);
		FUZZ_CHECK(rc == 0, "sweep run %d of %d: %s", pick[k], runs, err);
		FUZZ_CHECK(run.n_sweep == 0, "a sweep run with a sweep");
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
