/* berth: a client of the OCI distribution API (see registry.h): manifests,
 * the layout folder, blobs and the entry points (pull, resolve, mirrors,
 * the login check).  HTTP and authentication are in registry_http.c, the
 * credential files in credentials.c. */
#define _GNU_SOURCE
#include "executor/source/registry.h"
#include "executor/source/registry_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include "executor/base/jsonval.h"

#include "executor/source/fetch.h"
#include "executor/base/fs.h"
#include "executor/source/tarmember.h"

#define REG_PARALLEL_MAX 16

static const char manifest_accept[] =
	"Accept: application/vnd.oci.image.index.v1+json, "
	"application/vnd.docker.distribution.manifest.list.v2+json, "
	"application/vnd.oci.image.manifest.v1+json, "
	"application/vnd.docker.distribution.manifest.v2+json";

/* ---- manifests ------------------------------------------------------------ */

static void ref_text(const struct berth_imageref *ref, char *out, size_t cap)
{
	berth_imageref_format(ref, out, cap);
}

/* Fetch manifest `which` (tag or digest); check it against `digest` when
 * pinned; *got_digest is the sha256 of the bytes. */
static int fetch_manifest(struct reg_session *s, const char *which, const char *digest,
			  char **body, size_t *len, char got_digest[72], struct berth_err *err)
{
	char path[600], what[700], reason[256], shown[600];
	struct reg_response r;

	ref_text(s->ref, shown, sizeof(shown));
	snprintf(path, sizeof(path), "%s/manifests/%s", s->ref->repository, which);
	snprintf(what, sizeof(what), "%s", shown);
	if (reg_get(s, path, manifest_accept, what, &r, err) < 0)
		return -1;
	if (r.status != 200) {
		reg_reason(&r, reason, sizeof(reason));
		long st = r.status;
		unsigned after = r.retry_after;
		reg_response_free(&r);
		if (st == 404)
			return berth_fail(err, 0, "registry %s has no image %s: unknown repository or "
					  "tag%s%s%s; check the name and the tag", s->ref->registry,
					  shown, reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
		if (st == 401 && !strncmp(s->authz, "Authorization: Basic ", 21))
			return berth_fail(err, 0, "registry %s refused the credentials of %s for %s%s%s%s; "
					  "check them with `berth login %s`", s->ref->registry, s->user,
					  shown, reason[0] ? " (" : "", reason, reason[0] ? ")" : "",
					  s->ref->registry);
		if (st == 401 || st == 403)
			return s->have_creds
				       ? berth_fail(err, 0, "registry %s refused %s access to %s (%ld%s%s); "
						    "check the name and your rights there", s->ref->registry,
						    s->user, shown, st, reason[0] ? ": " : "", reason)
				       : no_creds_error(s, shown, reason, err);
		if (st == 429)
			return berth_fail(err, 0, "registry %s is rate limiting (429%s%s)%s%.0u%s; wait, "
					  "or use credentials or a mirror", s->ref->registry,
					  reason[0] ? ": " : "", reason, after ? ", retry after " : "",
					  after, after ? " s" : "");
		return berth_fail(err, 0, "registry %s answered %ld for %s%s%s%s", s->ref->registry, st,
				  shown, reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
	}
	berth_sha256_hex(r.body ? r.body : "", r.len, got_digest);
	if (digest && strcmp(digest, got_digest) != 0) {
		reg_response_free(&r);
		return berth_fail(err, 0, "registry %s sent a manifest for %s whose digest is %s, not "
				  "%s; nothing was kept: tell the registry's operator",
				  s->ref->registry, shown, got_digest, digest);
	}
	*body = r.body;
	*len = r.len;
	return 0;
}

/* ---- the layout folder ---------------------------------------------------- */

struct layout {
	int dir_fd;   /* LAYOUT */
	int blobs_fd; /* LAYOUT/blobs/sha256 */
	char blobs[4200];
};

static int layout_open(struct layout *l, const char *dir, struct berth_err *err)
{
	l->dir_fd = l->blobs_fd = -1;
	snprintf(l->blobs, sizeof(l->blobs), "%s/blobs/sha256", dir);
	l->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dir_fd < 0)
		return berth_fail(err, errno, "cannot open %s", dir);
	mkdirat(l->dir_fd, "blobs", 0700);
	mkdirat(l->dir_fd, "blobs/sha256", 0700);
	mkdirat(l->dir_fd, "locks", 0700);
	l->blobs_fd = openat(l->dir_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (l->blobs_fd < 0)
		return berth_fail(err, errno, "cannot open %s", l->blobs);
	return 0;
}

static void layout_close(struct layout *l)
{
	if (l->blobs_fd >= 0)
		close(l->blobs_fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
}

static bool blob_present(struct layout *l, const char *digest)
{
	struct stat st;

	return fstatat(l->blobs_fd, digest + 7, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* A small blob already in the layout (verified when it was stored; checked
 * again here, it is cheap). */
static int blob_read_small(struct layout *l, const char *digest, char **body, size_t *len)
{
	_cleanup_close_ int fd = openat(l->blobs_fd, digest + 7, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char seen[72];

	*body = NULL;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > REG_BODY_MAX)
		return -1;
	if (!(*body = malloc((size_t)st.st_size + 1)))
		return -1;
	if (berth_read_all(fd, *body, (size_t)st.st_size) < 0)
		goto bad;
	(*body)[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	berth_sha256_hex(*body, *len, seen);
	if (strcmp(seen, digest) == 0)
		return 0;
bad:
	free(*body);
	*body = NULL;
	return -1;
}

static int blob_store_small(struct layout *l, const char *digest, const char *body, size_t len,
			    struct berth_err *err)
{
	char tmp[96];

	snprintf(tmp, sizeof(tmp), "%s.part-%d", digest + 7, (int)getpid());
	_cleanup_close_ int fd = openat(l->blobs_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
					O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, body, len) < 0 ||
	    renameat(l->blobs_fd, tmp, l->blobs_fd, digest + 7) < 0) {
		int e = errno;
		unlinkat(l->blobs_fd, tmp, 0);
		return berth_fail(err, e, "cannot store blob %s in %s (check the free space there)",
				  digest, l->blobs);
	}
	return 0;
}

/* Manifest or index `digest` (or the tag), from the layout when there,
 * else from the registry, stored. */
static int get_manifest(struct reg_session *s, struct layout *l, const char *which,
			const char *digest, char **body, size_t *len, char got[72],
			struct berth_err *err)
{
	if (digest && blob_read_small(l, digest, body, len) == 0) {
		snprintf(got, 72, "%s", digest);
		return 0;
	}
	if (fetch_manifest(s, which, digest, body, len, got, err) < 0)
		return -1;
	if (blob_store_small(l, got, *body, *len, err) < 0) {
		free(*body);
		*body = NULL;
		return -1;
	}
	return 0;
}


void berth_registry_platform(char *out, size_t len)
{
	struct utsname u;
	const char *arch = "amd64", *variant = "";

	if (uname(&u) == 0) {
		if (!strcmp(u.machine, "aarch64") || !strcmp(u.machine, "arm64")) {
			arch = "arm64";
			variant = "/v8";
		} else if (!strncmp(u.machine, "armv7", 5)) {
			arch = "arm";
			variant = "/v7";
		} else if (!strcmp(u.machine, "ppc64le") || !strcmp(u.machine, "s390x") ||
			   !strcmp(u.machine, "riscv64")) {
			arch = u.machine;
		} else if (!strcmp(u.machine, "i686") || !strcmp(u.machine, "i386")) {
			arch = "386";
		}
	}
	snprintf(out, len, "linux/%s%s", arch, variant);
}

static bool is_index(struct json_object *root, const char *content_type)
{
	const char *mt = bj_member_string(root, "mediaType");
	struct json_object *m;

	if (!mt)
		mt = content_type;
	if (mt && (strstr(mt, "manifest.list") || strstr(mt, "image.index")))
		return true;
	return json_object_object_get_ex(root, "manifests", &m) &&
	       !json_object_object_get_ex(root, "layers", &m);
}

/* The entry of an index for this node: os and architecture must match; a
 * variant, when both name one, too. */
static int pick_platform(struct reg_session *s, struct json_object *index, char digest[72],
			 struct berth_err *err)
{
	char want[64], seen[512] = "";
	struct json_object *list;
	size_t used = 0;

	berth_registry_platform(want, sizeof(want));
	char *want_variant = strchr(want + 6, '/');
	size_t arch_len = want_variant ? (size_t)(want_variant - want - 6) : strlen(want + 6);
	if (!json_object_object_get_ex(index, "manifests", &list) ||
	    !json_object_is_type(list, json_type_array))
		return berth_fail(err, 0, "the index of %s lists no manifests", s->ref->repository);
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *m = json_object_array_get_idx(list, i), *p;
		const char *d = bj_member_string(m, "digest");
		if (!json_object_object_get_ex(m, "platform", &p))
			continue;
		const char *os = bj_member_string(p, "os"), *arch = bj_member_string(p, "architecture");
		const char *variant = bj_member_string(p, "variant");
		if (!os || !arch)
			continue;
		if (used < sizeof(seen))
			used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s%s/%s%s%s",
						 used ? ", " : "", os, arch, variant ? "/" : "",
						 variant ? variant : "");
		if (strcmp(os, "linux") != 0 || strlen(arch) != arch_len ||
		    memcmp(arch, want + 6, arch_len) != 0)
			continue;
		if (variant && want_variant && strcmp(variant, want_variant + 1) != 0)
			continue;
		if (!berth_digest_valid(d))
			return berth_fail(err, 0, "the index of %s names a manifest with a digest berth "
					  "cannot verify (%s)", s->ref->repository, d ? d : "none");
		snprintf(digest, 72, "%s", d);
		return 0;
	}
	char shown[600];
	ref_text(s->ref, shown, sizeof(shown));
	return berth_fail(err, 0, "image %s has no manifest for this node's platform %s (it has: "
			  "%s); use an image built for %s", shown, want, seen[0] ? seen : "none", want);
}

/* ---- blobs ---------------------------------------------------------------- */

struct blob_job {
	char digest[72];
	uint64_t size;
	uint64_t done;  /* bytes so far, for progress */
	bool fetched;
};

struct blob_pool {
	struct reg_session *s;
	struct layout *l;
	struct blob_job *jobs;
	size_t n, next;
	uint64_t total;
	int failed;
	struct berth_err err;
	pthread_mutex_t lock;
	struct timespec last_progress;
	bool finished_shown;    /* the 100% line is said once */
};

struct blob_progress {
	struct blob_pool *pool;
	struct blob_job *job;
};

static void pool_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct blob_progress *bp = ctx;
	struct blob_pool *p = bp->pool;
	struct timespec now;
	uint64_t sum = 0;

	(void)total;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&p->lock);
	bp->job->done = done;
	for (size_t i = 0; i < p->n; i++)
		sum += p->jobs[i].done;
	bool all = sum == p->total;
	bool due = (now.tv_sec > p->last_progress.tv_sec && !all) || (all && !p->finished_shown);
	if (due)
		p->last_progress = now;
	if (all)
		p->finished_shown = true;
	pthread_mutex_unlock(&p->lock);
	if (due)
		p->s->opts->progress(p->s->opts->progress_ctx, sum, p->total);
}

/* Remove what killed downloads of this blob left: we hold its lock. */
static void sweep_partial_blob(struct layout *l, const char *hex)
{
	DIR *d = fdopendir(dup(l->blobs_fd));
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, hex, 64) && !strncmp(de->d_name + 64, ".part-", 6))
			unlinkat(l->blobs_fd, de->d_name, 0);
	closedir(d);
}

