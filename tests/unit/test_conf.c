/* Unit tests for conf/config.c: defaults, both sources, every error path. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"

#define RT_BIT(rt) (1u << (rt))

/* One config, one error and up to two temporary files per test. */
struct fixture {
	struct berth_config cfg;
	struct berth_err err;
	char path[2][64];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	berth_config_defaults(&fx->cfg);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	for (int i = 0; i < 2; i++)
		if (fx->path[i][0])
			unlink(fx->path[i]);
	berth_config_free(&fx->cfg);
	free(fx);
	return 0;
}

/* Write `len` bytes to a new temp file; its name goes to fx->path[slot]. */
static const char *write_bytes(struct fixture *fx, int slot, const char *data,
			       size_t len)
{
	char *path = fx->path[slot];
	int fd;

	if (path[0])
		unlink(path); /* the slot's previous file */
	snprintf(path, sizeof(fx->path[slot]), "/tmp/berth-test-conf-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

static const char *write_conf(struct fixture *fx, int slot, const char *text)
{
	return write_bytes(fx, slot, text, strlen(text));
}

/* Load `text` as a berth.conf; returns load_file's result. */
static int load_text(struct fixture *fx, const char *text)
{
	const char *path = write_conf(fx, 0, text);

	return berth_config_load_file(&fx->cfg, path, true, &fx->err);
}

static int load_argv(struct fixture *fx, int argc, char *const argv[])
{
	return berth_config_load_args(&fx->cfg, argc, argv, &fx->err);
}

#define LOAD_ARGS(fx, ...)                                                     \
	({                                                                     \
		char *const _argv[] = {__VA_ARGS__};                           \
		load_argv((fx), (int)(sizeof(_argv) / sizeof(_argv[0])),       \
			  _argv);                                              \
	})

static void assert_msg_has(const struct berth_err *err, const char *needle)
{
	if (!strstr(err->msg, needle))
		fail_msg("error message \"%s\" lacks \"%s\"", err->msg, needle);
}

/* The error names the file, the line and (when given) the key. */
static void assert_file_error(const struct fixture *fx, unsigned line,
			      const char *key)
{
	char where[96];

	snprintf(where, sizeof(where), "%s:%u: ", fx->path[0], line);
	if (strncmp(fx->err.msg, where, strlen(where)) != 0)
		fail_msg("error message \"%s\" does not start with \"%s\"",
			 fx->err.msg, where);
	if (key)
		assert_msg_has(&fx->err, key);
}

static void assert_load_fails(struct fixture *fx, const char *text,
			      unsigned line, const char *key)
{
	assert_int_equal(load_text(fx, text), -1);
	assert_file_error(fx, line, key);
}

/* ---- defaults and runtime names --------------------------------------- */

static void test_defaults(void **state)
{
	struct fixture *fx = *state;
	const struct berth_config *cfg = &fx->cfg;

	assert_int_equal(cfg->default_runtime, BERTH_RT_CHARLIECLOUD);
	assert_int_equal(cfg->allowed_runtimes,
			 RT_BIT(BERTH_RT_CHARLIECLOUD) |
				 RT_BIT(BERTH_RT_SINGULARITY));
	assert_string_equal(cfg->singularity_path, "/usr/bin/singularity");
	assert_string_equal(cfg->chrun_path, "/usr/bin/ch-run");
	assert_string_equal(cfg->docker_socket, "/var/run/docker.sock");
	assert_string_equal(cfg->cache_dir, "/var/cache/berth");
	assert_int_equal(cfg->cache_max_size, 0);
	assert_string_equal(cfg->launcher_path, BERTH_DEFAULT_LAUNCHER);
	assert_int_equal(cfg->n_docker_allowed_mounts, 0);
	assert_int_equal(cfg->fetch_timeout, 300);
	assert_true(cfg->mount_home);
	/* The defaults pass the final validation. */
	assert_int_equal(load_argv(fx, 0, NULL), 0);
}

static void test_runtime_names(void **state)
{
	(void)state;
	assert_int_equal(berth_runtime_from_name("charliecloud"),
			 BERTH_RT_CHARLIECLOUD);
	assert_int_equal(berth_runtime_from_name("singularity"),
			 BERTH_RT_SINGULARITY);
	assert_int_equal(berth_runtime_from_name("apptainer"),
			 BERTH_RT_SINGULARITY);
	assert_int_equal(berth_runtime_from_name("Docker"), BERTH_RT_DOCKER);
	assert_int_equal(berth_runtime_from_name("podman"), BERTH_RT_NONE);
	assert_int_equal(berth_runtime_from_name(""), BERTH_RT_NONE);
	assert_int_equal(berth_runtime_from_name(NULL), BERTH_RT_NONE);
	assert_string_equal(berth_runtime_name(BERTH_RT_CHARLIECLOUD),
			    "charliecloud");
	assert_string_equal(berth_runtime_name(BERTH_RT_SINGULARITY),
			    "singularity");
	assert_string_equal(berth_runtime_name(BERTH_RT_DOCKER), "docker");
	assert_non_null(berth_runtime_name(BERTH_RT_NONE));
	assert_non_null(berth_runtime_name(BERTH_RT_COUNT));
}

/* ---- every key, both sources ------------------------------------------ */

static const char all_keys_conf[] =
	"DefaultRuntime=singularity\n"
	"AllowedRuntimes=singularity,docker\n"
	"SingularityPath=/opt/sing/bin/singularity\n"
	"SingularityImageFormat=SIF\n"
	"ChRunPath=/opt/ch/bin/ch-run\n"
	"DockerSocket=/run/docker.sock\n"
	"CacheDir=/scratch/berth\n"
	"CacheMaxSize=50G\n"
	"LauncherPath=/opt/berth/bin/berth\n"
	"DockerAllowedMounts=/data,/scratch/\n"
	"FetchTimeout=60\n"
	"MountHome=no\n";

static void assert_all_keys_applied(const struct berth_config *cfg)
{
	assert_int_equal(cfg->default_runtime, BERTH_RT_SINGULARITY);
	assert_int_equal(cfg->allowed_runtimes,
			 RT_BIT(BERTH_RT_SINGULARITY) |
				 RT_BIT(BERTH_RT_DOCKER));
	assert_string_equal(cfg->singularity_path, "/opt/sing/bin/singularity");
	assert_int_equal(cfg->sing_format, BERTH_SING_SIF);
	assert_string_equal(cfg->chrun_path, "/opt/ch/bin/ch-run");
	assert_string_equal(cfg->docker_socket, "/run/docker.sock");
	assert_string_equal(cfg->cache_dir, "/scratch/berth");
	assert_true(cfg->cache_max_size == 50ULL << 30);
	assert_string_equal(cfg->launcher_path, "/opt/berth/bin/berth");
	assert_int_equal(cfg->n_docker_allowed_mounts, 2);
	assert_string_equal(cfg->docker_allowed_mounts[0], "/data");
	assert_string_equal(cfg->docker_allowed_mounts[1], "/scratch");
	assert_int_equal(cfg->fetch_timeout, 60);
	assert_false(cfg->mount_home);
}

static void test_file_sets_every_key(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx, all_keys_conf), 0);
	assert_int_equal(load_argv(fx, 0, NULL), 0);
	assert_all_keys_applied(&fx->cfg);
}

