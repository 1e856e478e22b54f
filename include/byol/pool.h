/*
 * pool.h — a small pool of passive worker threads.
 *
 * pool_run(p, fn, arg, n) runs fn(arg, thread, task) for task = 0 .. n-1 on the
 * pool's threads (the calling thread is thread 0 and works too) and returns when
 * all tasks are done. Tasks are taken in order from a shared counter, so which
 * thread runs which task varies; callers that need reproducible results make
 * each task's output depend on the task alone (byold's shards do). Idle threads
 * sleep on a condition variable: they never spin beside OpenBLAS.
 */
#ifndef BYOL_POOL_H
#define BYOL_POOL_H

typedef struct pool pool;

typedef void (*pool_fn)(void *arg, int thread, int task);

/* A pool of `threads` threads in all, the caller included (threads >= 1; with 1
 * no thread is started). Returns NULL when out of memory or threads. */
pool *pool_new(int threads);
int pool_threads(const pool *p);
/* Runs the n tasks and waits for them. Not reentrant: one pool_run at a time. */
void pool_run(pool *p, pool_fn fn, void *arg, int n);
/* Stops and joins the threads. */
void pool_free(pool *p);

#endif
