/* berth: the site configuration model (see config.h).
 *
 * Both sources go through one routine, apply_setting(), which looks the key
 * up in conf_keys[] and calls that row's parser.  Each source keeps a `seen`
 * table of where every key was first set, so a key repeated in the same
 * source is reported with both places.
 *
 * Validation across keys (DefaultRuntime must be in AllowedRuntimes) runs
 * once, at the end of berth_config_load_args(): only then are all sources
 * applied.  berth_config_load_file() checks its own lines only, so a caller
 * that loads a file on its own must still call load_args (argc 0 is fine). */
#define _GNU_SOURCE
#include "conf/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* berth_fail() and berth_wrap() always return -1.  Spelling that out lets
 * a static analyzer, which does not see error.c, follow the error paths. */
#define FAIL(...) (berth_fail(__VA_ARGS__), -1)
#define WRAP(...) (berth_wrap(__VA_ARGS__), -1)

/* Messages quote user text up to QUOTE_MAX bytes, so the problem and the fix
 * still fit in BERTH_ERR_MSG_MAX: printf("'%.*s%s'", QUOTED(text)). */
#define QUOTE_MAX 160
#define QUOTED(text) QUOTE_MAX, (text), strlen(text) > QUOTE_MAX ? "..." : ""

#define KNOWN_RUNTIMES "charliecloud, singularity, apptainer, docker"
#define MAX_FETCH_TIMEOUT 86400u
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
static char *trim(char *text)
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

/* A `#` at the start of the line or after whitespace starts a comment;
 * one inside a word (`/srv/a#b`) is part of the value. */
static void strip_comment(char *line)
{
	for (char *p = line; *p; p++) {
		if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			return;
		}
	}
}