static void test_args_set_every_key(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(LOAD_ARGS(fx, "DefaultRuntime=singularity",
				   "AllowedRuntimes=singularity,docker",
				   "SingularityPath=/opt/sing/bin/singularity",
				   "SingularityImageFormat=sif",
				   "ChRunPath=/opt/ch/bin/ch-run",
				   "DockerSocket=/run/docker.sock",
				   "CacheDir=/scratch/berth",
				   "CacheMaxSize=50G",
				   "LauncherPath=/opt/berth/bin/berth",
				   "DockerAllowedMounts=/data,/scratch/",
				   "FetchTimeout=60", "MountHome=no"),
			 0);
	assert_all_keys_applied(&fx->cfg);
}

static void test_keys_case_insensitive(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx, "cachedir=/a\nMOUNTHOME=false\n"
				       "fetchTIMEOUT=7\n"),
			 0);
	assert_int_equal(LOAD_ARGS(fx, "DEFAULTRUNTIME=apptainer"), 0);
	assert_string_equal(fx->cfg.cache_dir, "/a");
	assert_false(fx->cfg.mount_home);
	assert_int_equal(fx->cfg.fetch_timeout, 7);
	assert_int_equal(fx->cfg.default_runtime, BERTH_RT_SINGULARITY);
}

static void test_comments_and_blank_lines(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx,
				   "# berth site configuration\n"
				   "\n"
				   "   \t\n"
				   "   # indented comment\n"
				   "CacheDir=/srv/cache # trailing comment\n"
				   "ChRunPath=/opt/a#b\n"
				   "FetchTimeout=30\t#tab then comment\n"
				   "#MountHome=no\n"),
			 0);
	assert_string_equal(fx->cfg.cache_dir, "/srv/cache");
	assert_string_equal(fx->cfg.chrun_path, "/opt/a#b"); /* not a comment */
	assert_int_equal(fx->cfg.fetch_timeout, 30);
	assert_true(fx->cfg.mount_home);
}

static void test_whitespace_trimmed(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx,
				   "  CacheDir  =  /srv/cache  \n"
				   "\tMountHome\t=\tno\t\r\n"
				   "AllowedRuntimes = docker , charliecloud\n"
				   "DockerAllowedMounts= /a/ , /b\n"
				   "FetchTimeout=5"), /* no final newline */
			 0);
	assert_string_equal(fx->cfg.cache_dir, "/srv/cache");
	assert_false(fx->cfg.mount_home);
	assert_int_equal(fx->cfg.allowed_runtimes,
			 RT_BIT(BERTH_RT_DOCKER) |
				 RT_BIT(BERTH_RT_CHARLIECLOUD));
	assert_int_equal(fx->cfg.n_docker_allowed_mounts, 2);
	assert_string_equal(fx->cfg.docker_allowed_mounts[0], "/a");
	assert_string_equal(fx->cfg.docker_allowed_mounts[1], "/b");
	assert_int_equal(fx->cfg.fetch_timeout, 5);
}

/* ---- values ------------------------------------------------------------ */

static void test_parse_size_good(void **state)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} cases[] = {
		{"0", 0},
		{"1024", 1024},
		{"1024B", 1024},
		{"10K", 10ULL << 10},
		{"10k", 10ULL << 10},
		{"5M", 5ULL << 20},
		{"2G", 2ULL << 30},
		{"1T", 1ULL << 40},
		{"1gb", 1ULL << 30},
		{"16777215T", 16777215ULL << 40},
		{"18446744073709551615", UINT64_MAX},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t bytes = 1;

		if (berth_parse_size(cases[i].text, &bytes) != 0)
			fail_msg("'%s' rejected", cases[i].text);
		assert_true(bytes == cases[i].bytes);
	}
}

