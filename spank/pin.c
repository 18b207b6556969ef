/* berth: a registry image is pinned to one digest for the whole job.
 *
 * srun, sbatch and salloc resolve a tag once, on the submitting side
 * (`berth resolve`, as the user), and put the answer in the job's
 * environment: BERTH_IMAGE_PINS="REG/REPO:TAG@sha256:... ...".  Every node
 * of the step, and every later step whose environment comes from this one
 * (srun inside sbatch or salloc), stages that digest; a tag pushed anew
 * meanwhile changes nothing for the job.  The variable also shows users
 * (and `scontrol show job -d`'s environment) what ran.
 *
 * A URL with a password or a query (a pre-signed signature) is filed under
 * its masked form and hash (berth_url_pin_key), never itself, and reaches
 * `berth resolve` and the stagers on stdin, never on their command line. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/source/imageref.h"
#include "executor/base/process.h"
#include "spank/berth_spank.h"
#include "spank/pin.h"

#define PINS_ENV "BERTH_IMAGE_PINS"
#define RESOLVE_OUTPUT_MAX 8192

static bool is_http_url(const char *image)
{
	return !strncmp(image, "http://", 7) || !strncmp(image, "https://", 8);
}

const char *berth_image_shown(void)
{
	static char shown[BERTH_IMAGE_MAX + 1];

	berth_url_masked(berth.image ? berth.image : "", shown, sizeof(shown));
	return shown;
}

int berth_image_stdin(const char *image, struct berth_err *err)
{
	size_t len = strlen(image);

	if (len > BERTH_IMAGE_MAX)
		return berth_fail(err, 0, "the image name is longer than %d bytes; give a "
				  "shorter one", BERTH_IMAGE_MAX);
	/* A memfd, not a pipe: no capacity to fill before the child reads. */
	int fd = memfd_create("berth-image", MFD_CLOEXEC);
	if (fd < 0)
		return berth_fail(err, errno, "cannot pass the image to berth (memfd_create)");
	if (dprintf(fd, "%s\n", image) != (int)len + 1 || lseek(fd, 0, SEEK_SET) < 0) {
		int e = errno;
		close(fd);
		return berth_fail(err, e, "cannot pass the image to berth (memfd)");
	}
	return fd;
}

/* What a pin is filed under: "REG/REPO:TAG" of a registry reference with a
 * tag, berth_url_pin_key's of an http(s) URL; false for anything else (a
 * file, a reference that names its digest already). */
static bool pin_key(const char *image, char *key, size_t cap)
{
	struct berth_imageref ref;
	struct berth_err err = {0};

	if (is_http_url(image))
		return berth_url_pin_key(image, key, cap);
	if (strstr(image, "://") && strncmp(image, "docker://", 9) != 0)
		return false;
	if (berth_imageref_looks_like_path(image) ||
	    berth_imageref_parse(image, berth.cfg.default_registry, &ref, &err) < 0 ||
	    ref.digest[0])
		return false;
	berth_imageref_format(&ref, key, cap);
	return true;
}

/* The pinned reference for key in a pins list ("" when none). */
static void pin_find(const char *pins, const char *key, char *out, size_t cap)
{
	size_t k = strlen(key);

	out[0] = '\0';
	for (const char *p = pins; p && *p;) {
		size_t len = strcspn(p, " ");
		if (len > k && !strncmp(p, key, k) && p[k] == '@') {
			snprintf(out, cap, "%.*s", (int)len, p);
			return;
		}
		p += len;
		p += strspn(p, " ");
	}
}

char *berth_config_env(void)
{
	static char *env;

	if (!env) {
		_cleanup_free_ char *text = berth_config_to_text(&berth.cfg);
		if (!text || asprintf(&env, "BERTH_CONFIG_TEXT=%s", text) < 0)
			env = NULL;
	}
	return env;
}

/* Entries are "REG/REPO:TAG@sha256:HEX" and "KEY@@<encoded pin>", KEY as
 * berth_url_pin_key makes it. */

/* Run `berth resolve IMAGE` as ourselves (srun/sbatch/salloc run as the
 * user) and return its answer, or NULL after reporting why not: an error
 * when `fatal`, else a warning (a URL the submitting host cannot reach may
 * still be reachable from the nodes; a registry image must resolve). */
