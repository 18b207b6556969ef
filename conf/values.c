/* berth: the configuration's values: runtime names, sizes, paths, lists
 * and switches, one parser per kind of value (the conf_keys[] rows in
 * config.c name them).  Each message says what to write instead. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "conf/config_int.h"

#define KNOWN_RUNTIMES "charliecloud, singularity, apptainer, docker"
#define MAX_TIMEOUT 86400u
#define SIZE_HINT                                                              \
	"write a byte count with an optional K, M, G or T suffix (powers of "  \
	"1024, optional trailing B), e.g. 50G; 0 means no cap"

static const char *const runtime_names[BERTH_RT_COUNT] = {
	[BERTH_RT_CHARLIECLOUD] = "charliecloud",
	[BERTH_RT_SINGULARITY] = "singularity",
	[BERTH_RT_DOCKER] = "docker",
};

enum berth_runtime berth_runtime_from_name(const char *name)
{
	if (!name)
		return BERTH_RT_NONE;
	if (strcasecmp(name, "apptainer") == 0)
		return BERTH_RT_SINGULARITY;
	for (int rt = 0; rt < BERTH_RT_COUNT; rt++)
		if (strcasecmp(name, runtime_names[rt]) == 0)
			return (enum berth_runtime)rt;
	return BERTH_RT_NONE;
}

const char *berth_runtime_name(enum berth_runtime rt)
{
	if (rt == BERTH_RT_NONE)
		return "none";
	if (rt < 0 || rt >= BERTH_RT_COUNT)
		return "unknown";
	return runtime_names[rt];
}

/* ---- small text helpers ------------------------------------------------ */

/* Cut leading and trailing whitespace in place; returns the new start. */
char *conf_trim(char *text)
{
	char *end;

	while (isspace((unsigned char)*text))
		text++;
	end = text + strlen(text);
	while (end > text && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return text;
}

/* Decimal digits at *text into *out, advancing *text past them.
 * Returns -1 with errno EINVAL (no digit) or ERANGE (does not fit). */
static int parse_digits(const char **text, uint64_t *out)
{
	const char *p = *text;
	uint64_t value = 0;

	if (!isdigit((unsigned char)*p)) {
		errno = EINVAL;
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10) {
			errno = ERANGE;
			return -1;
		}
		value = value * 10 + digit;
	}
	*text = p;
	*out = value;
	return 0;
}

