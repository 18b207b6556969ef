#define _GNU_SOURCE
#include "executor/base/memo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEMO_MAX (2 * PATH_MAX + 1024)

int berth_memo_file_key(const char *path, char *key, size_t len)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	snprintf(key, len, "%s %lu %lu %lld %lld.%09ld", path, (unsigned long)st.st_dev,
		 (unsigned long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	return 0;
}

bool berth_memo_get(int dir_fd, const char *name, const char *key, char *answer,
		    size_t len, time_t *written)
{
	char buf[MEMO_MAX];
	size_t klen = strlen(key);
	struct stat st;

	if (dir_fd < 0)
		return false;
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, buf, sizeof(buf) - 1)
							       : -1;
	close(fd);
	if (n <= (ssize_t)klen)
		return false;
	buf[n] = '\0';
	if (strncmp(buf, key, klen) != 0 || buf[klen] != '\n')
		return false;
	snprintf(answer, len, "%.*s", (int)strcspn(buf + klen + 1, "\n"), buf + klen + 1);
	if (written)
		*written = st.st_mtim.tv_sec;
	return true;
}

void berth_memo_put(int dir_fd, const char *name, const char *key, const char *answer)
{
	char tmp[NAME_MAX + 1];

	if (dir_fd < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%d", name, (int)getpid());
	int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = dprintf(fd, "%s\n%s\n", key, answer) > 0;
	if (close(fd) < 0)
		ok = false;
	if (!ok || renameat(dir_fd, tmp, dir_fd, name) < 0)
		unlinkat(dir_fd, tmp, 0);
}
