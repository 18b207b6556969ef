/* berth: --container-save (save.h): a named container's root, seen
 * through a read-only overlay in a namespace of a child's own, written as
 * a docker-save archive of one layer. */
#define _GNU_SOURCE
#include "executor/runtime/save.h"

#include "executor/base/dl/archive_lazy.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/dl/crypto_lazy.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/convert/sif.h"
#include "executor/executor.h"
#include "executor/runtime/mountns.h"
#include "executor/runtime/named.h"
#include "executor/source/tarmember.h"

#define COPY_BLOCK (1 << 20)

/* Where a tar goes: a file, hashed on the way. */
struct hsink {
	int fd;
	EVP_MD_CTX *md;
	bool failed;
};

static la_ssize_t hsink_write(struct archive *a, void *data, const void *buf, size_t len)
{
	struct hsink *s = data;

	if (s->failed || berth_write_all(s->fd, buf, len) < 0) {
		archive_set_error(a, errno ? errno : ECANCELED, "cannot write: %s",
				  strerror(errno ? errno : ECANCELED));
		return -1;
	}
	if (s->md)
		EVP_DigestUpdate(s->md, buf, len);
	return (la_ssize_t)len;
}

static struct archive *tar_open(struct hsink *sink, struct berth_err *err)
{
	struct archive *a = archive_write_new();

	if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, sink, NULL, hsink_write, NULL, NULL) != ARCHIVE_OK) {
		berth_fail(err, 0, "cannot start an archive (%s)", a ? archive_error_string(a) : "");
		if (a)
			archive_write_free(a);
		return NULL;
	}
	return a;
}

static int put_entry(struct archive *a, const char *path, const struct stat *st,
		     const char *link, struct berth_err *err)
{
	struct archive_entry *e = archive_entry_new();

	if (!e)
		return berth_fail(err, ENOMEM, "archive entry");
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, st->st_mode & S_IFMT);
	archive_entry_set_perm(e, st->st_mode & 01777); /* no setuid/setgid */
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_set_size(e, S_ISREG(st->st_mode) ? st->st_size : 0);
	if (link)
		archive_entry_set_symlink(e, link);
	int rc = archive_write_header(a, e);
	archive_entry_free(e);
	if (rc != ARCHIVE_OK)
		return berth_fail(err, 0, "cannot write %s to the archive (%s)", path,
				  archive_error_string(a));
	return 0;
}

static int put_file_data(struct archive *a, int fd, const char *path, char *buf,
			 struct berth_err *err)
{
	ssize_t n;

	while ((n = berth_read_full(fd, buf, COPY_BLOCK)) > 0)
		if (archive_write_data(a, buf, (size_t)n) != n)
			return berth_fail(err, 0, "cannot write %s to the archive (%s)", path,
					  archive_error_string(a));
	if (n < 0)
		return berth_fail(err, errno, "cannot read %s", path);
	return 0;
}

static bool left_out(const char *rel, const struct stat *st)
{
	return S_ISSOCK(st->st_mode) || S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ||
	       !strncmp(rel, ".berth/running-", 15);
}

/* The tree under dir_fd, as "REL/..." entries, never following a link. */
static int put_tree(struct archive *a, int dir_fd, const char *rel, char *buf,
		    struct berth_err *err)
{
	DIR *d = fdopendir(dup(dir_fd));
	int rc = 0;

	if (!d)
		return berth_fail(err, errno, "cannot read /%s", rel);
	for (struct dirent *e = readdir(d); e && rc == 0; e = readdir(d)) {
		char path[PATH_MAX], link[PATH_MAX];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		if (fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = berth_fail(err, errno, "cannot read /%s", path);
			break;
		}
		if (left_out(path, &st))
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlinkat(dir_fd, e->d_name, link, sizeof(link) - 1);
			if (n < 0) {
				rc = berth_fail(err, errno, "cannot read /%s", path);
				break;
			}
			link[n] = '\0';
			rc = put_entry(a, path, &st, link, err);
			continue;
		}
		int flags = S_ISDIR(st.st_mode) ? O_RDONLY | O_DIRECTORY : O_RDONLY;
		int fd = S_ISFIFO(st.st_mode) ? -1
			 : openat(dir_fd, e->d_name, flags | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && !S_ISFIFO(st.st_mode)) {
			rc = berth_fail(err, errno, "cannot read /%s", path);
			break;
		}
		rc = put_entry(a, path, &st, NULL, err);
		if (rc == 0 && S_ISREG(st.st_mode))
			rc = put_file_data(a, fd, path, buf, err);
		if (rc == 0 && S_ISDIR(st.st_mode))
			rc = put_tree(a, fd, path, buf, err);
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	return rc;
}