static void test_parse_size_bad(void **state)
{
	static const char *const bad[] = {
		"",	     "10X",
		"10KiB",     "-1",
		"-0",	     " 10",
		"10 ",	     "10 K",
		"K",	     "B",
		"1.5G",	     "10Kx",
		"10GBB",     "0x10",
		"+5",	     "99999999999T",
		"16777216T", "18446744073709551616",
	};
	uint64_t bytes = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (berth_parse_size(bad[i], &bytes) != -1)
			fail_msg("'%s' accepted", bad[i]);
	assert_true(bytes == 7); /* untouched on failure */
	assert_int_equal(berth_parse_size(NULL, &bytes), -1);
	assert_int_equal(berth_parse_size("99999999999T", &bytes), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(berth_parse_size("10Q", &bytes), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_cache_max_size_errors(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheMaxSize=10X\n", 1, "CacheMaxSize");
	assert_msg_has(&fx->err, "'10X'");
	assert_msg_has(&fx->err, "K, M, G or T");
	assert_load_fails(fx, "\nCacheMaxSize=99999999999T\n", 2,
			  "CacheMaxSize");
	assert_msg_has(&fx->err, "too large");
	assert_load_fails(fx, "CacheMaxSize=-5G\n", 1, "CacheMaxSize");
	assert_load_fails(fx, "CacheMaxSize=5Gx\n", 1, "CacheMaxSize");
}

static void test_fetch_timeout_values(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = {"0",
					  "86401",
					  "-1",
					  "10s",
					  "abc",
					  "1e3",
					  "99999999999999999999999"};

	assert_int_equal(LOAD_ARGS(fx, "FetchTimeout=86400"), 0);
	assert_int_equal(fx->cfg.fetch_timeout, 86400);
	berth_config_defaults(&fx->cfg);
	assert_int_equal(LOAD_ARGS(fx, "FetchTimeout=1"), 0);
	assert_int_equal(fx->cfg.fetch_timeout, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[64];
		char *const argv[] = {arg};

		snprintf(arg, sizeof(arg), "FetchTimeout=%s", bad[i]);
		if (load_argv(fx, 1, argv) != -1)
			fail_msg("'%s' accepted", arg);
		assert_msg_has(&fx->err, "1 to 86400");
		snprintf(arg, sizeof(arg), "StageTimeout=%s", bad[i]);
		if (load_argv(fx, 1, argv) != -1)
			fail_msg("'%s' accepted", arg);
		assert_msg_has(&fx->err, "1 to 86400");
	}
	/* StageTimeout is its own field, with its own default */
	berth_config_defaults(&fx->cfg);
	assert_int_equal(fx->cfg.stage_timeout, 3600);
	assert_int_equal(LOAD_ARGS(fx, "StageTimeout=7"), 0);
	assert_int_equal(fx->cfg.stage_timeout, 7);
	assert_int_equal(fx->cfg.fetch_timeout, 300);
}

static void test_mount_home_values(void **state)
{
	struct fixture *fx = *state;
	static const struct {
		const char *text;
		bool value;
	} good[] = {{"yes", true},  {"YES", true},    {"true", true},
		    {"True", true}, {"1", true},      {"no", false},
		    {"No", false},  {"FALSE", false}, {"0", false}};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char arg[64];
		char *const argv[] = {arg};

		snprintf(arg, sizeof(arg), "MountHome=%s", good[i].text);
		fx->cfg.mount_home = !good[i].value;
		assert_int_equal(load_argv(fx, 1, argv), 0);
		assert_int_equal(fx->cfg.mount_home, good[i].value);
	}
	assert_int_equal(LOAD_ARGS(fx, "MountHome=maybe"), -1);
	assert_msg_has(&fx->err, "plugstack argument 'MountHome=maybe'");
	assert_msg_has(&fx->err, "yes or no");
	assert_int_equal(LOAD_ARGS(fx, "MountHome=on"), -1);
}

/* ContainerWritable (issue 26): off by default, yes/no like MountHome,
 * printed back, and a bad value names the key and the fix. */
static void test_container_writable(void **state)
{
	struct fixture *fx = *state;

	berth_config_defaults(&fx->cfg);
	assert_false(fx->cfg.container_writable);
	assert_int_equal(LOAD_ARGS(fx, "ContainerWritable=yes"), 0);
	assert_true(fx->cfg.container_writable);
	assert_true(fx->cfg.mount_home); /* its own field, not MountHome's */
	assert_int_equal(LOAD_ARGS(fx, "containerwritable=No"), 0);
	assert_false(fx->cfg.container_writable);
	assert_int_equal(LOAD_ARGS(fx, "ContainerWritable=1"), 0);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	berth_config_print(&fx->cfg, out);
	fclose(out);
	assert_non_null(strstr(text, "\nContainerWritable=yes\n"));
	free(text);
	assert_int_equal(LOAD_ARGS(fx, "ContainerWritable=sometimes"), -1);
	assert_msg_has(&fx->err, "plugstack argument 'ContainerWritable=sometimes'");
	assert_msg_has(&fx->err, "yes or no");
}

static void test_registry_keys(void **state)
{
	struct fixture *fx = *state;

	assert_string_equal(fx->cfg.default_registry, "registry-1.docker.io");
	assert_string_equal(fx->cfg.insecure_registries, "");
	assert_string_equal(fx->cfg.registry_certs_dir, "/etc/docker/certs.d");
	assert_int_equal(fx->cfg.pull_parallel, 4);
	assert_int_equal(LOAD_ARGS(fx, "DefaultRegistry=registry.example.org:5000",
				   "InsecureRegistries=127.0.0.1:5000, localhost:5001",
				   "PullParallel=16", "RegistryCertsDir=/etc/berth/certs.d"), 0);
	assert_string_equal(fx->cfg.default_registry, "registry.example.org:5000");
	assert_string_equal(fx->cfg.insecure_registries, "127.0.0.1:5000, localhost:5001");
	assert_int_equal(fx->cfg.pull_parallel, 16);
	assert_string_equal(fx->cfg.registry_certs_dir, "/etc/berth/certs.d");
	assert_int_equal(LOAD_ARGS(fx, "DefaultRegistry=a.org,b.org"), -1);
	assert_msg_has(&fx->err, "write one host[:port]");
	assert_int_equal(LOAD_ARGS(fx, "InsecureRegistries=http://x.org"), -1);
	assert_msg_has(&fx->err, "'/' cannot be part of a host[:port]");
	assert_int_equal(LOAD_ARGS(fx, "PullParallel=0"), -1);
	assert_msg_has(&fx->err, "from 1 to 16");
	assert_int_equal(LOAD_ARGS(fx, "PullParallel=17"), -1);
}

/* Issue 23 item 5: a process limit in every task's Docker container. */
static void test_docker_pids_limit(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(fx->cfg.docker_pids_limit, 4096);
	assert_int_equal(LOAD_ARGS(fx, "dockerpidslimit=64"), 0);
	assert_int_equal(fx->cfg.docker_pids_limit, 64);
	assert_int_equal(LOAD_ARGS(fx, "DockerPidsLimit=0"), 0); /* no limit */
	assert_int_equal(fx->cfg.docker_pids_limit, 0);
	static char *const bad[] = {"DockerPidsLimit=15",
					  "DockerPidsLimit=-1", "DockerPidsLimit=64k",
					  "DockerPidsLimit=4194305", "DockerPidsLimit=unlimited"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(load_argv(fx, 1, &bad[i]), -1);
		assert_msg_has(&fx->err, "from 16 to 4194304, or 0 for no limit");
	}
	assert_int_equal(fx->cfg.docker_pids_limit, 0); /* unchanged by the bad ones */
}

/* Found by fuzz_conf: "/a /" printed as "/a " and loaded back as "/a". */
static void test_docker_mount_trailing_blank(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(LOAD_ARGS(fx, "DockerAllowedMounts=/data,/s] /"), -1);
	assert_msg_has(&fx->err, "ends with a blank");
	assert_int_equal(LOAD_ARGS(fx, "DockerAllowedMounts=/my data/,/x"), 0);
	assert_string_equal(fx->cfg.docker_allowed_mounts[0], "/my data");
}

static void test_container_scope(void **state)
{
	struct fixture *fx = *state;

	assert_false(fx->cfg.container_scope_user);
	assert_int_equal(LOAD_ARGS(fx, "ContainerScope=USER"), 0);
	assert_true(fx->cfg.container_scope_user);
	assert_int_equal(LOAD_ARGS(fx, "ContainerScope=job"), 0);
	assert_false(fx->cfg.container_scope_user);
	assert_int_equal(LOAD_ARGS(fx, "ContainerScope=forever"), -1);
	assert_msg_has(&fx->err, "write job");
}

static void test_pyxis_env_compat(void **state)
{
	struct fixture *fx = *state;

	assert_false(fx->cfg.pyxis_env_compat);
	assert_int_equal(LOAD_ARGS(fx, "PyxisEnvCompat=YES"), 0);
	assert_true(fx->cfg.pyxis_env_compat);
	assert_int_equal(LOAD_ARGS(fx, "pyxisenvcompat=0"), 0);
	assert_false(fx->cfg.pyxis_env_compat);
	assert_int_equal(LOAD_ARGS(fx, "PyxisEnvCompat=maybe"), -1);
	assert_msg_has(&fx->err, "PyxisEnvCompat");
	assert_msg_has(&fx->err, "write yes or no");
}

/* What the plugin hands its commands reads back to the same settings. */
static void test_config_text_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct berth_config back;
	struct berth_err err = {0};

	assert_int_equal(LOAD_ARGS(fx, "InsecureRegistries=127.0.0.1:5000", "FetchTimeout=77",
				   "DockerAllowedMounts=/data,/scratch", "CacheMaxSize=3G",
				   "PyxisEnvCompat=yes"), 0);
	char *text = berth_config_to_text(&fx->cfg);
	assert_non_null(text);
	berth_config_defaults(&back);
	assert_int_equal(berth_config_load_text(&back, "text", text, &err), 0);
	assert_string_equal(back.insecure_registries, "127.0.0.1:5000");
	assert_int_equal(back.fetch_timeout, 77);
	assert_int_equal(back.n_docker_allowed_mounts, 2);
	assert_int_equal(back.cache_max_size, 3ull << 30);
	assert_true(back.pyxis_env_compat);
	char *again = berth_config_to_text(&back);
	assert_string_equal(text, again);
	free(again);
	free(text);
	berth_config_free(&back);
	assert_int_equal(berth_config_load_text(&back, "text", "Nope=1\n", &err), -1);
	assert_non_null(strstr(err.msg, "unknown key 'Nope'"));
	berth_config_free(&back);
}

static void test_sing_format_values(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(fx->cfg.sing_format, BERTH_SING_AUTO);
	assert_int_equal(LOAD_ARGS(fx, "SingularityImageFormat=sandbox"), 0);
	assert_int_equal(fx->cfg.sing_format, BERTH_SING_SANDBOX);
	assert_int_equal(LOAD_ARGS(fx, "singularityimageformat=Auto"), 0);
	assert_int_equal(fx->cfg.sing_format, BERTH_SING_AUTO);
	assert_int_equal(LOAD_ARGS(fx, "SingularityImageFormat=squashfs"), -1);
	assert_msg_has(&fx->err, "SingularityImageFormat must be auto, sif or sandbox, not 'squashfs'");
	assert_string_equal(berth_sing_format_name(BERTH_SING_SIF), "sif");
}

static void test_sqfs_comp_values(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(fx->cfg.sqfs_comp, BERTH_SQFS_AUTO);
	assert_int_equal(LOAD_ARGS(fx, "SquashfsCompression=lz4"), 0);
	assert_int_equal(fx->cfg.sqfs_comp, BERTH_SQFS_LZ4);
	assert_int_equal(LOAD_ARGS(fx, "squashfscompression=GZIP"), 0);
	assert_int_equal(fx->cfg.sqfs_comp, BERTH_SQFS_GZIP);
	assert_int_equal(LOAD_ARGS(fx, "SquashfsCompression=zstd"), 0);
	assert_int_equal(fx->cfg.sqfs_comp, BERTH_SQFS_ZSTD);
	assert_int_equal(LOAD_ARGS(fx, "SquashfsCompression=lzo"), -1);
	assert_msg_has(&fx->err, "SquashfsCompression must be auto, gzip, lz4, xz or zstd, not 'lzo'");
	assert_int_equal(LOAD_ARGS(fx, "SquashfsCompression="), -1);
	assert_string_equal(berth_sqfs_comp_name(BERTH_SQFS_XZ), "xz");
	/* the printed config reads back the same */
	assert_int_equal(LOAD_ARGS(fx, "SquashfsCompression=xz"), 0);
	char *text = berth_config_to_text(&fx->cfg);
	assert_non_null(strstr(text, "\nSquashfsCompression=xz\n"));
	free(text);
}

static void test_image_storage_values(void **state)
{
	struct fixture *fx = *state;

	/* auto is the default: squashfs where squashfuse can mount an image */
	assert_int_equal(fx->cfg.image_storage, BERTH_STORE_AUTO);
	assert_string_equal(fx->cfg.squashfuse_path, "/usr/bin/squashfuse_ll");
	assert_int_equal(LOAD_ARGS(fx, "ImageStorage=tree"), 0);
	assert_int_equal(fx->cfg.image_storage, BERTH_STORE_TREE);
	assert_int_equal(LOAD_ARGS(fx, "ImageStorage=squashfs"), 0);
	assert_int_equal(fx->cfg.image_storage, BERTH_STORE_SQUASHFS);
	assert_int_equal(LOAD_ARGS(fx, "imagestorage=AUTO"), 0);
	assert_int_equal(fx->cfg.image_storage, BERTH_STORE_AUTO);
	assert_int_equal(LOAD_ARGS(fx, "ImageStorage=sqfs"), -1);
	assert_msg_has(&fx->err, "ImageStorage must be squashfs, tree or auto, not 'sqfs'");
	assert_int_equal(LOAD_ARGS(fx, "ImageStorage="), -1);
	assert_int_equal(LOAD_ARGS(fx, "SquashfusePath=relative/squashfuse"), -1);
	/* the printed config reads back the same */
	assert_int_equal(LOAD_ARGS(fx, "ImageStorage=squashfs", "SquashfusePath=/opt/sf"), 0);
	char *text = berth_config_to_text(&fx->cfg);
	assert_non_null(strstr(text, "\nImageStorage=squashfs\nSquashfusePath=/opt/sf\n"));
	free(text);
}

static void test_allowed_runtimes_values(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(
		LOAD_ARGS(fx, "AllowedRuntimes=apptainer,charliecloud"), 0);
	assert_int_equal(fx->cfg.allowed_runtimes,
			 RT_BIT(BERTH_RT_SINGULARITY) |
				 RT_BIT(BERTH_RT_CHARLIECLOUD));
	assert_load_fails(fx, "AllowedRuntimes=charliecloud,,docker\n", 1,
			  "AllowedRuntimes");
	assert_msg_has(&fx->err, "empty item");
	assert_load_fails(fx, "AllowedRuntimes=charliecloud,\n", 1,
			  "AllowedRuntimes");
	assert_load_fails(fx, "AllowedRuntimes=,docker\n", 1,
			  "AllowedRuntimes");
	assert_load_fails(fx, "AllowedRuntimes=charliecloud,podman\n", 1,
			  "AllowedRuntimes");
	assert_msg_has(&fx->err, "unknown runtime 'podman' (known: "
				 "charliecloud, singularity, apptainer, "
				 "docker)");
}

static void test_unknown_runtime(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "# site\nDefaultRuntime=podman\n", 2,
			  "key 'DefaultRuntime'");
	assert_msg_has(&fx->err, "unknown runtime 'podman' (known: "
				 "charliecloud, singularity, apptainer, "
				 "docker)");
}