static int download_blob(struct blob_pool *p, struct blob_job *job, struct berth_err *err)
{
	struct reg_session *s = p->s;
	char url[1024], lock[96], authz[REG_HEADER_MAX], what[800], shown[600];
	struct berth_fetch_opts o;
	struct berth_fetch_result res;
	struct blob_progress bp = {p, job};

	snprintf(lock, sizeof(lock), "locks/blob-%s", job->digest + 7);
	_cleanup_close_ int fd = openat(p->l->dir_fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0)
		return berth_fail(err, errno, "cannot lock %s", lock);
	if (blob_present(p->l, job->digest))
		return 0; /* another job on this node fetched it meanwhile */
	sweep_partial_blob(p->l, job->digest + 7);
	ref_text(s->ref, shown, sizeof(shown));
	snprintf(what, sizeof(what), "blob %.19s of %s", job->digest, shown);
	snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", s->base, s->ref->repository, job->digest);
	for (int attempt = 0;; attempt++) {
		reg_current_authz(s, authz, sizeof(authz));
		const char *hdrs[] = {authz[0] ? authz : NULL, NULL};
		berth_fetch_opts_init(&o);
		if (s->opts->timeout_s)
			o.timeout_s = s->opts->timeout_s;
		/* The descriptor says how big it is: more is refused. */
		o.max_bytes = job->size ? job->size : s->opts->max_bytes;
		o.headers = hdrs;
		o.ca_file = s->ca_file[0] ? s->ca_file : NULL;
		o.dest_name = job->digest + 7;
		o.expect_digest = job->digest;
		o.what = what;
		if (s->opts->progress) {
			o.progress = pool_progress;
			o.progress_ctx = &bp;
		}
		int rc = berth_fetch(url, p->l->blobs, &o, &res, err);
		reg_wipe(authz, sizeof(authz));
		if (rc == 0) {
			job->fetched = true;
			return 0;
		}
		if (res.http_status != 401 || attempt > 0)
			return -1;
		/* The token expired mid-pull: get the challenge again from the
		 * (small) manifest, not from the blob. */
		struct reg_response r;
		char path[600];
		snprintf(path, sizeof(path), "%s/manifests/%s", s->ref->repository,
			 s->ref->digest[0] ? s->ref->digest : s->ref->tag);
		pthread_mutex_lock(&s->lock);
		s->authz[0] = '\0';
		pthread_mutex_unlock(&s->lock);
		if (reg_get(s, path, manifest_accept, what, &r, err) < 0)
			return -1;
		reg_response_free(&r);
	}
}