void berth_format_size(unsigned long long bytes, char *out, size_t cap)
{
	static const char units[] = "BKMGT";
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, u ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* Also sets errno: EINVAL for a malformed value, ERANGE for one too large. */
int berth_parse_size(const char *text, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *unit;
	uint64_t count;
	unsigned shift = 0;

	if (!text || !out) {
		errno = EINVAL;
		return -1;
	}
	if (parse_digits(&text, &count) < 0)
		return -1;
	unit = *text ? strchr(units, toupper((unsigned char)*text)) : NULL;
	if (unit) {
		shift = 10u * (unsigned)(unit - units + 1);
		text++;
	}
	if (*text == 'B' || *text == 'b')
		text++;
	if (*text) {
		errno = EINVAL;
		return -1;
	}
	if (count > (UINT64_MAX >> shift)) {
		errno = ERANGE;
		return -1;
	}
	*out = count << shift;
	return 0;
}

/* ---- one parser per kind of value --------------------------------------- */

static int parse_runtime_name(const char *name, enum berth_runtime *rt,
			      struct berth_err *err)
{
	*rt = berth_runtime_from_name(name);
	if (*rt == BERTH_RT_NONE)
		return FAIL(err, 0, "unknown runtime '%.*s%s' (known: %s)",
			    QUOTED(name), KNOWN_RUNTIMES);
	return 0;
}

int conf_parse_default_runtime(struct berth_config *cfg,
			       const struct conf_key *key, char *value,
			       struct berth_err *err)
{
	enum berth_runtime rt;

	(void)key;
	if (parse_runtime_name(value, &rt, err) < 0)
		return -1;
	cfg->default_runtime = rt;
	return 0;
}

int conf_parse_allowed_runtimes(struct berth_config *cfg,
				const struct conf_key *key, char *value,
				struct berth_err *err)
{
	unsigned allowed = 0;
	char *item;

	(void)key;
	while ((item = strsep(&value, ",")) != NULL) {
		enum berth_runtime rt;

		item = conf_trim(item);
		if (!*item)
			return FAIL(err, 0,
				    "empty item in the list; write runtime "
				    "names separated by single commas, e.g. "
				    "charliecloud,singularity");
		if (parse_runtime_name(item, &rt, err) < 0)
			return -1;
		allowed |= 1u << rt;
	}
	cfg->allowed_runtimes = allowed;
	return 0;
}

int conf_check_absolute_path(const char *path, struct berth_err *err)
{
	if (path[0] != '/')
		return FAIL(err, 0,
			    "path '%.*s%s' is not absolute; write it "
			    "starting with '/'",
			    QUOTED(path));
	if (strlen(path) >= PATH_MAX)
		return FAIL(err, 0, "path is %zu bytes long; the limit is %d",
			    strlen(path), PATH_MAX - 1);
	return 0;
}

int conf_parse_path(struct berth_config *cfg, const struct conf_key *key,
		    char *value, struct berth_err *err)
{
	if (conf_check_absolute_path(value, err) < 0)
		return -1;
	memcpy(path_field(cfg, key), value, strlen(value) + 1); /* fits */
	return 0;
}

int conf_parse_cache_max_size(struct berth_config *cfg,
			      const struct conf_key *key, char *value,
			      struct berth_err *err)
{
	uint64_t bytes;

	(void)key;
	if (berth_parse_size(value, &bytes) < 0) {
		if (errno == ERANGE)
			return FAIL(err, 0,
				    "size '%.*s%s' is too large (more than "
				    "16 EiB); write a smaller size",
				    QUOTED(value));
		return FAIL(err, 0, "bad size '%.*s%s'; %s", QUOTED(value),
			    SIZE_HINT);
	}
	cfg->cache_max_size = bytes;
	return 0;
}

/* A timeout: whole seconds, 1 to a day (FetchTimeout, StageTimeout). */
int conf_parse_seconds(struct berth_config *cfg, const struct conf_key *key, char *value,
		       struct berth_err *err)
{
	const char *end = value;
	uint64_t seconds;

	if (parse_digits(&end, &seconds) < 0 || *end || seconds < 1 ||
	    seconds > MAX_TIMEOUT)
		return FAIL(err, 0,
			    "bad timeout '%.*s%s'; write a whole number "
			    "of seconds from 1 to %u",
			    QUOTED(value), MAX_TIMEOUT);
	*seconds_field(cfg, key) = (unsigned)seconds;
	return 0;
}

/* host[:port] names, comma-separated; `one` allows a single name only. */
static int check_registry_names(const char *value, bool one, struct berth_err *err)
{
	size_t len = strlen(value);

	if (one && (len == 0 || strpbrk(value, ", ")))
		return FAIL(err, 0, "bad registry '%.*s%s'; write one host[:port], "
			    "for example registry.example.org:5000", QUOTED(value));
	for (const char *p = value; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:,_ ", *p))
			return FAIL(err, 0, "bad registry name '%.*s%s': '%c' cannot be part "
				    "of a host[:port]; separate names with commas",
				    QUOTED(value), *p);
	return 0;
}

int conf_parse_default_registry(struct berth_config *cfg, const struct conf_key *key,
				char *value, struct berth_err *err)
{
	(void)key;
	if (strlen(value) >= sizeof(cfg->default_registry) ||
	    check_registry_names(value, true, err) < 0)
		return err->msg[0] ? -1 : FAIL(err, 0, "registry name too long");
	snprintf(cfg->default_registry, sizeof(cfg->default_registry), "%s", value);
	return 0;
}

/* A comma-separated registry list into the field the key names. */
int conf_parse_registry_list(struct berth_config *cfg, const struct conf_key *key,
			     char *value, struct berth_err *err)
{
	char *field = (char *)cfg + key->path_offset;
	/* every list field has this size */
	_Static_assert(sizeof(cfg->insecure_registries) == sizeof(cfg->registry_mirrors),
		       "registry list fields differ in size");
	size_t cap = sizeof(cfg->insecure_registries);

	if (strlen(value) >= cap)
		return FAIL(err, 0, "%s is longer than %zu characters", key->name, cap - 1);
	if (check_registry_names(value, false, err) < 0)
		return -1;
	snprintf(field, cap, "%s", value);
	return 0;
}

int conf_parse_pull_parallel(struct berth_config *cfg, const struct conf_key *key,
			     char *value, struct berth_err *err)
{
	const char *end = value;
	uint64_t n;

	(void)key;
	if (parse_digits(&end, &n) < 0 || *end || n < 1 || n > 16)
		return FAIL(err, 0, "bad PullParallel '%.*s%s'; write a whole number from 1 to 16",
			    QUOTED(value));
	cfg->pull_parallel = (unsigned)n;
	return 0;
}

/* DockerPidsLimit: "0" (no limit, as dockerd's own default) or a count.
 * Fewer than 16 would keep a shell pipeline from starting. */
int conf_parse_docker_pids_limit(struct berth_config *cfg, const struct conf_key *key,
				 char *value, struct berth_err *err)
{
	const char *end = value;
	uint64_t n;

	(void)key;
	if (parse_digits(&end, &n) < 0 || *end || (n != 0 && n < 16) ||
	    n > BERTH_MAX_DOCKER_PIDS_LIMIT)
		return FAIL(err, 0, "bad DockerPidsLimit '%.*s%s'; write a whole number of "
			    "processes from 16 to %u, or 0 for no limit",
			    QUOTED(value), BERTH_MAX_DOCKER_PIDS_LIMIT);
	cfg->docker_pids_limit = (unsigned)n;
	return 0;
}

static int parse_bool(const char *value, bool *out, struct berth_err *err)
{
	static const char *const yes[] = {"yes", "true", "1"};
	static const char *const no[] = {"no", "false", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return FAIL(err, 0,
		    "bad value '%.*s%s'; write yes or no (also "
		    "true/false, 1/0)",
		    QUOTED(value));
}

int conf_parse_mount_home(struct berth_config *cfg,
			  const struct conf_key *key, char *value,
			  struct berth_err *err)
{
	(void)key;
	return parse_bool(value, &cfg->mount_home, err);
}

int conf_parse_bool(struct berth_config *cfg, const struct conf_key *key, char *value,
		    struct berth_err *err)
{
	return parse_bool(value, bool_field(cfg, key), err);
}

/* The index of `name` (any case) in `names`, or -1: the enums below are
 * numbered from 0 in the order of their names. */
static int name_index(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(name, names[i]))
			return (int)i;
	return -1;
}

#define N_NAMES(names) (sizeof(names) / sizeof(*(names)))

static const char *const sing_format_names[] = {
	[BERTH_SING_AUTO] = "auto", [BERTH_SING_SIF] = "sif", [BERTH_SING_SANDBOX] = "sandbox"};

const char *berth_sing_format_name(enum berth_sing_format f)
{
	return (size_t)f < N_NAMES(sing_format_names) ? sing_format_names[f] : "auto";
}

int berth_sing_format_parse(const char *name, enum berth_sing_format *out)
{
	int i = name_index(name, sing_format_names, N_NAMES(sing_format_names));

	if (i >= 0)
		*out = (enum berth_sing_format)i;
	return i < 0 ? -1 : 0;
}

int conf_parse_sing_format(struct berth_config *cfg, const struct conf_key *key,
			   char *value, struct berth_err *err)
{
	if (berth_sing_format_parse(value, &cfg->sing_format) == 0)
		return 0;
	return berth_fail(err, 0, "%s must be auto, sif or sandbox, not '%s'", key->name, value);
}

static const char *const image_storage_names[] = {
	[BERTH_STORE_TREE] = "tree", [BERTH_STORE_SQUASHFS] = "squashfs",
	[BERTH_STORE_AUTO] = "auto"};

const char *berth_image_storage_name(enum berth_image_storage s)
{
	return (size_t)s < N_NAMES(image_storage_names) ? image_storage_names[s] : "tree";
}

int berth_image_storage_parse(const char *name, enum berth_image_storage *out)
{
	int i = name_index(name, image_storage_names, N_NAMES(image_storage_names));

	if (i >= 0)
		*out = (enum berth_image_storage)i;
	return i < 0 ? -1 : 0;
}

int conf_parse_image_storage(struct berth_config *cfg, const struct conf_key *key,
			     char *value, struct berth_err *err)
{
	if (berth_image_storage_parse(value, &cfg->image_storage) == 0)
		return 0;
	return berth_fail(err, 0, "%s must be squashfs, tree or auto, not '%.*s%s'", key->name,
			  QUOTED(value));
}

static const char *const sqfs_comp_names[] = {
	[BERTH_SQFS_AUTO] = "auto", [BERTH_SQFS_GZIP] = "gzip", [BERTH_SQFS_LZ4] = "lz4",
	[BERTH_SQFS_XZ] = "xz",     [BERTH_SQFS_ZSTD] = "zstd"};

const char *berth_sqfs_comp_name(enum berth_sqfs_comp c)
{
	return (size_t)c < N_NAMES(sqfs_comp_names) ? sqfs_comp_names[c] : "auto";
}

int berth_sqfs_comp_parse(const char *name, enum berth_sqfs_comp *out)
{
	int i = name_index(name, sqfs_comp_names, N_NAMES(sqfs_comp_names));

	if (i >= 0)
		*out = (enum berth_sqfs_comp)i;
	return i < 0 ? -1 : 0;
}

int conf_parse_sqfs_comp(struct berth_config *cfg, const struct conf_key *key,
			 char *value, struct berth_err *err)
{
	if (berth_sqfs_comp_parse(value, &cfg->sqfs_comp) == 0)
		return 0;
	return berth_fail(err, 0, "%s must be auto, gzip, lz4, xz or zstd, not '%s'",
			  key->name, value);
}

void conf_mount_list_clear(char **paths, unsigned *count)
{
	for (unsigned i = 0; i < *count; i++) {
		free(paths[i]);
		paths[i] = NULL;
	}
	*count = 0;
}

/* "/data//" -> "/data", "///" -> "/". */
static void strip_trailing_slashes(char *path)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
}

static bool has_dotdot_component(const char *path)
{
	size_t len = strlen(path);

	return strstr(path, "/../") != NULL ||
	       (len >= 3 && strcmp(path + len - 3, "/..") == 0);
}

static int check_mount_prefix(char *item, struct berth_err *err)
{
	if (!*item)
		return FAIL(err, 0,
			    "empty item in the list; write absolute "
			    "folders separated by single commas, e.g. "
			    "/data,/scratch");
	if (conf_check_absolute_path(item, err) < 0)
		return -1;
	strip_trailing_slashes(item);
	/* "/a /" would print as "/a " and load back as "/a": list items are
	 * trimmed, so a folder whose name ends in a blank cannot be listed. */
	if (isspace((unsigned char)item[strlen(item) - 1]))
		return FAIL(err, 0,
			    "path '%.*s%s' ends with a blank, which a list item "
			    "cannot keep; rename the folder",
			    QUOTED(item));
	if (has_dotdot_component(item))
		return FAIL(err, 0,
			    "path '%.*s%s' contains a '..' component; "
			    "write the folder without '..'",
			    QUOTED(item));
	return 0;
}

/* Check, normalize and copy each comma-separated folder into paths[]. */
static int collect_mounts(char *value, char **paths, unsigned *count,
			  struct berth_err *err)
{
	char *item;

	while ((item = strsep(&value, ",")) != NULL) {
		item = conf_trim(item);
		if (check_mount_prefix(item, err) < 0)
			return -1;
		if (*count == BERTH_MOUNTS_MAX)
			return FAIL(err, 0,
				    "more than %d folders; list at most %d (a "
				    "common parent covers several)",
				    BERTH_MOUNTS_MAX, BERTH_MOUNTS_MAX);
		paths[*count] = strdup(item);
		if (!paths[*count])
			return FAIL(err, errno, "copying a path");
		(*count)++;
	}
	return 0;
}

/* The new list replaces the old one only once all of it is valid. */
int conf_parse_docker_mounts(struct berth_config *cfg,
			     const struct conf_key *key, char *value,
			     struct berth_err *err)
{
	char *paths[BERTH_MOUNTS_MAX] = {NULL};
	unsigned count = 0;

	(void)key;
	if (collect_mounts(value, paths, &count, err) < 0) {
		conf_mount_list_clear(paths, &count);
		return -1;
	}
	conf_mount_list_clear(cfg->docker_allowed_mounts,
			 &cfg->n_docker_allowed_mounts);
	memcpy(cfg->docker_allowed_mounts, paths, count * sizeof(paths[0]));
	cfg->n_docker_allowed_mounts = count;
	return 0;
}

int conf_parse_container_scope(struct berth_config *cfg, const struct conf_key *key,
			       char *value, struct berth_err *err)
{
	(void)key;
	if (!strcasecmp(value, "job") || !strcasecmp(value, "user")) {
		cfg->container_scope_user = !strcasecmp(value, "user");
		return 0;
	}
	return FAIL(err, 0, "bad value '%.*s%s'; write job (named containers end with "
		    "the job) or user (they stay until berth rm)", QUOTED(value));
}