static void test_docker_mounts_normalized(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(
		LOAD_ARGS(fx,
			  "DockerAllowedMounts=/data///,/,///,/a/b/,/x/..y"),
		0);
	assert_int_equal(fx->cfg.n_docker_allowed_mounts, 5);
	assert_string_equal(fx->cfg.docker_allowed_mounts[0], "/data");
	assert_string_equal(fx->cfg.docker_allowed_mounts[1], "/");
	assert_string_equal(fx->cfg.docker_allowed_mounts[2], "/");
	assert_string_equal(fx->cfg.docker_allowed_mounts[3], "/a/b");
	assert_string_equal(fx->cfg.docker_allowed_mounts[4], "/x/..y");
}

static void test_docker_mounts_rejected(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = {
		"DockerAllowedMounts=/data/../etc",
		"DockerAllowedMounts=/data/..",
		"DockerAllowedMounts=/data/../",
		"DockerAllowedMounts=/..",
		"DockerAllowedMounts=data",
		"DockerAllowedMounts=/a,,/b",
		"DockerAllowedMounts=/a,",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *const argv[] = {(char *)bad[i]};

		if (load_argv(fx, 1, argv) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_msg_has(&fx->err, bad[i]);
		assert_int_equal(fx->cfg.n_docker_allowed_mounts, 0);
	}
}

/* Exactly BERTH_MOUNTS_MAX folders fit; one more is an error. */
static void test_docker_mounts_limit(void **state)
{
	struct fixture *fx = *state;
	char arg[BERTH_CONF_LINE_MAX];
	char *const argv[] = {arg};
	size_t used = snprintf(arg, sizeof(arg), "DockerAllowedMounts=");

	for (int i = 0; i < BERTH_MOUNTS_MAX; i++)
		used += snprintf(arg + used, sizeof(arg) - used, "%s/m%d",
				 i ? "," : "", i);
	assert_int_equal(load_argv(fx, 1, argv), 0);
	assert_int_equal(fx->cfg.n_docker_allowed_mounts, BERTH_MOUNTS_MAX);
	assert_string_equal(fx->cfg.docker_allowed_mounts[31], "/m31");

	snprintf(arg + used, sizeof(arg) - used, ",/one-too-many");
	berth_config_free(&fx->cfg);
	assert_int_equal(load_argv(fx, 1, argv), -1);
	assert_msg_has(&fx->err, "more than 32");
}

/* A later DockerAllowedMounts replaces the list (no leak under ASan). */
static void test_docker_mounts_replaced(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx, "DockerAllowedMounts=/a,/b,/c\n"), 0);
	assert_int_equal(LOAD_ARGS(fx, "DockerAllowedMounts=/d"), 0);
	assert_int_equal(fx->cfg.n_docker_allowed_mounts, 1);
	assert_string_equal(fx->cfg.docker_allowed_mounts[0], "/d");
	assert_null(fx->cfg.docker_allowed_mounts[1]);
	/* A bad list leaves the previous one in place. */
	assert_int_equal(LOAD_ARGS(fx, "DockerAllowedMounts=/e,rel"), -1);
	assert_int_equal(fx->cfg.n_docker_allowed_mounts, 1);
	assert_string_equal(fx->cfg.docker_allowed_mounts[0], "/d");
}

