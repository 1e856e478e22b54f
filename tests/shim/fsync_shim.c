/*
 * fsync_shim.c — an LD_PRELOAD shim for the end-to-end tests: it makes the
 * fsync failures and delays a test cannot get from a real disk on demand.
 * While the file $FSYNC_SHIM_FLAG exists, an fsync whose path contains
 * $FSYNC_SHIM_MATCH does what $FSYNC_SHIM_ACTION says:
 *
 *   fail-dir   of a directory: fails with EIO (tests/e2e/dir_fsync.sh: a
 *              checkpoint renamed into place, then its directory's fsync refused)
 *   hold-file  of a regular file: waits until the flag is removed, after creating
 *              $FSYNC_SHIM_FLAG.held (tests/e2e/cancel_restart.sh: a checkpoint
 *              write held in byold's threadpool)
 *
 * Every other fsync is the real one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum action { NONE, FAIL_DIR, HOLD_FILE };

static enum action action_for(int fd)
{
	const char *match = getenv("FSYNC_SHIM_MATCH");
	const char *flag = getenv("FSYNC_SHIM_FLAG");
	const char *what = getenv("FSYNC_SHIM_ACTION");
	struct stat st;
	if (!match || !flag || !what || access(flag, F_OK) != 0 || fstat(fd, &st) < 0)
		return NONE;
	enum action a = NONE;
	if (strcmp(what, "fail-dir") == 0 && S_ISDIR(st.st_mode))
		a = FAIL_DIR;
	else if (strcmp(what, "hold-file") == 0 && S_ISREG(st.st_mode))
		a = HOLD_FILE;
	if (a == NONE)
		return NONE;
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return NONE;
	path[n] = '\0';
	return strstr(path, match) ? a : NONE;
}

static void hold_while_flagged(void)
{
	const char *flag = getenv("FSYNC_SHIM_FLAG");
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
	switch (action_for(fd)) {
	case FAIL_DIR:
		errno = EIO;
		return -1;
	case HOLD_FILE:
		hold_while_flagged();
		break;
	case NONE:
		break;
	}
	return real(fd);
}
