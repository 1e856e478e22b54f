#include "byol/pool.h"

#include <pthread.h>
#include <stdlib.h>

struct pool {
	int threads;
	pthread_t *tid;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	long generation;        /* bumped by each pool_run */
	int stop;
	pool_fn fn;
	void *arg;
	int n, next, finished;  /* tasks of the current run; taken; completed */
	int busy;               /* helper threads inside the current run */
};

typedef struct {
	pool *p;
	int index;
} thread_arg;

/* Takes and runs tasks until none is left; called with mu held, returns with it. */
static void drain(pool *p, int thread)
{
	while (p->next < p->n) {
		int task = p->next++;
		pthread_mutex_unlock(&p->mu);
		p->fn(p->arg, thread, task);
		pthread_mutex_lock(&p->mu);
		p->finished++;
	}
}

static void *helper_main(void *v)
{
	thread_arg *ta = v;
	pool *p = ta->p;
	int index = ta->index;
	free(ta);
	long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->generation == seen)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		seen = p->generation;
		p->busy++;
		drain(p, index);
		p->busy--;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

pool *pool_new(int threads)
{
	if (threads < 1)
		return NULL;
	pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->threads = threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	if (threads > 1 && !(p->tid = calloc((size_t)threads - 1, sizeof(pthread_t))))
		goto fail;
	for (int i = 1; i < threads; i++) {
		thread_arg *ta = malloc(sizeof(*ta));
		if (!ta)
			goto fail_started;
		ta->p = p;
		ta->index = i;
		if (pthread_create(&p->tid[i - 1], NULL, helper_main, ta) != 0) {
			free(ta);
			goto fail_started;
		}
		continue;
fail_started:
		p->threads = i; /* join only those started */
		pool_free(p);
		return NULL;
	}
	return p;
fail:
	free(p->tid);
	free(p);
	return NULL;
}

int pool_threads(const pool *p)
{
	return p->threads;
}

void pool_run(pool *p, pool_fn fn, void *arg, int n)
{
	if (p->threads == 1) {
		for (int i = 0; i < n; i++)
			fn(arg, 0, i);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->arg = arg;
	p->n = n;
	p->next = p->finished = 0;
	p->generation++;
	pthread_cond_broadcast(&p->work);
	drain(p, 0);
	while (p->finished < p->n || p->busy > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void pool_free(pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->threads; i++)
		pthread_join(p->tid[i - 1], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->tid);
	free(p);
}