static char *resolve(const char *image, bool fatal)
{
	void (*say)(const char *, ...) = fatal ? slurm_error : slurm_info;
	extern char **environ;
	size_t n = 0;

	while (environ[n])
		n++;
	_cleanup_free_ char **envp = calloc(n + 2, sizeof(*envp));
	char *argv[] = {berth.cfg.launcher_path, "resolve", "--image-stdin", NULL};
	char *out = NULL;
	struct berth_err err = {0};
	int status = 0;
	const char *shown = berth_image_shown();

	if (!envp || !berth_config_env())
		return NULL;
	_cleanup_close_ int in = berth_image_stdin(image, &err);
	if (in < 0) {
		say(PFX "cannot resolve --container-image=%s: %s", shown, err.msg);
		return NULL;
	}
	/* The user's environment (HOME, proxies) minus a forged config text. */
	for (size_t i = 0, j = 0; i < n; i++)
		if (strncmp(environ[i], "BERTH_CONFIG_TEXT=", 18) != 0)
			envp[j++] = environ[i];
	for (n = 0; envp[n]; n++)
		;
	envp[n] = berth_config_env();
	struct berth_spawn spawn = {
		.argv = argv, .envp = envp, .stdin_fd = in, .stderr_fd = -1,
		.capture_stdout = &out, .capture_max = RESOLVE_OUTPUT_MAX,
		.stderr_to_capture = true,
	};
	if (berth_spawn_run(&spawn, &status, &err) < 0) {
		say(PFX "cannot resolve --container-image=%s: %s", shown, err.msg);
		return NULL;
	}
	if (status != 0) {
		const char *msg = !strncmp(out, PFX, strlen(PFX)) ? out + strlen(PFX) : out;
		msg = *msg ? msg : "berth resolve failed";
		say(PFX "--container-image=%s: %.*s%s", shown, (int)strcspn(msg, "\n"), msg,
		    fatal ? "" : " (not pinned: the nodes fetch it as it is then)");
		free(out);
		return NULL;
	}
	out[strcspn(out, "\n")] = '\0';
	return out;
}

int berth_pin_submit(void)
{
	char key[BERTH_PIN_ENTRY_MAX], have[BERTH_PIN_ENTRY_MAX];
	const char *pins = getenv(PINS_ENV);
	const char *shown = berth_image_shown();

	if (!pin_key(berth.image, key, sizeof(key)))
		return 0;
	pin_find(pins, key, have, sizeof(have));
	if (have[0]) {
		slurm_verbose(PFX "%s stays pinned to %s", shown, have + strlen(key) + 1);
		return 0; /* a step of a job that pinned it already */
	}
	_cleanup_free_ char *pinned = resolve(berth.image, !is_http_url(berth.image));
	if (!pinned)
		return is_http_url(berth.image) ? 0 : -1;
	if (!strcmp(pinned, key)) {
		slurm_verbose(PFX "%s: the server names no version (no ETag or Last-Modified); "
			      "not pinned", shown);
		return 0;
	}
	if (strncmp(pinned, key, strlen(key)) != 0 || pinned[strlen(key)] != '@' ||
	    strlen(pinned) >= BERTH_PIN_ENTRY_MAX || strchr(pinned, ' ')) {
		slurm_error(PFX "--container-image=%s: unexpected answer from berth resolve: %s",
			    shown, pinned);
		return -1;
	}
	_cleanup_free_ char *value = NULL;
	if (asprintf(&value, "%s%s%s", pins && *pins ? pins : "", pins && *pins ? " " : "",
		     pinned) < 0 || setenv(PINS_ENV, value, 1) < 0) {
		value = NULL;
		slurm_error(PFX "cannot record the pinned image: out of memory");
		return -1;
	}
	slurm_verbose(PFX "%s pinned to %s", shown, pinned + strlen(key) + 1);
	return 0;
}

const char *berth_pinned_image(spank_t sp, char *buf, size_t cap, char *url_pin,
			       size_t pin_cap)
{
	char key[BERTH_PIN_ENTRY_MAX];
	_cleanup_free_ char *pins = malloc(BERTH_PINS_MAX);

	url_pin[0] = '\0';
	if (!pins || !pin_key(berth.image, key, sizeof(key)) ||
	    spank_getenv(sp, PINS_ENV, pins, BERTH_PINS_MAX) != ESPANK_SUCCESS)
		return berth.image;
	pin_find(pins, key, buf, cap);
	if (!buf[0])
		return berth.image;
	if (!is_http_url(berth.image))
		return buf;
	/* A URL stays itself; its validator goes to the stager apart. */
	const char *word = buf + strlen(key);
	if (strncmp(word, "@@", 2) != 0 || berth_pin_decode(word + 2, url_pin, pin_cap) < 0)
		url_pin[0] = '\0';
	return berth.image;
}