static bool has_control_char(const char *text)
{
	for (; *text; text++)
		if (iscntrl((unsigned char)*text))
			return true;
	return false;
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

struct conf_key;
typedef int (*conf_parse_fn)(struct berth_config *cfg,
			     const struct conf_key *key, char *value,
			     struct berth_err *err);
typedef void (*conf_print_fn)(const struct berth_config *cfg,
			      const struct conf_key *key, FILE *out);

struct conf_key {
	const char *name; /* canonical spelling, matched case-insensitively */
	conf_parse_fn parse; /* value text -> cfg; message says what to fix */
	conf_print_fn print; /* cfg -> one "Name=value" line */
	size_t path_offset;  /* path and list keys: offsetof their char[] field */
};

static char *path_field(struct berth_config *cfg, const struct conf_key *key)
{
	return (char *)cfg + key->path_offset;
}

static const char *path_field_const(const struct berth_config *cfg,
				    const struct conf_key *key)
{
	return (const char *)cfg + key->path_offset;
}

static int parse_runtime_name(const char *name, enum berth_runtime *rt,
			      struct berth_err *err)
{
	*rt = berth_runtime_from_name(name);
	if (*rt == BERTH_RT_NONE)
		return FAIL(err, 0, "unknown runtime '%.*s%s' (known: %s)",
			    QUOTED(name), KNOWN_RUNTIMES);
	return 0;
}

static int parse_default_runtime(struct berth_config *cfg,
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

static int parse_allowed_runtimes(struct berth_config *cfg,
				  const struct conf_key *key, char *value,
				  struct berth_err *err)
{
	unsigned allowed = 0;
	char *item;

	(void)key;
	while ((item = strsep(&value, ",")) != NULL) {
		enum berth_runtime rt;

		item = trim(item);
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

static int check_absolute_path(const char *path, struct berth_err *err)
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

static int parse_path(struct berth_config *cfg, const struct conf_key *key,
		      char *value, struct berth_err *err)
{
	if (check_absolute_path(value, err) < 0)
		return -1;
	memcpy(path_field(cfg, key), value, strlen(value) + 1); /* fits */
	return 0;
}

static int parse_cache_max_size(struct berth_config *cfg,
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

static int parse_fetch_timeout(struct berth_config *cfg,
			       const struct conf_key *key, char *value,
			       struct berth_err *err)
{
	const char *end = value;
	uint64_t seconds;

	(void)key;
	if (parse_digits(&end, &seconds) < 0 || *end || seconds < 1 ||
	    seconds > MAX_FETCH_TIMEOUT)
		return FAIL(err, 0,
			    "bad timeout '%.*s%s'; write a whole number "
			    "of seconds from 1 to %u",
			    QUOTED(value), MAX_FETCH_TIMEOUT);
	cfg->fetch_timeout = (unsigned)seconds;
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

static int parse_default_registry(struct berth_config *cfg, const struct conf_key *key,
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
static int parse_registry_list(struct berth_config *cfg, const struct conf_key *key,
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

static int parse_pull_parallel(struct berth_config *cfg, const struct conf_key *key,
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

static int parse_mount_home(struct berth_config *cfg,
			    const struct conf_key *key, char *value,
			    struct berth_err *err)
{
	(void)key;
	return parse_bool(value, &cfg->mount_home, err);
}

const char *berth_sing_format_name(enum berth_sing_format f)
{
	switch (f) {
	case BERTH_SING_SIF: return "sif";
	case BERTH_SING_SANDBOX: return "sandbox";
	default: return "auto";
	}
}

int berth_sing_format_parse(const char *name, enum berth_sing_format *out)
{
	static const enum berth_sing_format all[] = {BERTH_SING_AUTO, BERTH_SING_SIF,
						     BERTH_SING_SANDBOX};

	for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
		if (!strcasecmp(name, berth_sing_format_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	return -1;
}

static int parse_sing_format(struct berth_config *cfg, const struct conf_key *key,
			     char *value, struct berth_err *err)
{
	if (berth_sing_format_parse(value, &cfg->sing_format) == 0)
		return 0;
	return berth_fail(err, 0, "%s must be auto, sif or sandbox, not '%s'", key->name, value);
}

static void print_sing_format(const struct berth_config *cfg, const struct conf_key *key,
			      FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, berth_sing_format_name(cfg->sing_format));
}

static void mount_list_clear(char **paths, unsigned *count)
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
	if (check_absolute_path(item, err) < 0)
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
		item = trim(item);
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
static int parse_docker_mounts(struct berth_config *cfg,
			       const struct conf_key *key, char *value,
			       struct berth_err *err)
{
	char *paths[BERTH_MOUNTS_MAX] = {NULL};
	unsigned count = 0;

	(void)key;
	if (collect_mounts(value, paths, &count, err) < 0) {
		mount_list_clear(paths, &count);
		return -1;
	}
	mount_list_clear(cfg->docker_allowed_mounts,
			 &cfg->n_docker_allowed_mounts);
	memcpy(cfg->docker_allowed_mounts, paths, count * sizeof(paths[0]));
	cfg->n_docker_allowed_mounts = count;
	return 0;
}

/* ---- printing (berth config): each line loads back unchanged ------------ */

static void print_default_runtime(const struct berth_config *cfg,
				  const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name,
		berth_runtime_name(cfg->default_runtime));
}

/* "charliecloud,singularity" for a runtime bit mask. */
static void format_runtime_list(unsigned mask, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int rt = 0; rt < BERTH_RT_COUNT && used < size; rt++) {
		if (mask & (1u << rt)) {
			int n = snprintf(buf + used, size - used, "%s%s",
					 used ? "," : "", runtime_names[rt]);

			if (n < 0)
				return;
			used += (size_t)n;
		}
	}
}

static void print_allowed_runtimes(const struct berth_config *cfg,
				   const struct conf_key *key, FILE *out)
{
	char list[64];

	format_runtime_list(cfg->allowed_runtimes, list, sizeof(list));
	fprintf(out, "%s=%s\n", key->name, list);
}

static void print_path(const struct berth_config *cfg,
		       const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, path_field_const(cfg, key));
}

/* The largest unit that divides the size exactly: 53687091200 -> 50G. */
static void print_cache_max_size(const struct berth_config *cfg,
				 const struct conf_key *key, FILE *out)
{
	static const char units[] = "TGMK";
	uint64_t bytes = cfg->cache_max_size;

	for (unsigned i = 0; bytes && i < sizeof(units) - 1; i++) {
		unsigned shift = 10u * (unsigned)(sizeof(units) - 1 - i);

		if ((bytes & ((UINT64_C(1) << shift) - 1)) == 0) {
			fprintf(out, "%s=%llu%c\n", key->name,
				(unsigned long long)(bytes >> shift), units[i]);
			return;
		}
	}
	fprintf(out, "%s=%llu\n", key->name, (unsigned long long)bytes);
}

/* An empty value is not valid input, so an empty list prints as a comment. */
static void print_docker_mounts(const struct berth_config *cfg,
				const struct conf_key *key, FILE *out)
{
	if (cfg->n_docker_allowed_mounts == 0) {
		fprintf(out, "# %s is empty: docker containers get no binds\n",
			key->name);
		return;
	}
	fprintf(out, "%s=", key->name);
	for (unsigned i = 0; i < cfg->n_docker_allowed_mounts; i++)
		fprintf(out, "%s%s", i ? "," : "",
			cfg->docker_allowed_mounts[i]);
	fputc('\n', out);
}

static void print_fetch_timeout(const struct berth_config *cfg,
				const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%u\n", key->name, cfg->fetch_timeout);
}

static int parse_container_scope(struct berth_config *cfg, const struct conf_key *key,
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

static void print_container_scope(const struct berth_config *cfg, const struct conf_key *key,
				  FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, cfg->container_scope_user ? "user" : "job");
}

static void print_mount_home(const struct berth_config *cfg,
			     const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, cfg->mount_home ? "yes" : "no");
}

static void print_default_registry(const struct berth_config *cfg,
				   const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%s\n", key->name, cfg->default_registry);
}

static void print_registry_list(const struct berth_config *cfg,
				const struct conf_key *key, FILE *out)
{
	const char *field = (const char *)cfg + key->path_offset;

	if (!field[0]) {
		fprintf(out, "# %s is empty\n", key->name);
		return;
	}
	fprintf(out, "%s=%s\n", key->name, field);
}

static void print_pull_parallel(const struct berth_config *cfg,
				const struct conf_key *key, FILE *out)
{
	fprintf(out, "%s=%u\n", key->name, cfg->pull_parallel);
}

#define PATH_KEY(name, field)                                                  \
	{                                                                      \
		name, parse_path, print_path,                                  \
			offsetof(struct berth_config, field)                   \
	}

static const struct conf_key conf_keys[] = {
	{"DefaultRuntime", parse_default_runtime, print_default_runtime, 0},
	{"AllowedRuntimes", parse_allowed_runtimes, print_allowed_runtimes, 0},
	PATH_KEY("SingularityPath", singularity_path),
	{"SingularityImageFormat", parse_sing_format, print_sing_format, 0},
	PATH_KEY("ChRunPath", chrun_path),
	PATH_KEY("DockerSocket", docker_socket),
	PATH_KEY("CacheDir", cache_dir),
	{"CacheMaxSize", parse_cache_max_size, print_cache_max_size, 0},
	PATH_KEY("LauncherPath", launcher_path),
	{"DockerAllowedMounts", parse_docker_mounts, print_docker_mounts, 0},
	{"FetchTimeout", parse_fetch_timeout, print_fetch_timeout, 0},
	{"MountHome", parse_mount_home, print_mount_home, 0},
	{"DefaultRegistry", parse_default_registry, print_default_registry, 0},
	{"InsecureRegistries", parse_registry_list, print_registry_list,
	 offsetof(struct berth_config, insecure_registries)},
	{"RegistryMirrors", parse_registry_list, print_registry_list,
	 offsetof(struct berth_config, registry_mirrors)},
	PATH_KEY("RegistryCertsDir", registry_certs_dir),
	{"PullParallel", parse_pull_parallel, print_pull_parallel, 0},
	{"ContainerScope", parse_container_scope, print_container_scope, 0},
};

#define N_CONF_KEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

/* Loads a file first; valid among plugstack arguments only. */
#define CONFIG_KEY "Config"

static const struct conf_key *find_key(const char *name)
{
	for (size_t i = 0; i < N_CONF_KEYS; i++)
		if (strcasecmp(name, conf_keys[i].name) == 0)
			return &conf_keys[i];
	return NULL;
}

static void list_known_keys(char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_CONF_KEYS && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
				 conf_keys[i].name);

		if (n < 0)
			return;
		used += (size_t)n;
	}
}

/* ---- defaults, free, print ---------------------------------------------- */

static void set_path_default(char *field, const char *value)
{
	snprintf(field, PATH_MAX, "%s", value);
}

void berth_config_defaults(struct berth_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->default_runtime = BERTH_RT_CHARLIECLOUD;
	cfg->allowed_runtimes =
		(1u << BERTH_RT_CHARLIECLOUD) | (1u << BERTH_RT_SINGULARITY);
	set_path_default(cfg->singularity_path, "/usr/bin/singularity");
	set_path_default(cfg->chrun_path, "/usr/bin/ch-run");
	set_path_default(cfg->docker_socket, "/var/run/docker.sock");
	set_path_default(cfg->cache_dir, "/var/cache/berth");
	cfg->cache_max_size = 0;
	set_path_default(cfg->launcher_path, BERTH_DEFAULT_LAUNCHER);
	cfg->n_docker_allowed_mounts = 0;
	cfg->fetch_timeout = 300;
	cfg->mount_home = true;
	snprintf(cfg->default_registry, sizeof(cfg->default_registry), "registry-1.docker.io");
	set_path_default(cfg->registry_certs_dir, "/etc/docker/certs.d");
	cfg->pull_parallel = 4;
}

void berth_config_free(struct berth_config *cfg)
{
	if (cfg)
		mount_list_clear(cfg->docker_allowed_mounts,
				 &cfg->n_docker_allowed_mounts);
}

void berth_config_print(const struct berth_config *cfg, FILE *out)
{
	for (size_t i = 0; i < N_CONF_KEYS; i++)
		conf_keys[i].print(cfg, &conf_keys[i], out);
}

/* ---- applying one Key=Value, whatever its source ----------------------- */

/* Where a setting comes from: a file line, or a plugstack argument. */
struct origin {
	const char *file; /* NULL for a plugstack argument */
	unsigned line;
	const char *arg; /* the argument as given, when file is NULL */
};

static bool origin_is_set(const struct origin *at)
{
	return at->line != 0 || at->arg != NULL;
}

/* Put the place in front of a message: "FILE:LINE: key 'Key': ..." for a
 * file (key may be NULL), "plugstack argument 'Key=Value': ..." otherwise. */
static int wrap_origin(const struct origin *at, const char *key,
		       struct berth_err *err)
{
	if (!at->file)
		return WRAP(err, "plugstack argument '%.*s%s'",
			    QUOTED(at->arg));
	if (key)
		return WRAP(err, "%s:%u: key '%s'", at->file, at->line, key);
	return WRAP(err, "%s:%u", at->file, at->line);
}

/* Split "Key=Value" (modified in place) into trimmed key and value. */
static int split_setting(char *text, const struct origin *at, char **key,
			 char **value, struct berth_err *err)
{
	char *equals = strchr(text, '=');

	if (!equals) {
		if (at->file)
			berth_fail(err, 0,
				   "'%.*s%s' is not a Key=Value setting; write "
				   "Key=Value, or put '#' in front to make the "
				   "line a comment",
				   QUOTED(text));
		else
			berth_fail(err, 0,
				   "not a Key=Value setting; write "
				   "Key=Value");
		wrap_origin(at, NULL, err);
		return -1; /* spelled out: the analyzer stops following calls */
	}
	*equals = '\0';
	*key = trim(text);
	*value = trim(equals + 1);
	if (!**key) {
		berth_fail(err, 0, "no key before '='; write Key=Value");
		wrap_origin(at, NULL, err);
		return -1;
	}
	return 0;
}

static int check_value_text(const char *value, struct berth_err *err)
{
	if (!*value)
		return FAIL(err, 0,
			    "empty value; give a value, or remove the "
			    "setting to keep the default");
	if (has_control_char(value))
		return FAIL(err, 0,
			    "value contains a control character (tab, "
			    "escape, ...); remove it");
	return 0;
}

static int fail_duplicate(const struct origin *first,
			  const struct origin *again, const char *key,
			  struct berth_err *err)
{
	if (again->file)
		berth_fail(err, 0,
			   "set twice, on lines %u and %u; keep only one of "
			   "them",
			   first->line, again->line);
	else
		berth_fail(err, 0,
			   "key '%s' is given twice (also as '%.*s%s'); keep "
			   "only one of the two arguments",
			   key, QUOTED(first->arg));
	return wrap_origin(again, key, err);
}

static int fail_unknown_key(const char *key, const struct origin *at,
			    struct berth_err *err)
{
	char known[512];

	list_known_keys(known, sizeof(known));
	berth_fail(err, 0, "unknown key '%.*s%s' (known keys: %s%s)",
		   QUOTED(key), known, at->file ? "" : ", " CONFIG_KEY);
	return wrap_origin(at, NULL, err);
}

/* The one routine both sources use.  `seen` has one origin per conf_keys[]
 * row: where this source set that key first. */
static int apply_setting(struct berth_config *cfg, const char *key, char *value,
			 const struct origin *at,
			 struct origin seen[N_CONF_KEYS], struct berth_err *err)
{
	const struct conf_key *row = find_key(key);
	struct origin *first;

	if (!row)
		return fail_unknown_key(key, at, err);
	first = &seen[row - conf_keys];
	if (origin_is_set(first))
		return fail_duplicate(first, at, row->name, err);
	*first = *at;
	if (check_value_text(value, err) < 0 ||
	    row->parse(cfg, row, value, err) < 0)
		return wrap_origin(at, row->name, err);
	return 0;
}

/* ---- berth.conf -------------------------------------------------------- */

struct conf_reader {
	FILE *in;
	const char *path;
	unsigned line_no;
	char line[BERTH_CONF_LINE_MAX + 1];
};

/* Read the next line, without its '\n', into reader->line.
 * Returns 1 for a line, 0 at the end of the file, -1 on error. */
static int read_line(struct conf_reader *reader, struct berth_err *err)
{
	size_t len = 0;
	int c;

	reader->line_no++;
	while ((c = getc(reader->in)) != EOF && c != '\n') {
		if (c == '\0')
			return FAIL(err, 0,
				    "%s:%u: line contains a NUL byte; "
				    "the file must be plain text",
				    reader->path, reader->line_no);
		if (len == BERTH_CONF_LINE_MAX)
			return FAIL(err, 0,
				    "%s:%u: line longer than %d bytes; "
				    "shorten it",
				    reader->path, reader->line_no,
				    BERTH_CONF_LINE_MAX);
		reader->line[len++] = (char)c;
	}
	if (ferror(reader->in))
		return FAIL(err, errno, "%s:%u: reading", reader->path,
			    reader->line_no);
	reader->line[len] = '\0';
	return c == EOF && len == 0 ? 0 : 1;
}

static int apply_file_line(struct berth_config *cfg, const char *path,
			   struct conf_reader *reader,
			   struct origin seen[N_CONF_KEYS],
			   struct berth_err *err)
{
	struct origin at = {.file = path, .line = reader->line_no};
	char *text, *key, *value;

	strip_comment(reader->line);
	text = trim(reader->line);
	if (!*text)
		return 0;
	if (split_setting(text, &at, &key, &value, err) < 0)
		return -1;
	if (strcasecmp(key, CONFIG_KEY) == 0) {
		berth_fail(err, 0,
			   "only valid as a plugstack argument, a file cannot "
			   "load another; remove this line");
		return wrap_origin(&at, CONFIG_KEY, err);
	}
	return apply_setting(cfg, key, value, &at, seen, err);
}

static int load_stream(struct berth_config *cfg, const char *path, FILE *in,
		       struct berth_err *err)
{
	struct origin seen[N_CONF_KEYS] = {{0}};
	struct conf_reader reader = {.path = path, .in = in};
	int got;

	while ((got = read_line(&reader, err)) > 0)
		if (apply_file_line(cfg, path, &reader, seen, err) < 0)
			return -1;
	return got;
}

int berth_config_load_file(struct berth_config *cfg, const char *path,
			   bool must_exist, struct berth_err *err)
{
	_cleanup_fclose_ FILE *in = NULL;

	if (!path)
		return FAIL(err, EINVAL, "no config file named");
	in = fopen(path, "re");
	if (!in) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return FAIL(err, errno, "cannot open config file '%s'", path);
	}
	return load_stream(cfg, path, in, err);
}

int berth_config_load_text(struct berth_config *cfg, const char *name, const char *text,
			   struct berth_err *err)
{
	_cleanup_fclose_ FILE *in = fmemopen((void *)text, strlen(text), "r");

	if (!in)
		return FAIL(err, errno, "cannot read %s", name);
	return load_stream(cfg, name, in, err);
}

char *berth_config_to_text(const struct berth_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (!out)
		return NULL;
	berth_config_print(cfg, out);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- plugstack arguments ---------------------------------------------- */

/* Copy an argument so it can be split; argv itself stays untouched. */
static int copy_arg(char *buf, size_t size, const struct origin *at,
		    struct berth_err *err)
{
	size_t len;

	if (!at->arg)
		return FAIL(err, 0, "plugstack argument is NULL");
	len = strlen(at->arg);
	if (len >= size) {
		berth_fail(err, 0, "longer than %zu bytes; shorten it",
			   size - 1);
		return wrap_origin(at, NULL, err);
	}
	memcpy(buf, at->arg, len + 1);
	return 0;
}

/* Copy argument `at->arg` into buf and split it there. */
static int split_arg(char *buf, size_t size, const struct origin *at,
		     char **key, char **value, struct berth_err *err)
{
	if (copy_arg(buf, size, at, err) < 0 ||
	    split_setting(buf, at, key, value, err) < 0)
		return -1;
	return 0;
}

/* A `seen` table for arguments has one more row, for Config. */
#define CONFIG_ROW N_CONF_KEYS

/* Load the file that the Config= argument `config` names, if there is one. */
static int load_config_arg(struct berth_config *cfg,
			   const struct origin *config, struct berth_err *err)
{
	char buf[BERTH_CONF_LINE_MAX + 1];
	char *key, *value;

	if (!origin_is_set(config))
		return 0;
	if (split_arg(buf, sizeof(buf), config, &key, &value, err) < 0)
		return -1;
	if (check_value_text(value, err) < 0 ||
	    check_absolute_path(value, err) < 0 ||
	    berth_config_load_file(cfg, value, true, err) < 0)
		return wrap_origin(config, CONFIG_KEY, err);
	return 0;
}

/* Take one argument in one of two passes: the first records Config= only,
 * the second applies every other key. */
static int apply_arg(struct berth_config *cfg, const char *arg,
		     bool config_pass, struct origin seen[N_CONF_KEYS + 1],
		     struct berth_err *err)
{
	struct origin at = {.arg = arg};
	char buf[BERTH_CONF_LINE_MAX + 1];
	char *key, *value;
	bool is_config;

	if (split_arg(buf, sizeof(buf), &at, &key, &value, err) < 0)
		return -1;
	is_config = strcasecmp(key, CONFIG_KEY) == 0;
	if (is_config != config_pass)
		return 0;
	if (!is_config)
		return apply_setting(cfg, key, value, &at, seen, err);
	if (origin_is_set(&seen[CONFIG_ROW]))
		return fail_duplicate(&seen[CONFIG_ROW], &at, CONFIG_KEY, err);
	seen[CONFIG_ROW] = at;
	return 0;
}

static int check_default_allowed(const struct berth_config *cfg,
				 struct berth_err *err)
{
	enum berth_runtime rt = cfg->default_runtime;
	const char *name = berth_runtime_name(rt);
	char list[64];

	if (rt >= 0 && rt < BERTH_RT_COUNT &&
	    (cfg->allowed_runtimes & (1u << rt)))
		return 0;
	format_runtime_list(cfg->allowed_runtimes, list, sizeof(list));
	return FAIL(err, 0,
		    "DefaultRuntime=%s is not in AllowedRuntimes=%s; add "
		    "%s to AllowedRuntimes, or set DefaultRuntime to one "
		    "of %s",
		    name, list, name, list);
}

int berth_config_load_args(struct berth_config *cfg, int argc,
			   char *const argv[], struct berth_err *err)
{
	struct origin seen[N_CONF_KEYS + 1] = {{0}};

	for (int i = 0; i < argc; i++)
		if (apply_arg(cfg, argv[i], true, seen, err) < 0)
			return -1;
	if (load_config_arg(cfg, &seen[CONFIG_ROW], err) < 0)
		return -1;
	for (int i = 0; i < argc; i++)
		if (apply_arg(cfg, argv[i], false, seen, err) < 0)
			return -1;
	return check_default_allowed(cfg, err);
}

int berth_config_pick_runtime(const struct berth_config *cfg, const char *name,
			      enum berth_runtime *out, struct berth_err *err)
{
	if (!name) {
		*out = cfg->default_runtime;
		return 0;
	}
	*out = berth_runtime_from_name(name);
	if (*out == BERTH_RT_NONE)
		return berth_fail(err, 0, "unknown --container-runtime '%s'; use one of: "
				  "charliecloud, singularity, apptainer, docker", name);
	if (!(cfg->allowed_runtimes & (1u << *out)))
		return berth_fail(err, 0, "--container-runtime=%s is not enabled on this "
				  "cluster (AllowedRuntimes in berth.conf); ask your "
				  "administrator or pick another runtime", name);
	return 0;
}