/* The layer: the whole tree as one tar, into fd; its sha256 (diff_id). */
static int write_layer(const char *root, int fd, char diff_id[72], struct berth_err *err)
{
	_cleanup_close_ int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *buf = malloc(COPY_BLOCK);
	struct hsink sink = {.fd = fd, .md = EVP_MD_CTX_new()};

	if (root_fd < 0)
		return berth_fail(err, errno, "cannot open %s", root);
	if (!buf || !sink.md || !EVP_DigestInit_ex(sink.md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(sink.md);
		return berth_fail(err, ENOMEM, "layer");
	}
	struct archive *a = tar_open(&sink, err);
	int rc = a ? put_tree(a, root_fd, "", buf, err) : -1;
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = berth_fail(err, 0, "cannot finish the layer (%s)", archive_error_string(a));
	sink.failed = rc < 0;
	if (a)
		archive_write_free(a);
	if (rc == 0)
		berth_sha256_final(sink.md, diff_id);
	EVP_MD_CTX_free(sink.md);
	return rc;
}

/* The base config with this one layer: rootfs.diff_ids and one history
 * entry (Docker checks that they agree). */
static char *new_config(const char *base, size_t len, const char *diff_id, struct berth_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *cfg = tok ? json_tokener_parse_ex(tok, base, (int)len) : NULL;
	char now[32];
	time_t t = time(NULL);
	char *out = NULL;

	json_tokener_free(tok);
	if (!cfg || !json_object_is_type(cfg, json_type_object)) {
		json_object_put(cfg);
		berth_fail(err, 0, "the image's config is not a JSON object");
		return NULL;
	}
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	struct json_object *rootfs = json_object_new_object(), *ids = json_object_new_array();
	struct json_object *history = json_object_new_array(), *h = json_object_new_object();
	json_object_object_add(rootfs, "type", json_object_new_string("layers"));
	json_object_array_add(ids, json_object_new_string(diff_id));
	json_object_object_add(rootfs, "diff_ids", ids);
	json_object_object_add(h, "created", json_object_new_string(now));
	json_object_object_add(h, "created_by", json_object_new_string("berth --container-save"));
	json_object_array_add(history, h);
	json_object_object_add(cfg, "rootfs", rootfs);
	json_object_object_add(cfg, "history", history);
	json_object_object_add(cfg, "created", json_object_new_string(now));
	const char *s = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	out = s ? strdup(s) : NULL;
	json_object_put(cfg);
	if (!out)
		berth_fail(err, ENOMEM, "config");
	return out;
}

static char *sha256_of(const char *buf, size_t len, char out[72])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	EVP_DigestUpdate(md, buf, len);
	berth_sha256_final(md, out);
	EVP_MD_CTX_free(md);
	return out;
}

static int put_bytes(struct archive *a, const char *name, const char *buf, size_t len,
		     struct berth_err *err)
{
	struct stat st = {.st_mode = S_IFREG | 0644, .st_size = (off_t)len};

	if (put_entry(a, name, &st, NULL, err) < 0)
		return -1;
	if (archive_write_data(a, buf, len) != (la_ssize_t)len)
		return berth_fail(err, 0, "cannot write %s (%s)", name, archive_error_string(a));
	return 0;
}

/* The outer archive: <config hex>.json, <layer hex>/layer.tar,
 * manifest.json last (an archive cut short has none). */
static int write_outer(int out_fd, int layer_fd, const char *config, const char *diff_id,
		       struct berth_err *err)
{
	char config_digest[72], name[96], manifest[256];
	struct hsink sink = {.fd = out_fd};
	_cleanup_free_ char *buf = malloc(COPY_BLOCK);
	struct stat st;

	if (!buf || !sha256_of(config, strlen(config), config_digest))
		return berth_fail(err, ENOMEM, "archive");
	if (fstat(layer_fd, &st) < 0 || lseek(layer_fd, 0, SEEK_SET) < 0)
		return berth_fail(err, errno, "layer");
	struct archive *a = tar_open(&sink, err);
	if (!a)
		return -1;
	snprintf(name, sizeof(name), "%s.json", config_digest + 7);
	int rc = put_bytes(a, name, config, strlen(config), err);
	struct stat dir = {.st_mode = S_IFDIR | 0755};
	snprintf(name, sizeof(name), "%s", diff_id + 7);
	if (rc == 0)
		rc = put_entry(a, name, &dir, NULL, err);
	snprintf(name, sizeof(name), "%s/layer.tar", diff_id + 7);
	struct stat file = {.st_mode = S_IFREG | 0644, .st_size = st.st_size};
	if (rc == 0 && (rc = put_entry(a, name, &file, NULL, err)) == 0)
		rc = put_file_data(a, layer_fd, name, buf, err);
	snprintf(manifest, sizeof(manifest),
		 "[{\"Config\":\"%s.json\",\"RepoTags\":null,\"Layers\":[\"%s/layer.tar\"]}]",
		 config_digest + 7, diff_id + 7);
	if (rc == 0)
		rc = put_bytes(a, "manifest.json", manifest, strlen(manifest), err);
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = berth_fail(err, 0, "cannot finish the archive (%s)", archive_error_string(a));
	sink.failed = rc < 0;
	archive_write_free(a);
	return rc;
}

/* The mode a new file gets, 0666 less the umask, as open(O_CREAT, 0666)
 * would give it: mkostemp made the file 0600, and the user's umask (077,
 * say) decides who else reads the saved image.  The launcher is single
 * threaded: reading the umask by setting it back is safe. */
