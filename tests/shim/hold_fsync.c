/*
 * hold_fsync.c — an LD_PRELOAD shim for tests/e2e/cancel_restart.sh: fsync of a
 * regular file whose path contains $HOLD_FSYNC_MATCH waits while the file
 * $HOLD_FSYNC_FLAG exists, and creates $HOLD_FSYNC_FLAG.held when it starts
 * waiting. Every other fsync is the real one.
 *
 * It holds a checkpoint write in the daemon's threadpool for as long as a test
 * needs: the one moment when a cancel of the active run has to wait.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int should_hold(int fd)
{
	const char *match = getenv("HOLD_FSYNC_MATCH");
	const char *flag = getenv("HOLD_FSYNC_FLAG");
	struct stat st;
	if (!match || !flag || access(flag, F_OK) != 0 || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return strstr(path, match) != NULL;
}

static void hold(void)
{
	const char *flag = getenv("HOLD_FSYNC_FLAG");
	char held[PATH_MAX];
	snprintf(held, sizeof(held), "%s.held", flag);
	int fd = open(held, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
	struct timespec ten_ms = { 0, 10 * 1000 * 1000 };
	while (access(flag, F_OK) == 0)
		nanosleep(&ten_ms, NULL);
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (should_hold(fd))
		hold();
	return real(fd);
}
