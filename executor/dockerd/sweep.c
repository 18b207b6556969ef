/* berth: removing a job's Docker containers, also when dockerd is down
 * (see sweep.h). */
#define _GNU_SOURCE
#include "executor/dockerd/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int berth_docker_sweep_label(struct berth_docker *d, const char *label, const char *also,
			     size_t *removed, struct berth_err *err)
{
	char **ids = NULL;
	size_t n = 0;
	int rc = 0;

	*removed = 0;
	if (berth_docker_container_list(d, label, also, &ids, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = berth_docker_container_remove(d, ids[i], err);
		*removed += rc == 0;
	}
	berth_docker_ids_free(ids);
	return rc;
}

static bool is_job_id(const char *job)
{
	size_t len = strlen(job);

	return len > 0 && len < 16 && strspn(job, "0123456789") == len;
}

/* A step id: digits, or Slurm's names ("batch", "extern", ...). */
static bool is_step_id(const char *step)
{
	size_t len = strlen(step);

	return len > 0 && len < 32 &&
	       strspn(step, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

/* A record's name: "JOB" or "JOB.STEP". */
static bool is_record(const char *name)
{
	char job[64];
	const char *dot = strchr(name, '.');

	if (!dot)
		return is_job_id(name);
	if ((size_t)(dot - name) >= sizeof(job))
		return false;
	snprintf(job, sizeof(job), "%.*s", (int)(dot - name), name);
	return is_job_id(job) && is_step_id(dot + 1);
}

/* CacheDir/.docker-sweep, root's and private: a user cannot add a record
 * (which could only make root sweep a job's containers early). */
static int open_records(const char *cache_dir, bool create, struct berth_err *err)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/" BERTH_DOCKER_SWEEP_LEAF, cache_dir);
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s", path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT && !create ? -2 : berth_fail(err, errno, "cannot open %s", path);
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 077)) {
		close(fd);
		return berth_fail(err, 0, "%s is not root's private folder; remove it", path);
	}
	return fd;
}

int berth_docker_sweep_defer(const char *cache_dir, const char *job, const char *step,
			     struct berth_err *err)
{
	char name[96];

	if (!is_job_id(job))
		return berth_fail(err, 0, "'%s' is not a job id", job);
	if (step && !is_step_id(step))
		return berth_fail(err, 0, "'%s' is not a step id", step);
	snprintf(name, sizeof(name), "%s%s%s", job, step ? "." : "", step ? step : "");
	_cleanup_close_ int dir = open_records(cache_dir, true, err);
	if (dir < 0)
		return -1;
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_fail(err, errno, "cannot record %s %s in %s/" BERTH_DOCKER_SWEEP_LEAF,
				  step ? "step" : "job", name, cache_dir);
	close(fd);
	return 0;
}

int berth_docker_sweep_deferred(struct berth_docker *d, const char *cache_dir,
				const char *node_label, size_t *removed, size_t *jobs,
				struct berth_err *err)
{
	char label[64];
	int rc = 0;

	*removed = *jobs = 0;
	int dir = open_records(cache_dir, false, err);
	if (dir == -2)
		return 0; /* never deferred anything */
	DIR *list = dir >= 0 ? fdopendir(dir) : NULL;
	if (!list) {
		if (dir >= 0)
			close(dir);
		return dir < 0 ? -1 : berth_fail(err, errno, "cannot list deferred sweeps");
	}
	for (struct dirent *e; rc == 0 && (e = readdir(list));) {
		size_t n = 0;
		bool step = strchr(e->d_name, '.') != NULL;

		if (!is_record(e->d_name))
			continue;
		snprintf(label, sizeof(label), "berth.%s=%s", step ? "step" : "job", e->d_name);
		rc = berth_docker_sweep_label(d, label, step ? node_label : NULL, &n, err);
		*removed += n;
		if (rc == 0) {
			unlinkat(dirfd(list), e->d_name, 0);
			(*jobs)++;
		}
	}
	closedir(list);
	return rc;
}
