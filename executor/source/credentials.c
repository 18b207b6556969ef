/* berth: the registry client's credentials (see credentials.h): the
 * user's files read into a session, and `berth login`'s writing of them. */
#define _GNU_SOURCE
#include "executor/source/credentials.h"
#include "executor/source/registry_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include "executor/base/dl/crypto_lazy.h"

#include "executor/base/fs.h"

/* ---- small helpers -------------------------------------------------------- */

void reg_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
}

static const char *reg_home(const char *given)
{
	const char *env = getenv("HOME");
	struct passwd *pw;

	if (given)
		return given;
	/* The command as the user may look where the user says; the plugin's
	 * stagers get no HOME and use the password database. */
	if (env && env[0] == '/')
		return env;
	pw = getpwuid(getuid());
	return pw ? pw->pw_dir : NULL;
}

/* Docker Hub answers to several names in credential files. */
static bool reg_host_matches(const char *have, const char *registry)
{
	const char *h = have;

	if (!strncmp(h, "https://", 8))
		h += 8;
	else if (!strncmp(h, "http://", 7))
		h += 7;
	size_t n = strcspn(h, "/");
	if (strlen(registry) == n && !strncasecmp(h, registry, n))
		return true;
	if (strcmp(registry, BERTH_DOCKER_HUB) != 0)
		return false;
	return (n == 9 && !strncmp(h, "docker.io", 9)) ||
	       (n == 15 && !strncmp(h, "index.docker.io", 15));
}

/* ---- credentials ---------------------------------------------------------- */

/* Next netrc word: bare, or "double quoted" with \ escapes. */
static bool netrc_word(const char **pp, char *out, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;

	if (!p)
		return false;
	while (*p && isspace((unsigned char)*p))
		p++;
	if (!*p)
		return false;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 < cap)
				out[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && !isspace((unsigned char)*p)) {
			if (n + 1 < cap)
				out[n++] = *p;
			p++;
		}
	}
	out[n] = '\0';
	*pp = p;
	return true;
}

/* Read a whole small file of the user's, refusing one others may read. */
static int reg_read_private(const char *path, bool must_be_private, char **out,
			    struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	*out = NULL;
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : berth_fail(err, errno, "cannot read %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 1 << 20)
		return berth_fail(err, EINVAL, "%s is not a regular file under 1 MiB; fix or remove it", path);
	if (must_be_private && (st.st_mode & 077))
		return berth_fail(err, 0, "%s holds passwords but others may read it (mode %03o); "
				  "run chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
	if (!(*out = calloc(1, (size_t)st.st_size + 1)))
		return berth_fail(err, ENOMEM, "%s", path);
	if (berth_read_all(fd, *out, (size_t)st.st_size) < 0) {
		free(*out);
		*out = NULL;
		return berth_fail(err, errno, "cannot read %s", path);
	}
	return 1;
}

static int creds_from_netrc(struct reg_session *s, const char *home, struct berth_err *err)
{
	char path[4096], word[REG_CRED_MAX], machine[300] = "";
	_cleanup_free_ char *text = NULL;
	bool here = false;
	const char *p;

	snprintf(path, sizeof(path), "%s/" BERTH_CREDENTIALS_FILE, home);
	int rc = reg_read_private(path, true, &text, err);
	if (rc <= 0 || !text)
		return rc;
	for (p = text; netrc_word(&p, word, sizeof(word));) {
		if (!strcmp(word, "machine") && netrc_word(&p, machine, sizeof(machine))) {
			if (here && s->have_creds)
				break;
			here = reg_host_matches(machine, s->ref->registry);
		} else if (!strcmp(word, "default")) {
			if (here && s->have_creds)
				break;
			here = false; /* never send a catch-all password to any registry */
		} else if (here && !strcmp(word, "login")) {
			netrc_word(&p, s->user, sizeof(s->user));
		} else if (here && !strcmp(word, "password")) {
			s->have_creds = netrc_word(&p, s->password, sizeof(s->password));
		}
	}
	reg_wipe(text, strlen(text));
	return 0;
}

static int creds_from_auth_field(struct reg_session *s, const char *b64)
{
	unsigned char raw[2 * REG_CRED_MAX];
	size_t len = strlen(b64);
	int n;

	if (len == 0 || len > (sizeof(raw) - 1) / 3 * 4)
		return 0;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n <= 0)
		return 0;
	while (n > 0 && raw[n - 1] == '\0' && b64[len - 1] == '=')
		n--; /* EVP_DecodeBlock counts the padding */
	raw[n] = '\0';
	char *colon = strchr((char *)raw, ':');
	if (colon) {
		*colon = '\0';
		snprintf(s->user, sizeof(s->user), "%s", raw);
		snprintf(s->password, sizeof(s->password), "%s", colon + 1);
		s->have_creds = true;
	}
	reg_wipe(raw, sizeof(raw));
	return 0;
}

static int creds_from_docker_config(struct reg_session *s, const char *home,
				    struct berth_err *err)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;
	struct json_object *root, *auths;

	snprintf(path, sizeof(path), "%s/.docker/config.json", home);
	int rc = reg_read_private(path, false, &text, err);
	if (rc <= 0 || !text)
		return rc;
	root = json_tokener_parse(text);
	reg_wipe(text, strlen(text));
	if (!root)
		return berth_fail(err, 0, "%s is not valid JSON; fix it or move it away", path);
	if (json_object_object_get_ex(root, "auths", &auths) &&
	    json_object_is_type(auths, json_type_object)) {
		json_object_object_foreach(auths, key, val) {
			struct json_object *u, *pw;
			const char *auth = bj_member_string(val, "auth");
			if (s->have_creds || !reg_host_matches(key, s->ref->registry))
				continue;
			if (auth)
				creds_from_auth_field(s, auth);
			else if (json_object_object_get_ex(val, "username", &u) &&
				 json_object_object_get_ex(val, "password", &pw)) {
				snprintf(s->user, sizeof(s->user), "%s", bj_text(u));
				snprintf(s->password, sizeof(s->password), "%s", bj_text(pw));
				s->have_creds = true;
			}
		}
	}
	json_object_put(root);
	return 0;
}