static void test_relative_path(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=/ok\nChRunPath=bin/ch-run\n", 2,
			  "key 'ChRunPath'");
	assert_msg_has(&fx->err, "'bin/ch-run' is not absolute");
	assert_int_equal(LOAD_ARGS(fx, "SingularityPath=./singularity"), -1);
	assert_msg_has(&fx->err,
		       "plugstack argument 'SingularityPath=./singularity'");
	assert_msg_has(&fx->err, "not absolute");
}

/* A long bad value is quoted in part, so the message keeps its fix hint. */
static void test_long_value_message_keeps_hint(void **state)
{
	struct fixture *fx = *state;
	char text[BERTH_CONF_LINE_MAX];
	int len = snprintf(text, sizeof(text), "CacheDir=");

	memset(text + len, 'r', sizeof(text) - (size_t)len - 2);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	assert_load_fails(fx, text, 1, "key 'CacheDir': path 'rrr");
	assert_msg_has(&fx->err, "rrr...' is not absolute; write it starting "
				 "with '/'");
}

/* ---- file syntax errors ------------------------------------------------ */

static void test_unknown_key(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=/a\n\nCachDir=/b\n", 3, "'CachDir'");
	assert_msg_has(&fx->err, "unknown key 'CachDir' (known keys: "
				 "DefaultRuntime, AllowedRuntimes, ");
	assert_msg_has(&fx->err, "PullParallel, ContainerScope, DockerPidsLimit");
	assert_int_equal(LOAD_ARGS(fx, "Podman=yes"), -1);
	assert_msg_has(&fx->err, "plugstack argument 'Podman=yes': unknown "
				 "key 'Podman'");
	assert_msg_has(&fx->err, ", Config)");
}

