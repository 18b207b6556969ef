/* berth resolve, berth login, and registry images for berth inspect. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "executor/cache/cache.h"
#include "executor/source/fetch.h"
#include "executor/source/imageref.h"
#include "executor/source/registry.h"
#include "cli/cli.h"

static void registry_opts(const struct berth_config *cfg, struct berth_registry_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->insecure = cfg->insecure_registries;
	o->mirrors = cfg->registry_mirrors;
	o->certs_dir = cfg->registry_certs_dir;
	o->parallel = cfg->pull_parallel;
	o->timeout_s = cfg->fetch_timeout;
	o->max_bytes = cfg->cache_max_size;
}

/* An http(s) URL pinned by what its server says now: "KEY@@<pin>", or KEY
 * alone when the server gives no validator.  KEY is berth_url_pin_key's: the
 * URL, or its masked form and hash when it holds a password or a query
 * (the answer goes into the job's environment). */
static int resolve_url(const struct berth_config *cfg, const char *image, struct berth_err *err)
{
	struct berth_fetch_opts o;
	char pin[600], word[1800], key[BERTH_IMAGE_MAX + 80];
	_cleanup_free_ char *url = strndup(image, strcspn(image, "#"));

	berth_fetch_opts_init(&o);
	o.timeout_s = cfg->fetch_timeout;
	if (!url || berth_fetch_pin(url, &o, pin, sizeof(pin), err) < 0)
		return -1;
	if (!berth_url_pin_key(image, key, sizeof(key)))
		return berth_fail(err, 0, "the image URL is too long (at most %d bytes)",
				  BERTH_IMAGE_MAX);
	berth_pin_encode(pin, word, sizeof(word));
	printf("%s%s%s\n", key, pin[0] ? "@@" : "", word);
	return 0;
}

/* berth resolve IMAGE | --image-stdin: the reference pinned to the digest
 * its tag names now ("REGISTRY/REPO:TAG@sha256:..."), an http(s) URL
 * pinned by its ETag or Last-Modified ("URL@@etag:..."), or IMAGE itself.
 * The plugin runs it at submission, with the image on stdin. */
int cmd_resolve(int argc, char **argv)
{
	static const struct option opts[] = {
		{"image-stdin", no_argument, NULL, 'i'},
		{NULL, 0, NULL, 0},
	};
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	struct berth_registry_opts o;
	struct berth_imageref ref;
	char pinned[1024], image_buf[BERTH_IMAGE_MAX + 2];
	bool image_stdin = false;
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'i')
			return fputs("usage: berth resolve IMAGE | --image-stdin\n", stderr), 2;
		image_stdin = true;
	}
	const char *image = cli_image_operand(image_stdin, argc, argv, optind, image_buf,
					      sizeof(image_buf));
	if (!image)
		return fputs("usage: berth resolve IMAGE | --image-stdin\n", stderr), 2;
	if (cli_load_config(&cfg, &err) < 0)
		return cli_error(&err), 1;
	berth_cache_configure(&cache, &cfg);
	if (!strncmp(image, "http://", 7) || !strncmp(image, "https://", 8)) {
		int rc = resolve_url(&cfg, image, &err);
		if (rc < 0)
			cli_error(&err);
		berth_config_free(&cfg);
		return rc < 0 ? 1 : 0;
	}
	if (!berth_cache_is_registry_ref(&cache, image, &ref)) {
		printf("%s\n", image);
		berth_config_free(&cfg);
		return 0;
	}
	/* The site's importer fetches what it claims, on the node: not pinned
	 * here (its key alone is the plugin's "not pinned"). */
	int claimed = access(cfg.importer, X_OK) == 0 ?
		berth_cache_import_claims(&cache, image, &err) : 0;
	if (claimed != 0) {
		berth_imageref_format(&ref, pinned, sizeof(pinned));
		if (claimed > 0)
			printf("%s\n", pinned);
		else
			cli_error(&err);
		berth_config_free(&cfg);
		return claimed < 0 ? 1 : 0;
	}
	registry_opts(&cfg, &o);
	int rc = berth_registry_resolve(&o, &ref, ref.digest, &err);
	if (rc == 0) {
		berth_imageref_format(&ref, pinned, sizeof(pinned));
		printf("%s\n", pinned);
	} else {
		cli_error(&err);
	}
	berth_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}

