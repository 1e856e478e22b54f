/*
 * fail_dir_fsync.c — an LD_PRELOAD shim for tests/e2e/dir_fsync.sh: fsync of a
 * directory whose path contains $FAIL_DIR_FSYNC_MATCH fails with EIO while the
 * file $FAIL_DIR_FSYNC_FLAG exists. Every other fsync is the real one.
 *
 * It makes the one failure a test cannot get from a real disk on demand: a
 * checkpoint renamed into place, then its directory's fsync refused.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int should_fail(int fd)
{
	const char *match = getenv("FAIL_DIR_FSYNC_MATCH");
	const char *flag = getenv("FAIL_DIR_FSYNC_FLAG");
	struct stat st;
	if (!match || !flag || access(flag, F_OK) != 0 || fstat(fd, &st) < 0 ||
	    !S_ISDIR(st.st_mode))
		return 0;
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return strstr(path, match) != NULL;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (should_fail(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}