static void *pool_worker(void *arg)
{
	struct blob_pool *p = arg;

	for (;;) {
		struct berth_err err = {0};
		pthread_mutex_lock(&p->lock);
		if (p->failed || p->next == p->n) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		struct blob_job *job = &p->jobs[p->next++];
		pthread_mutex_unlock(&p->lock);
		if (download_blob(p, job, &err) < 0) {
			pthread_mutex_lock(&p->lock);
			if (!p->failed++)
				p->err = err;
			pthread_mutex_unlock(&p->lock);
		}
	}
}

static int fetch_blobs(struct reg_session *s, struct layout *l, struct blob_job *jobs, size_t n,
		       struct berth_registry_pull *res, struct berth_err *err)
{
	struct blob_pool p = {.s = s, .l = l, .jobs = jobs, .n = n};
	unsigned want = s->opts->parallel ? s->opts->parallel : BERTH_REGISTRY_DEFAULT_PARALLEL;
	pthread_t threads[REG_PARALLEL_MAX];
	size_t started = 0;

	if (want > REG_PARALLEL_MAX)
		want = REG_PARALLEL_MAX;
	for (size_t i = 0; i < n; i++)
		p.total += jobs[i].size;
	pthread_mutex_init(&p.lock, NULL);
	for (; started < want && started < n; started++)
		if (pthread_create(&threads[started], NULL, pool_worker, &p) != 0)
			break;
	if (started == 0)
		pool_worker(&p); /* no thread: do it here */
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&p.lock);
	for (size_t i = 0; i < n; i++)
		if (jobs[i].fetched) {
			res->blobs_fetched++;
			res->bytes_fetched += jobs[i].size;
		}
	if (p.failed) {
		*err = p.err;
		return -1;
	}
	return 0;
}