static void test_line_without_equals(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=/a\nMountHome no\n", 2, "MountHome no");
	assert_msg_has(&fx->err, "Key=Value");
	assert_load_fails(fx, "=/a\n", 1, "no key");
	assert_int_equal(LOAD_ARGS(fx, "MountHome"), -1);
	assert_msg_has(&fx->err, "plugstack argument 'MountHome': not a "
				 "Key=Value setting");
}

static void test_empty_value(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=\n", 1, "key 'CacheDir'");
	assert_msg_has(&fx->err, "empty value");
	assert_load_fails(fx, "\n\nCacheDir=   # nothing\n", 3, "CacheDir");
	assert_int_equal(LOAD_ARGS(fx, "FetchTimeout="), -1);
	assert_msg_has(&fx->err, "plugstack argument 'FetchTimeout=': empty "
				 "value");
}

static void test_control_char_in_value(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=/a\tb\n", 1, "CacheDir");
	assert_msg_has(&fx->err, "control character");
}

static void test_long_lines(void **state)
{
	struct fixture *fx = *state;
	size_t prefix = strlen("CacheDir=/");
	char *text = malloc(BERTH_CONF_LINE_MAX + 8);

	assert_non_null(text);
	/* Exactly BERTH_CONF_LINE_MAX bytes: accepted. */
	memcpy(text, "CacheDir=/", prefix);
	memset(text + prefix, 'c', BERTH_CONF_LINE_MAX - prefix);
	text[BERTH_CONF_LINE_MAX] = '\n';
	text[BERTH_CONF_LINE_MAX + 1] = '\0';
	assert_int_equal(load_text(fx, text), 0);
	assert_int_equal(strlen(fx->cfg.cache_dir),
			 BERTH_CONF_LINE_MAX - strlen("CacheDir="));
	/* One byte more, with and without a final newline: rejected. */
	memset(text + prefix, 'c', BERTH_CONF_LINE_MAX + 1 - prefix);
	text[BERTH_CONF_LINE_MAX + 1] = '\n';
	text[BERTH_CONF_LINE_MAX + 2] = '\0';
	assert_load_fails(fx, text, 1, "longer than 4096 bytes");
	text[BERTH_CONF_LINE_MAX + 1] = '\0';
	assert_load_fails(fx, text, 1, "longer than 4096 bytes");
	free(text);
}

static void test_nul_byte(void **state)
{
	struct fixture *fx = *state;
	static const char data[] = "CacheDir=/a\nChRunPath=/b\0/c\n";
	const char *path = write_bytes(fx, 0, data, sizeof(data) - 1);

	assert_int_equal(berth_config_load_file(&fx->cfg, path, true, &fx->err),
			 -1);
	assert_file_error(fx, 2, "NUL byte");
}

static void test_missing_file(void **state)
{
	struct fixture *fx = *state;
	const char *path = "/tmp/berth-test-conf-does-not-exist/berth.conf";
	struct berth_config before;

	memcpy(&before, &fx->cfg, sizeof(before));

	assert_int_equal(
		berth_config_load_file(&fx->cfg, path, false, &fx->err), 0);
	assert_memory_equal(&before, &fx->cfg, sizeof(before));
	assert_int_equal(berth_config_load_file(&fx->cfg, path, true, &fx->err),
			 -1);
	assert_msg_has(&fx->err, path);
	assert_msg_has(&fx->err, strerror(ENOENT));
	assert_int_equal(fx->err.errnum, ENOENT);
}

static void test_unreadable_file(void **state)
{
	struct fixture *fx = *state;

	/* A folder opens but cannot be read: an error even when optional. */
	assert_int_equal(
		berth_config_load_file(&fx->cfg, "/tmp", false, &fx->err), -1);
	assert_msg_has(&fx->err, "/tmp");
	assert_msg_has(&fx->err, strerror(EISDIR));
}

static void test_duplicate_key_in_file(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=/a\nMountHome=no\n\ncachedir=/b\n", 4,
			  "key 'CacheDir'");
	assert_msg_has(&fx->err, "lines 1 and 4");
}

static void test_duplicate_key_in_args(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(
		LOAD_ARGS(fx, "CacheDir=/a", "MountHome=no", "CACHEDIR=/b"),
		-1);
	assert_msg_has(&fx->err, "plugstack argument 'CACHEDIR=/b'");
	assert_msg_has(&fx->err, "'CacheDir=/a'");
	assert_msg_has(&fx->err, "twice");
}

