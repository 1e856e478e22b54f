/* test_pool.c — every task runs exactly once, on a valid thread, for any pool
 * size; a pool survives thousands of runs; idle threads do not spin. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "byol/pool.h"

typedef struct {
	atomic_int *count;
	int threads;
	atomic_int bad_thread;
} ctx;

static void task(void *arg, int thread, int t)
{
	ctx *c = arg;
	if (thread < 0 || thread >= c->threads)
		atomic_fetch_add(&c->bad_thread, 1);
	atomic_fetch_add(&c->count[t], 1);
}

static void check_pool(int threads, int n, int runs)
{
	pool *p = pool_new(threads);
	assert_non_null(p);
	assert_int_equal(pool_threads(p), threads);
	ctx c = {.threads = threads};
	c.count = calloc((size_t)n + 1, sizeof(atomic_int));
	for (int r = 0; r < runs; r++)
		pool_run(p, task, &c, n);
	for (int t = 0; t < n; t++)
		assert_int_equal(atomic_load(&c.count[t]), runs);
	assert_int_equal(atomic_load(&c.count[n]), 0);
	assert_int_equal(atomic_load(&c.bad_thread), 0);
	free(c.count);
	pool_free(p);
}

static void test_one_thread(void **s) { (void)s; check_pool(1, 17, 3); }
static void test_two_threads(void **s) { (void)s; check_pool(2, 17, 3); }
static void test_more_threads_than_tasks(void **s) { (void)s; check_pool(4, 2, 5); }
static void test_no_tasks(void **s) { (void)s; check_pool(3, 0, 4); }
static void test_many_runs(void **s) { (void)s; check_pool(2, 4, 5000); }

static void test_bad_size(void **s)
{
	(void)s;
	assert_null(pool_new(0));
}

/* A pool that sits idle uses no CPU (its threads sleep, never spin). */
static void test_idle_is_passive(void **s)
{
	(void)s;
#ifdef __SANITIZE_ADDRESS__
	skip(); /* the sanitizer runtime's own threads use CPU while we sleep */
#endif
	pool *p = pool_new(3);
	ctx c = {.threads = 3};
	c.count = calloc(4, sizeof(atomic_int));
	pool_run(p, task, &c, 4);
	struct rusage a, b;
	getrusage(RUSAGE_SELF, &a);
	struct timespec ts = {0, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	getrusage(RUSAGE_SELF, &b);
	double cpu = (b.ru_utime.tv_sec - a.ru_utime.tv_sec) + 1e-6 * (b.ru_utime.tv_usec - a.ru_utime.tv_usec) +
		     (b.ru_stime.tv_sec - a.ru_stime.tv_sec) + 1e-6 * (b.ru_stime.tv_usec - a.ru_stime.tv_usec);
	if (cpu >= 0.1)
		fprintf(stderr, "idle cpu %.3f s\n", cpu);
	assert_true(cpu < 0.1); /* two spinning threads would burn 0.4 s */
	free(c.count);
	pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_thread),
		cmocka_unit_test(test_two_threads),
		cmocka_unit_test(test_more_threads_than_tasks),
		cmocka_unit_test(test_no_tasks),
		cmocka_unit_test(test_many_runs),
		cmocka_unit_test(test_bad_size),
		cmocka_unit_test(test_idle_is_passive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