static int add_blob(struct blob_job *jobs, size_t *n, struct json_object *desc,
		    const char *what, struct berth_err *err)
{
	const char *d = bj_member_string(desc, "digest");
	struct json_object *size;

	if (!berth_digest_valid(d))
		return berth_fail(err, 0, "the manifest names a %s with a digest berth cannot verify "
				  "(%s); berth takes sha256 digests only", what, d ? d : "none");
	snprintf(jobs[*n].digest, sizeof(jobs[*n].digest), "%s", d);
	jobs[*n].size = json_object_object_get_ex(desc, "size", &size)
				? (uint64_t)json_object_get_int64(size) : 0;
	(*n)++;
	return 0;
}

/* Config and layers the manifest names that the layout lacks. */
static int missing_blobs(struct layout *l, struct json_object *manifest, struct blob_job **jobs,
			 size_t *n, unsigned *present, struct berth_err *err)
{
	struct json_object *config, *layers;
	size_t cap, all = 0;

	*n = 0;
	if (!json_object_object_get_ex(manifest, "config", &config) ||
	    !json_object_object_get_ex(manifest, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array))
		return berth_fail(err, 0, "the manifest has no config or no layers: it is not an "
				  "image manifest (schema 1 images are too old: push the image again "
				  "with a current docker)");
	cap = json_object_array_length(layers) + 1;
	if (!(*jobs = calloc(cap, sizeof(**jobs))))
		return berth_fail(err, ENOMEM, "blob list");
	if (add_blob(*jobs, &all, config, "config", err) < 0)
		return -1;
	for (size_t i = 0; i < cap - 1; i++)
		if (add_blob(*jobs, &all, json_object_array_get_idx(layers, i), "layer", err) < 0)
			return -1;
	/* Keep the ones to fetch, each once (a layer may repeat). */
	for (size_t i = 0; i < all; i++) {
		bool dup = false;
		for (size_t j = 0; j < *n; j++)
			dup = dup || !strcmp((*jobs)[j].digest, (*jobs)[i].digest);
		if (dup)
			continue;
		if (blob_present(l, (*jobs)[i].digest)) {
			(*present)++;
			continue;
		}
		(*jobs)[(*n)++] = (*jobs)[i];
	}
	return 0;
}