static void test_arg_overrides_file(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx, "CacheDir=/from/file\nFetchTimeout=9\n"),
			 0);
	assert_int_equal(LOAD_ARGS(fx, "CacheDir=/from/arg"), 0);
	assert_string_equal(fx->cfg.cache_dir, "/from/arg");
	assert_int_equal(fx->cfg.fetch_timeout, 9);
}

/* Two files in turn (default file, then a site override) may repeat keys:
 * duplicates are counted per file. */
static void test_duplicates_are_per_file(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load_text(fx, "CacheDir=/one\n"), 0);
	assert_int_equal(load_text(fx, "CacheDir=/two\n"), 0);
	assert_string_equal(fx->cfg.cache_dir, "/two");
}

static void test_default_runtime_not_allowed(void **state)
{
	struct fixture *fx = *state;

	/* The file alone is fine: the check runs once all sources are in. */
	assert_int_equal(load_text(fx, "DefaultRuntime=docker\n"), 0);
	assert_int_equal(load_argv(fx, 0, NULL), -1);
	assert_msg_has(&fx->err, "DefaultRuntime=docker is not in "
				 "AllowedRuntimes=charliecloud,singularity");
	assert_msg_has(&fx->err, "add docker to AllowedRuntimes");
	/* An argument can complete what the file started. */
	assert_int_equal(LOAD_ARGS(fx, "AllowedRuntimes=docker"), 0);
	assert_int_equal(LOAD_ARGS(fx, "AllowedRuntimes=charliecloud"), -1);
}

/* ---- Config= ------------------------------------------------------------ */

static void test_config_arg_loads_file(void **state)
{
	struct fixture *fx = *state;
	char config_arg[96];
	const char *path = write_conf(fx, 0,
				      "CacheDir=/from/file\n"
				      "FetchTimeout=42\n"
				      "MountHome=no\n");

	snprintf(config_arg, sizeof(config_arg), "config=%s", path);
	/* The file is loaded first even though Config= comes last. */
	assert_int_equal(LOAD_ARGS(fx, "CacheDir=/from/arg", config_arg), 0);
	assert_string_equal(fx->cfg.cache_dir, "/from/arg");
	assert_int_equal(fx->cfg.fetch_timeout, 42);
	assert_false(fx->cfg.mount_home);
}

static void test_config_arg_error_names_file_line(void **state)
{
	struct fixture *fx = *state;
	char config_arg[96];
	char where[96];
	const char *path = write_conf(fx, 0, "MountHome=no\nBogus=1\n");

	snprintf(config_arg, sizeof(config_arg), "Config=%s", path);
	snprintf(where, sizeof(where), "%s:2: unknown key 'Bogus'", path);
	assert_int_equal(LOAD_ARGS(fx, config_arg), -1);
	assert_msg_has(&fx->err, config_arg);
	assert_msg_has(&fx->err, where);
}

static void test_config_arg_missing_file(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(LOAD_ARGS(fx, "Config=/tmp/berth-test-conf-missing"),
			 -1);
	assert_msg_has(&fx->err, "/tmp/berth-test-conf-missing");
	assert_msg_has(&fx->err, strerror(ENOENT));
	assert_int_equal(LOAD_ARGS(fx, "Config=relative.conf"), -1);
	assert_msg_has(&fx->err, "not absolute");
	assert_int_equal(LOAD_ARGS(fx, "Config="), -1);
	assert_msg_has(&fx->err, "empty value");
}

static void test_config_arg_twice(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(LOAD_ARGS(fx, "Config=/a.conf", "Config=/b.conf"), -1);
	assert_msg_has(&fx->err, "plugstack argument 'Config=/b.conf'");
	assert_msg_has(&fx->err, "'Config=/a.conf'");
}

static void test_config_in_file_rejected(void **state)
{
	struct fixture *fx = *state;

	assert_load_fails(fx, "CacheDir=/a\nConfig=/etc/other.conf\n", 2,
			  "key 'Config'");
	assert_msg_has(&fx->err, "plugstack argument");
}

static void test_bad_args(void **state)
{
	struct fixture *fx = *state;
	char *long_arg = malloc(BERTH_CONF_LINE_MAX + 16);
	char *const argv[] = {long_arg};
	int rc;

	assert_non_null(long_arg);
	memset(long_arg, 'x', BERTH_CONF_LINE_MAX + 15);
	memcpy(long_arg, "CacheDir=/", strlen("CacheDir=/"));
	long_arg[BERTH_CONF_LINE_MAX + 15] = '\0';
	rc = load_argv(fx, 1, argv);
	free(long_arg);
	assert_int_equal(rc, -1);
	assert_msg_has(&fx->err, "plugstack argument 'CacheDir=/xxx");
	assert_msg_has(&fx->err, "xxx...': longer than 4096 bytes");
	assert_int_equal(LOAD_ARGS(fx, "=x"), -1);
	assert_msg_has(&fx->err, "plugstack argument '=x': no key");
	assert_int_equal(LOAD_ARGS(fx, "DefaultRuntime=podman"), -1);
	assert_msg_has(&fx->err, "plugstack argument 'DefaultRuntime=podman': "
				 "unknown runtime 'podman'");
}

/* ---- berth_config_print ------------------------------------------------- */

static char *print_to_string(const struct berth_config *cfg)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);

	assert_non_null(out);
	berth_config_print(cfg, out);
	assert_int_equal(fclose(out), 0);
	return text;
}

static void assert_configs_equal(const struct berth_config *a,
				 const struct berth_config *b)
{
	assert_int_equal(a->default_runtime, b->default_runtime);
	assert_int_equal(a->allowed_runtimes, b->allowed_runtimes);
	assert_string_equal(a->singularity_path, b->singularity_path);
	assert_string_equal(a->chrun_path, b->chrun_path);
	assert_string_equal(a->docker_socket, b->docker_socket);
	assert_string_equal(a->cache_dir, b->cache_dir);
	assert_true(a->cache_max_size == b->cache_max_size);
	assert_string_equal(a->launcher_path, b->launcher_path);
	assert_int_equal(a->n_docker_allowed_mounts,
			 b->n_docker_allowed_mounts);
	for (unsigned i = 0; i < a->n_docker_allowed_mounts; i++)
		assert_string_equal(a->docker_allowed_mounts[i],
				    b->docker_allowed_mounts[i]);
	assert_int_equal(a->fetch_timeout, b->fetch_timeout);
	assert_int_equal(a->mount_home, b->mount_home);
	assert_int_equal(a->docker_pids_limit, b->docker_pids_limit);
}