int reg_load_creds(struct reg_session *s, struct berth_err *err)
{
	const char *home = reg_home(s->opts->home);

	if (!home)
		return 0;
	if (creds_from_netrc(s, home, err) < 0)
		return -1;
	if (!s->have_creds && creds_from_docker_config(s, home, err) < 0)
		return -1;
	return 0;
}

/* ---- login ---------------------------------------------------------------- */

static void netrc_quote(FILE *f, const char *v)
{
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

int berth_registry_save_login(const char *home, const char *registry, const char *user,
			      const char *password, struct berth_err *err)
{
	char dir[4096], path[4200], tmp[4300], machine[300], word[REG_CRED_MAX];
	_cleanup_free_ char *old = NULL;

	home = reg_home(home);
	if (!home)
		return berth_fail(err, 0, "cannot find your home folder");
	for (const char *p = registry; *p; p++)
		if (isspace((unsigned char)*p) || *p == '"')
			return berth_fail(err, EINVAL, "bad registry name %s", registry);
	snprintf(dir, sizeof(dir), "%s/.config", home);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/.config/berth", home);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "cannot create %s", dir);
	snprintf(path, sizeof(path), "%s/credentials", dir);
	if (reg_read_private(path, true, &old, err) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return berth_fail(err, errno, "cannot write %s", tmp);
	}
	/* Keep other machines' entries, one per line, as they were parsed. */
	const char *p = old;
	bool keep = false;
	while (p && netrc_word(&p, word, sizeof(word))) {
		if (!strcmp(word, "machine") && netrc_word(&p, machine, sizeof(machine))) {
			keep = strcasecmp(machine, registry) != 0;
			if (keep)
				fprintf(f, "machine %s", machine);
		} else if (keep && (!strcmp(word, "login") || !strcmp(word, "password"))) {
			fprintf(f, " %s ", word);
			if (netrc_word(&p, word, sizeof(word)))
				netrc_quote(f, word);
		}
		if (keep && (!*p || *p == '\n'))
			fputc('\n', f);
	}
	fprintf(f, "machine %s login ", registry);
	netrc_quote(f, user);
	fputs(" password ", f);
	netrc_quote(f, password);
	fputc('\n', f);
	if (old)
		reg_wipe(old, strlen(old));
	reg_wipe(word, sizeof(word));
	if (fflush(f) != 0 || fsync(fileno(f)) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return berth_fail(err, e, "cannot write %s", path);
	}
	return 0;
}