/* ---- the entry points ----------------------------------------------------- */

static int resolve_at(const struct berth_registry_opts *opts, const struct berth_imageref *ref,
		      char digest[72], struct berth_err *err)
{
	struct reg_session s;
	char *body = NULL;
	size_t len = 0;

	if (ref->digest[0]) {
		snprintf(digest, 72, "%s", ref->digest);
		return 0;
	}
	int rc = reg_session_init(&s, opts, ref, err);
	if (rc == 0)
		rc = fetch_manifest(&s, ref->tag, NULL, &body, &len, digest, err);
	free(body);
	reg_session_end(&s);
	return rc;
}

static int pull_manifests(struct reg_session *s, struct layout *l, const struct berth_imageref *ref,
			  struct berth_registry_pull *res, struct json_object **manifest,
			  struct berth_err *err)
{
	_cleanup_free_ char *body = NULL;
	size_t len = 0;

	if (get_manifest(s, l, ref->digest[0] ? ref->digest : ref->tag,
			 ref->digest[0] ? ref->digest : NULL, &body, &len, res->pinned, err) < 0)
		return -1;
	struct json_object *root = json_tokener_parse(body);
	if (!root)
		return berth_fail(err, 0, "the manifest of %s from %s is not JSON", ref->repository,
				  ref->registry);
	snprintf(res->manifest, sizeof(res->manifest), "%s", res->pinned);
	if (is_index(root, NULL)) {
		char chosen[72];
		_cleanup_free_ char *mbody = NULL;
		int rc = pick_platform(s, root, chosen, err);
		json_object_put(root);
		root = NULL;
		if (rc < 0 || get_manifest(s, l, chosen, chosen, &mbody, &len, res->manifest, err) < 0)
			return -1;
		root = json_tokener_parse(mbody);
		if (!root || is_index(root, NULL)) {
			json_object_put(root);
			return berth_fail(err, 0, "the platform manifest %s of %s is not an image "
					  "manifest", chosen, ref->repository);
		}
	}
	*manifest = root;
	return 0;
}