/* Print, load the printout into fresh defaults, compare. */
static void assert_round_trip(struct fixture *fx)
{
	char *text = print_to_string(&fx->cfg);
	struct berth_config again;

	berth_config_defaults(&again);
	again.mount_home = !fx->cfg.mount_home; /* must come from the text */
	again.cache_max_size = 12345;
	again.docker_pids_limit = fx->cfg.docker_pids_limit + 1; /* from the text too */
	assert_int_equal(berth_config_load_file(&again, write_conf(fx, 1, text),
						true, &fx->err),
			 0);
	if (fx->cfg.cache_max_size == 0)
		assert_true(again.cache_max_size == 0);
	assert_int_equal(berth_config_load_args(&again, 0, NULL, &fx->err), 0);
	assert_configs_equal(&fx->cfg, &again);
	berth_config_free(&again);
	free(text);
}

static void test_print_round_trip_defaults(void **state)
{
	assert_round_trip(*state);
}

static void test_print_round_trip_custom(void **state)
{
	struct fixture *fx = *state;
	char *text;

	assert_int_equal(load_text(fx, all_keys_conf), 0);
	fx->cfg.cache_max_size = (3ULL << 30) + 1; /* no exact unit */
	assert_round_trip(fx);
	fx->cfg.cache_max_size = 1536ULL << 10; /* 1536K, not 1.5M */
	fx->cfg.mount_home = true;
	text = print_to_string(&fx->cfg);
	assert_non_null(strstr(text, "CacheMaxSize=1536K\n"));
	assert_non_null(strstr(text, "MountHome=yes\n"));
	free(text);
	assert_round_trip(fx);
}

static void test_print_canonical_keys(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {
		"DefaultRuntime=charliecloud\n",
		"AllowedRuntimes=charliecloud,singularity\n",
		"SingularityPath=/usr/bin/singularity\n",
		"ChRunPath=/usr/bin/ch-run\n",
		"DockerSocket=/var/run/docker.sock\n",
		"CacheDir=/var/cache/berth\n",
		"CacheMaxSize=0\n",
		"LauncherPath=" BERTH_DEFAULT_LAUNCHER "\n",
		"DockerAllowedMounts",
		"FetchTimeout=300\n",
		"MountHome=yes\n",
	};
	char *text = print_to_string(&fx->cfg);

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(text, lines[i]))
			fail_msg("printout lacks \"%s\":\n%s", lines[i], text);
	free(text);
}

static void test_pick_runtime(void **state)
{
	struct berth_config cfg;
	struct berth_err err = {0};
	enum berth_runtime rt;

	(void)state;
	berth_config_defaults(&cfg);
	assert_int_equal(berth_config_pick_runtime(&cfg, NULL, &rt, &err), 0);
	assert_int_equal(rt, BERTH_RT_CHARLIECLOUD);
	assert_int_equal(berth_config_pick_runtime(&cfg, "apptainer", &rt, &err), 0);
	assert_int_equal(rt, BERTH_RT_SINGULARITY);
	/* docker is off by default: refused, naming the key to change */
	assert_int_equal(berth_config_pick_runtime(&cfg, "docker", &rt, &err), -1);
	assert_non_null(strstr(err.msg, "--container-runtime=docker is not enabled"));
	assert_non_null(strstr(err.msg, "AllowedRuntimes"));
	assert_int_equal(berth_config_pick_runtime(&cfg, "podman", &rt, &err), -1);
	assert_non_null(strstr(err.msg, "unknown --container-runtime 'podman'"));
	assert_non_null(strstr(err.msg, "charliecloud"));
	berth_config_free(&cfg);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_runtime),
		T(test_defaults),
		T(test_runtime_names),
		T(test_file_sets_every_key),
		T(test_args_set_every_key),
		T(test_keys_case_insensitive),
		T(test_comments_and_blank_lines),
		T(test_whitespace_trimmed),
		T(test_parse_size_good),
		T(test_parse_size_bad),
		T(test_cache_max_size_errors),
		T(test_fetch_timeout_values),
		T(test_mount_home_values),
		T(test_container_writable),
		T(test_sing_format_values),
		T(test_sqfs_comp_values),
		T(test_image_storage_values),
		T(test_registry_keys),
		T(test_container_scope),
		T(test_pyxis_env_compat),
		T(test_docker_mount_trailing_blank),
		T(test_config_text_round_trip),
		T(test_docker_pids_limit),
		T(test_allowed_runtimes_values),
		T(test_unknown_runtime),
		T(test_docker_mounts_normalized),
		T(test_docker_mounts_rejected),
		T(test_docker_mounts_limit),
		T(test_docker_mounts_replaced),
		T(test_relative_path),
		T(test_long_value_message_keeps_hint),
		T(test_unknown_key),
		T(test_line_without_equals),
		T(test_empty_value),
		T(test_control_char_in_value),
		T(test_long_lines),
		T(test_nul_byte),
		T(test_missing_file),
		T(test_unreadable_file),
		T(test_duplicate_key_in_file),
		T(test_duplicate_key_in_args),
		T(test_arg_overrides_file),
		T(test_duplicates_are_per_file),
		T(test_default_runtime_not_allowed),
		T(test_config_arg_loads_file),
		T(test_config_arg_error_names_file_line),
		T(test_config_arg_missing_file),
		T(test_config_arg_twice),
		T(test_config_in_file_rejected),
		T(test_bad_args),
		T(test_print_round_trip_defaults),
		T(test_print_round_trip_custom),
		T(test_print_canonical_keys),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