/* One line from stdin without echo when it is a terminal. */
static int read_secret(const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;

	if (tty) {
		fputs(prompt, stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *got = fgets(buf, (int)cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!got)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* berth login [--username U] [--no-check] REGISTRY: the password comes on
 * stdin (never argv, which every user on the node can read). */
int cmd_login(int argc, char **argv)
{
	static const struct option opts[] = {
		{"username", required_argument, NULL, 'u'},
		{"no-check", no_argument, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	static const char login_usage[] =
		"usage: berth login [--username USER] [--no-check] REGISTRY   (password on stdin)\n";
	struct berth_err err = {0};
	struct berth_config cfg;
	struct berth_registry_opts o;
	char user[256] = "", password[512] = "";
	bool check = true;
	int c;

	while ((c = getopt_long(argc, argv, "+u:", opts, NULL)) != -1) {
		if (c == 'u')
			snprintf(user, sizeof(user), "%s", optarg);
		else if (c == 'n')
			check = false;
		else
			return fputs(login_usage, stderr), 2;
	}
	if (optind != argc - 1)
		return fputs(login_usage, stderr), 2;
	const char *registry = argv[optind];
	if (!strncmp(registry, "docker.io", 9) && !registry[9])
		registry = BERTH_DOCKER_HUB;
	if (!user[0] && read_secret("Username: ", user, sizeof(user)) < 0)
		return fputs("berth: no user name given\n", stderr), 1;
	if (read_secret("Password: ", password, sizeof(password)) < 0 || !password[0])
		return fputs("berth: no password on stdin; pipe it in, for example "
			     "berth login --username me REGISTRY < token-file\n", stderr), 1;
	int rc = cli_load_config(&cfg, &err);
	if (rc == 0)
		rc = berth_registry_save_login(NULL, registry, user, password, &err);
	explicit_bzero(password, sizeof(password));
	if (rc == 0 && check) {
		registry_opts(&cfg, &o);
		rc = berth_registry_check_login(&o, registry, &err);
	}
	if (rc == 0)
		fprintf(stderr, "berth: credentials for %s stored in ~/" BERTH_CREDENTIALS_FILE "\n",
			registry);
	else
		cli_error(&err);
	berth_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}

/* For berth inspect: a registry reference pulled into the user's cache and
 * opened from there.  Returns 1 when `ref` is not a registry image. */
int cli_open_registry_image(const char *text, struct berth_image *img, char pinned[72],
			    struct berth_err *err)
{
	struct berth_config cfg;
	struct berth_cache cache = {.dir_fd = -1};
	struct berth_imageref ref;
	struct berth_registry_pull pull;

	if (cli_load_config(&cfg, err) < 0)
		return -1;
	berth_cache_configure(&cache, &cfg);
	if (!berth_cache_is_registry_ref(&cache, text, &ref)) {
		berth_config_free(&cfg);
		return 1;
	}
	int rc = berth_cache_open(&cache, cfg.cache_dir, getuid(), err);
	berth_cache_configure(&cache, &cfg); /* open cleared it */
	if (rc == 0)
		rc = berth_registry_pull(&cache.registry, cache.dir, &ref, &pull, err);
	if (rc == 0)
		rc = berth_image_open_layout(img, cache.dir, pull.manifest, err);
	if (rc == 0)
		snprintf(pinned, 72, "%s", pull.pinned);
	berth_cache_close(&cache);
	berth_config_free(&cfg);
	return rc;
}