static int pull_at(const struct berth_registry_opts *opts, const char *layout_dir,
		   const struct berth_imageref *ref, struct berth_registry_pull *res,
		   struct berth_err *err)
{
	struct reg_session s;
	struct layout l;
	struct json_object *manifest = NULL;
	struct blob_job *jobs = NULL;
	size_t n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = reg_session_init(&s, opts, ref, err);
	if (rc == 0)
		rc = layout_open(&l, layout_dir, err);
	else
		l.dir_fd = l.blobs_fd = -1;
	if (rc == 0)
		rc = pull_manifests(&s, &l, ref, res, &manifest, err);
	if (rc == 0)
		rc = missing_blobs(&l, manifest, &jobs, &n, &res->blobs_present, err);
	if (rc == 0 && n > 0)
		rc = fetch_blobs(&s, &l, jobs, n, res, err);
	free(jobs);
	json_object_put(manifest);
	layout_close(&l);
	reg_session_end(&s);
	return rc;
}

/* ---- mirrors -------------------------------------------------------------- */

/* The n-th place to ask for ref: the site's mirrors first (Docker Hub
 * images only, as Docker does), then the registry itself.  False when
 * there is none left. */
static bool candidate(const struct berth_registry_opts *opts, const struct berth_imageref *ref,
		      unsigned n, struct berth_imageref *out)
{
	const char *p = opts->mirrors;

	*out = *ref;
	if (strcmp(ref->registry, BERTH_DOCKER_HUB) != 0 || !p)
		return n == 0;
	for (;;) {
		p += strspn(p, ", ");
		if (!*p)
			return n == 0;
		size_t len = strcspn(p, ", ");
		if (n-- == 0) {
			snprintf(out->registry, sizeof(out->registry), "%.*s", (int)len, p);
			return true;
		}
		p += len;
	}
}

/* A mirror's failure is not the answer while another place is left; the
 * registry's own is.  Digests make a mirror's bytes as good as the
 * registry's: every blob is verified. */
int berth_registry_resolve(const struct berth_registry_opts *opts,
			   const struct berth_imageref *ref, char digest[72],
			   struct berth_err *err)
{
	struct berth_imageref at;
	int rc = -1;

	for (unsigned n = 0; candidate(opts, ref, n, &at); n++)
		if ((rc = resolve_at(opts, &at, digest, err)) == 0)
			return 0;
	return rc;
}

int berth_registry_pull(const struct berth_registry_opts *opts, const char *layout_dir,
			const struct berth_imageref *ref, struct berth_registry_pull *res,
			struct berth_err *err)
{
	struct berth_imageref at;
	int rc = -1;

	for (unsigned n = 0; candidate(opts, ref, n, &at); n++)
		if ((rc = pull_at(opts, layout_dir, &at, res, err)) == 0)
			return 0;
	return rc;
}

/* ---- login ---------------------------------------------------------------- */

int berth_registry_check_login(const struct berth_registry_opts *opts, const char *registry,
			       struct berth_err *err)
{
	struct berth_imageref ref = {0};
	struct reg_session s;
	struct reg_response r;
	char reason[256];

	snprintf(ref.registry, sizeof(ref.registry), "%s", registry);
	int rc = reg_session_init(&s, opts, &ref, err);
	if (rc == 0 && !s.have_creds)
		rc = berth_fail(err, 0, "no credentials for %s in ~/" BERTH_CREDENTIALS_FILE, registry);
	if (rc == 0)
		rc = reg_get(&s, "", NULL, "a login check", &r, err);
	if (rc == 0) {
		if (r.status != 200) {
			reg_reason(&r, reason, sizeof(reason));
			rc = berth_fail(err, 0, "registry %s refused the login of %s (%ld%s%s)", registry,
					s.user, r.status, reason[0] ? ": " : "", reason);
		}
		reg_response_free(&r);
	}
	reg_session_end(&s);
	return rc;
}
