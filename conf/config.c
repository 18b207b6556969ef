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
 * that loads a file on its own must still call load_args (argc 0 is fine).
 *
 * The parsers are in values.c, the printers in print.c (config_int.h). */
#define _GNU_SOURCE
#include "conf/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config_int.h"

/* ---- small text helpers ------------------------------------------------ */

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

#define PATH_KEY(name, field)                                                  \
	{                                                                      \
		name, conf_parse_path, conf_print_path,                        \
			offsetof(struct berth_config, field)                   \
	}

static const struct conf_key conf_keys[] = {
	{"DefaultRuntime", conf_parse_default_runtime, conf_print_default_runtime, 0},
	{"AllowedRuntimes", conf_parse_allowed_runtimes, conf_print_allowed_runtimes, 0},
	PATH_KEY("SingularityPath", singularity_path),
	{"SingularityImageFormat", conf_parse_sing_format, conf_print_sing_format, 0},
	{"SquashfsCompression", conf_parse_sqfs_comp, conf_print_sqfs_comp, 0},
	PATH_KEY("ChRunPath", chrun_path),
	{"ImageStorage", conf_parse_image_storage, conf_print_image_storage, 0},
	PATH_KEY("SquashfusePath", squashfuse_path),
	PATH_KEY("DockerSocket", docker_socket),
	PATH_KEY("CacheDir", cache_dir),
	{"CacheMaxSize", conf_parse_cache_max_size, conf_print_cache_max_size, 0},
	PATH_KEY("LauncherPath", launcher_path),
	{"DockerAllowedMounts", conf_parse_docker_mounts, conf_print_docker_mounts, 0},
	{"FetchTimeout", conf_parse_seconds, conf_print_seconds,
	 offsetof(struct berth_config, fetch_timeout)},
	{"StageTimeout", conf_parse_seconds, conf_print_seconds,
	 offsetof(struct berth_config, stage_timeout)},
	{"MountHome", conf_parse_mount_home, conf_print_mount_home, 0},
	{"DefaultRegistry", conf_parse_default_registry, conf_print_default_registry, 0},
	{"InsecureRegistries", conf_parse_registry_list, conf_print_registry_list,
	 offsetof(struct berth_config, insecure_registries)},
	{"RegistryMirrors", conf_parse_registry_list, conf_print_registry_list,
	 offsetof(struct berth_config, registry_mirrors)},
	PATH_KEY("RegistryCertsDir", registry_certs_dir),
	/* Importer: a path, unset by default ("# Importer is empty") */
	{"Importer", conf_parse_path, conf_print_registry_list,
	 offsetof(struct berth_config, importer)},
	{"PullParallel", conf_parse_pull_parallel, conf_print_pull_parallel, 0},
	{"ContainerScope", conf_parse_container_scope, conf_print_container_scope, 0},
	{"DockerPidsLimit", conf_parse_docker_pids_limit, conf_print_docker_pids_limit, 0},
	{"PyxisEnvCompat", conf_parse_bool, conf_print_bool,
	 offsetof(struct berth_config, pyxis_env_compat)},
	/* issue 26: a site default for a writable root (enroot's ENROOT_ROOTFS_WRITABLE) */
	{"ContainerWritable", conf_parse_bool, conf_print_bool,
	 offsetof(struct berth_config, container_writable)},
	{"CdiSpecDirs", conf_parse_cdi_dirs, conf_print_registry_list,
	 offsetof(struct berth_config, cdi_spec_dirs)},
	{"AllowedDevices", conf_parse_allowed_devices, conf_print_registry_list,
	 offsetof(struct berth_config, allowed_devices)},
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
	cfg->image_storage = BERTH_STORE_AUTO;
	set_path_default(cfg->squashfuse_path, "/usr/bin/squashfuse_ll");
	set_path_default(cfg->docker_socket, "/var/run/docker.sock");
	set_path_default(cfg->cache_dir, "/var/cache/berth");
	cfg->cache_max_size = 0;
	set_path_default(cfg->launcher_path, BERTH_DEFAULT_LAUNCHER);
	cfg->n_docker_allowed_mounts = 0;
	cfg->fetch_timeout = 300;
	cfg->stage_timeout = 3600;
	cfg->mount_home = true;
	snprintf(cfg->default_registry, sizeof(cfg->default_registry), "registry-1.docker.io");
	set_path_default(cfg->registry_certs_dir, "/etc/docker/certs.d");
	cfg->pull_parallel = 4;
	cfg->docker_pids_limit = BERTH_DEFAULT_DOCKER_PIDS_LIMIT;
	snprintf(cfg->cdi_spec_dirs, sizeof(cfg->cdi_spec_dirs), "/etc/cdi,/var/run/cdi");
}

void berth_config_free(struct berth_config *cfg)
{
	if (cfg)
		conf_mount_list_clear(cfg->docker_allowed_mounts,
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
	*key = conf_trim(text);
	*value = conf_trim(equals + 1);
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
	text = conf_trim(reader->line);
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
	    conf_check_absolute_path(value, err) < 0 ||
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
	conf_format_runtime_list(cfg->allowed_runtimes, list, sizeof(list));
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