static mode_t created_mode(void)
{
	mode_t mask = umask(077);

	umask(mask);
	return 0666 & ~mask;
}

int berth_save_docker_archive(const char *root, const char *base_config, size_t config_len,
			      const char *out_path, struct berth_err *err)
{
	char layer_tmp[PATH_MAX + 32], out_tmp[PATH_MAX + 32], diff_id[72];

	if (berth_archive_load(err) < 0 || berth_crypto_load(err) < 0)
		return -1;
	snprintf(layer_tmp, sizeof(layer_tmp), "%s.layer.XXXXXX", out_path);
	snprintf(out_tmp, sizeof(out_tmp), "%s.tmp.XXXXXX", out_path);
	_cleanup_close_ int layer_fd = mkostemp(layer_tmp, O_CLOEXEC);
	if (layer_fd < 0)
		return berth_fail(err, errno, "--container-save: cannot write beside %s", out_path);
	unlink(layer_tmp); /* a scratch file: gone whatever happens */
	_cleanup_close_ int out_fd = mkostemp(out_tmp, O_CLOEXEC);
	if (out_fd < 0)
		return berth_fail(err, errno, "--container-save: cannot write beside %s", out_path);
	_cleanup_free_ char *config = NULL;
	int rc = write_layer(root, layer_fd, diff_id, err);
	if (rc == 0 && !(config = new_config(base_config, config_len, diff_id, err)))
		rc = -1;
	if (rc == 0)
		rc = write_outer(out_fd, layer_fd, config, diff_id, err);
	if (rc == 0 && (fchmod(out_fd, created_mode()) < 0 || fsync(out_fd) < 0 || rename(out_tmp, out_path) < 0))
		rc = berth_fail(err, errno, "--container-save: cannot write %s", out_path);
	if (rc < 0)
		unlink(out_tmp);
	return rc;
}

/* The base image's config.json, which the saved image's config extends. */
static int read_config(const char *path, char **out, size_t *len, struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_fail(err, errno, "cannot open %s", path);
	if (st.st_size > BERTH_CONFIG_MAX || !(*out = malloc((size_t)st.st_size + 1)))
		return berth_fail(err, EFBIG, "%s", path);
	*len = (size_t)st.st_size;
	if (berth_read_all(fd, *out, *len) < 0)
		return berth_fail(err, errno, "cannot read %s", path);
	return 0;
}

/* --container-save, by the task that ran the container, once it ended:
 * its layer over its image, seen read-only in a namespace of a child's
 * own, written as a docker-save archive (save.h). */
int berth_save_container(struct berth_executor *ex, const struct berth_named *named,
			 const char *path, struct berth_err *err)
{
	char lower[PATH_MAX], upper[PATH_MAX + 8], dir[PATH_MAX + 16], config[PATH_MAX];
	int status;

	berth_cache_entry_path(&ex->cache, named->digest, ex->ops->artifact(ex)->leaf, lower);
	berth_cache_entry_path(&ex->cache, named->digest, "config.json", config);
	snprintf(upper, sizeof(upper), "%s/upper", named->dir);
	snprintf(dir, sizeof(dir), "%s/" BERTH_LAYER_DIR, ex->cache.dir);
	pid_t child = fork();
	if (child < 0)
		return berth_fail(err, errno, "fork");
	if (child == 0) {
		struct berth_err cerr = {0};
		char *json = NULL;
		size_t len = 0;
		char root[PATH_MAX + 32];
		snprintf(root, sizeof(root), "%s/root", dir);
		char image[PATH_MAX + 32];
		const char *leaf = ex->ops->artifact(ex)->leaf;
		bool sqfs = !strcmp(leaf, BERTH_ROOTFS_SQFS);
		/* a singularity SIF berth mounts (the named container ran on it) */
		bool sif = strlen(leaf) > 4 && !strcmp(leaf + strlen(leaf) - 4, ".sif");
		uint64_t offset = 0;
		snprintf(image, sizeof(image), "%s/image", dir);
		int rc = read_config(config, &json, &len, &cerr);
		/* ImageStorage=squashfs: the image mounted in that namespace first */
		if (rc == 0 && (berth_ns_enter(&cerr) < 0 || berth_ns_layer(dir, &cerr) < 0 ||
				(sqfs && berth_ns_squashfs(dir, lower, ex->cfg->squashfuse_path,
							   &cerr) < 0) ||
				(sif && (berth_sif_squashfs_offset(lower, &offset, &cerr) < 0 ||
					 berth_ns_squashfs_detached(dir, lower, offset,
								    ex->cfg->squashfuse_path,
								    &cerr) < 0)) ||
				berth_ns_overlay_view(dir, upper, sqfs || sif ? image : lower,
						      &cerr) < 0 ||
				berth_save_docker_archive(root, json, len, path, &cerr) < 0))
			rc = -1;
		if (rc < 0) /* the parent only learns that it failed */
			fprintf(stderr, "berth: %s\n", cerr.msg);
		free(json);
		_exit(rc < 0 ? 1 : 0);
	}
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return berth_fail(err, 0, "--container-save=%s: the container was not saved "
				  "(see above)", path);
	return 0;
}
