/*
 * test_filter.c — the ListRequest filters of byold (daemon/filter.c): parsing,
 * every error, and matching runs on their fields, config and final metrics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/byold.h"

/* A run with the default config but for the given overrides ("section.key=v"). */
static store_run make_run(int64_t id, store_status st, const char *name, const char *set1,
			  const char *set2, const char *final_json)
{
	store_run r;
	memset(&r, 0, sizeof(r));
	r.id = id;
	r.experiment_id = 10 + id;
	r.status = st;
	snprintf(r.name, sizeof(r.name), "%s", name);
	experiment_config *c = malloc(sizeof(*c));
	assert_non_null(c);
	config_defaults(c);
	char err[BYOL_ERR_LEN];
	if (set1)
		assert_int_equal(config_set(c, set1, err), 0);
	if (set2)
		assert_int_equal(config_set(c, set2, err), 0);
	r.config_json = config_to_json(c);
	free(c);
	r.final_json = final_json ? strdup(final_json) : NULL;
	return r;
}

static run_filter *parse_ok(const char *text)
{
	run_filter *f = NULL;
	char err[BYOL_ERR_LEN] = "";
	int rc = filter_parse(text, &f, err);
	if (rc != 0)
		fail_msg("filter_parse(%s): %s", text, err);
	return f;
}

static int matches(const char *text, const store_run *r)
{
	run_filter *f = parse_ok(text);
	assert_non_null(f);
	int m = filter_match(f, r);
	filter_free(f);
	return m;
}

static void test_empty(void **state)
{
	(void)state;
	assert_null(parse_ok(""));
	assert_null(parse_ok("   "));
}

static void test_fields_and_config(void **state)
{
	(void)state;
	store_run a = make_run(3, STORE_COMPLETED, "exp/0", "model.predictor_norm=none",
			       "data.shard_size=32", "{\"probe_acc\":0.71,\"knn_acc\":0.65}");
	store_run b = make_run(4, STORE_RUNNING, "exp/1", "optim.lr=0.1", NULL, NULL);

	assert_true(matches("status = completed", &a));
	assert_false(matches("status = completed", &b));
	assert_true(matches("status != completed", &b));
	assert_true(matches("name = 'exp/0'", &a));
	assert_true(matches("id >= 4", &b));
	assert_false(matches("id > 4", &b));
	assert_true(matches("experiment = 13", &a));

	assert_true(matches("config.model.predictor_norm = 'none'", &a));
	assert_false(matches("config.model.predictor_norm = \"none\"", &b));
	assert_true(matches("config.model.predictor_norm = bn", &b));
	assert_true(matches("config.data.shard_size <= 32 AND status = completed", &a));
	assert_false(matches("config.data.shard_size < 32", &a));
	assert_true(matches("config.optim.lr = 0.1", &b));
	assert_true(matches("config.optim.lr == 1", &a));
	assert_true(matches("config.eval.probe = true", &a));
	assert_true(matches("config.model.encoder_widths = '1024, 1024, 512'", &a));
	/* a number against text never matches */
	assert_false(matches("config.data.shard_size = abc", &a));

	assert_true(matches("final.probe_acc > 0.7", &a));
	assert_false(matches("final.probe_acc > 0.75", &a));
	/* no final metrics yet: no match */
	assert_false(matches("final.probe_acc > 0", &b));

	store_run_release(&a);
	store_run_release(&b);
}

static void expect_error(const char *text, const char *want)
{
	run_filter *f = (run_filter *)1;
	char err[BYOL_ERR_LEN] = "";
	assert_int_equal(filter_parse(text, &f, err), -EINVAL);
	assert_null(f);
	if (!strstr(err, want))
		fail_msg("filter_parse(%s): '%s' does not say '%s'", text, err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("bogus = 1", "unknown key 'bogus'");
	expect_error("config.model = 1", "expected config.<section>.<key>");
	expect_error("config.model.widths = 1", "no such experiment key");
	expect_error("status completed", "expected an operator after 'status'");
	expect_error("status =", "expected a value after 'status'");
	expect_error("name = 'abc", "unterminated text");
	expect_error("status = done or id = 1", "expected 'and'");
	expect_error("= 3", "expected a key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_fields_and_config),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
