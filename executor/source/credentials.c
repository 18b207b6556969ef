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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include "executor/base/dl/crypto_lazy.h"

#include "executor/base/fs.h"
#include "executor/base/process.h"

#define HELPER_OUTPUT_MAX 16384
#define HELPER_TIMEOUT_S 60

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


/* ---- credential programs, run as the caller -------------------------------- */

/* `name` as execve wants it: a path, or found in $PATH (the plugin's
 * stagers have PATH=/usr/local/bin:/usr/bin:/bin). */
static bool find_program(const char *name, char *out, size_t cap)
{
	const char *path = getenv("PATH");

	if (strchr(name, '/')) {
		snprintf(out, cap, "%s", name);
		return name[0] == '/' && access(out, X_OK) == 0;
	}
	for (const char *p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin"; *p;) {
		size_t len = strcspn(p, ":");
		if (len && (size_t)snprintf(out, cap, "%.*s/%s", (int)len, p, name) < cap &&
		    access(out, X_OK) == 0)
			return true;
		p += len;
		p += *p == ':';
	}
	return false;
}

/* Run argv (argv[0] found in PATH) with `input` on its stdin, its stdout
 * into *out.  Its stderr goes nowhere: whatever a credential program
 * prints is never shown or logged.  Returns its exit status, or -1. */
static int run_cred_program(char **argv, const char *input, char **out, struct berth_err *err)
{
	char prog[4096];
	int status = -1;

	*out = NULL;
#ifdef BERTH_CRED_NO_PROGRAMS
	(void)input;
	(void)prog;
	(void)status;
	return berth_fail(err, 0, "credential programs are off in this build (%s)", argv[0]);
#endif
	if (!find_program(argv[0], prog, sizeof(prog)))
		return berth_fail(err, 0, "cannot find the credential program %s (looked in "
				  "PATH)", argv[0]);
	_cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	_cleanup_close_ int in = memfd_create("berth-cred", MFD_CLOEXEC);
	if (in < 0 || (input && berth_write_all(in, input, strlen(input)) < 0) ||
	    lseek(in, 0, SEEK_SET) < 0)
		return berth_fail(err, errno, "cannot pass input to %s", argv[0]);
	char *name = argv[0];
	argv[0] = prog;
	struct berth_spawn sp = {
		.argv = argv, .stdin_fd = in, .stderr_fd = null, .capture_stdout = out,
		.capture_max = HELPER_OUTPUT_MAX, .timeout_s = HELPER_TIMEOUT_S,
	};
	int rc = berth_spawn_run(&sp, &status, err);
	argv[0] = name;
	if (rc < 0) {
		/* never the program's output, only why it could not run */
		return berth_fail(err, err->errnum, "the credential program %s did not run "
				  "to its end (at most %d s)", name, HELPER_TIMEOUT_S);
	}
	return status;
}

static void wipe_free(char **p)
{
	if (*p) {
		reg_wipe(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

/* enroot's `password $(command args...)`: the words of the command, split
 * at blanks and quotes as a shell would split them (no shell runs: no
 * pipes, variables or globs; a leading ~/ is the home folder), run as the
 * caller; its output, without the final newline, is the password. */
static int netrc_command_password(struct reg_session *s, const char *cmd, const char *home,
				  struct berth_err *err)
{
	char *argv[32], words[2048];
	size_t n = 0, used = 0;
	const char *p = cmd;

	while (*p && n < sizeof(argv) / sizeof(*argv) - 1) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		argv[n++] = words + used;
		if (p[0] == '~' && p[1] == '/' && home) {
			int k = snprintf(words + used, sizeof(words) - used, "%s", home);
			if (k < 0 || (size_t)k >= sizeof(words) - used)
				return berth_fail(err, 0, "the password command in ~/"
						  BERTH_CREDENTIALS_FILE " is too long");
			used += (size_t)k;
			p++;
		}
		for (char q = 0; *p && (q || !isspace((unsigned char)*p)); p++) {
			if ((!q && (*p == '\'' || *p == '"')) || (q && *p == q)) {
				q = q ? 0 : *p;
				continue;
			}
			if (used + 2 >= sizeof(words))
				return berth_fail(err, 0, "the password command in ~/" BERTH_CREDENTIALS_FILE
						  " is too long");
			words[used++] = *p;
		}
		words[used++] = '\0';
	}
	argv[n] = NULL;
	if (!n)
		return berth_fail(err, 0, "~/" BERTH_CREDENTIALS_FILE ": password $() names no "
				  "command");
	char *out = NULL;
	int status = run_cred_program(argv, NULL, &out, err);
	if (status != 0) {
		wipe_free(&out);
		if (status > 0)
			berth_fail(err, 0, "the password command %s of ~/" BERTH_CREDENTIALS_FILE
				   " for %s failed (exit %d)", argv[0], s->ref->registry, status);
		return -1;
	}
	if (!out || !out[0]) {
		wipe_free(&out);
		return berth_fail(err, 0, "the password command %s of ~/" BERTH_CREDENTIALS_FILE
				  " for %s printed nothing", argv[0], s->ref->registry);
	}
	out[strcspn(out, "\n")] = '\0';
	snprintf(s->password, sizeof(s->password), "%s", out);
	s->have_creds = true;
	wipe_free(&out);
	return 0;
}

/* Docker's credential helpers: `docker-credential-NAME get`, the server on
 * stdin, {"Username": ..., "Secret": ...} out.  Exit non-zero with
 * "credentials not found" is no credentials, as for Docker. */
static int creds_from_helper(struct reg_session *s, const char *helper, struct berth_err *err)
{
	char prog[300], server[320];
	char *argv[] = {prog, "get", NULL};

	if (!*helper || strspn(helper, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			       "0123456789._-") != strlen(helper) || strlen(helper) > 200)
		return berth_fail(err, 0, "~/.docker/config.json names the credential helper "
				  "'%.60s', which is no helper name; fix it", helper);
	snprintf(prog, sizeof(prog), "docker-credential-%s", helper);
	/* Docker asks for Docker Hub by its index URL */
	snprintf(server, sizeof(server), "%s\n", !strcmp(s->ref->registry, BERTH_DOCKER_HUB)
		 ? "https://index.docker.io/v1/" : s->ref->registry);
	char *out = NULL;
	int status = run_cred_program(argv, server, &out, err);
	if (status < 0) {
		wipe_free(&out);
		return -1;
	}
	if (status != 0) {
		wipe_free(&out);
		return 0;
	}
	struct json_object *o = json_tokener_parse(out);
	wipe_free(&out);
	const char *user = o ? bj_member_string(o, "Username") : NULL;
	const char *secret = o ? bj_member_string(o, "Secret") : NULL;
	if (user && secret && strcmp(user, "<token>") != 0) {
		snprintf(s->user, sizeof(s->user), "%s", user);
		snprintf(s->password, sizeof(s->password), "%s", secret);
		s->have_creds = true;
	}
	if (secret)
		reg_wipe((char *)secret, strlen(secret));
	if (o)
		json_object_put(o);
	if (!s->have_creds)
		return berth_fail(err, 0, "%s gave no Username and Secret for %s (identity "
				  "tokens are not supported); fix the helper or log in with "
				  "berth login %s", prog, s->ref->registry, s->ref->registry);
	return 0;
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
			while (*p && isspace((unsigned char)*p))
				p++;
			if (strncmp(p, "$(", 2) != 0) {
				s->have_creds = netrc_word(&p, s->password, sizeof(s->password));
				continue;
			}
			const char *end = strchr(p, ')');
			_cleanup_free_ char *cmd = end ? strndup(p + 2, (size_t)(end - p - 2)) : NULL;
			if (!end)
				rc = berth_fail(err, 0, "%s: password $(... has no closing ')'; fix "
						"it", path);
			else if (!cmd)
				rc = berth_fail(err, ENOMEM, "%s", path);
			else
				rc = netrc_command_password(s, cmd, home, err);
			if (cmd)
				reg_wipe(cmd, strlen(cmd));
			if (rc < 0)
				break;
			p = end + 1;
		}
	}
	reg_wipe(text, strlen(text));
	return rc < 0 ? -1 : 0;
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
	/* Docker's order: the registry's own helper, the file, the store. */
	struct json_object *helpers;
	if (json_object_object_get_ex(root, "credHelpers", &helpers) &&
	    json_object_is_type(helpers, json_type_object)) {
		json_object_object_foreach(helpers, host, name) {
			if (s->have_creds || !reg_host_matches(host, s->ref->registry))
				continue;
			if (creds_from_helper(s, bj_text(name), err) < 0) {
				json_object_put(root);
				return -1;
			}
		}
	}
	if (!s->have_creds && json_object_object_get_ex(root, "auths", &auths) &&
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
	const char *store = bj_member_string(root, "credsStore");
	if (!s->have_creds && store && creds_from_helper(s, store, err) < 0) {
		json_object_put(root);
		return -1;
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
		} else if (keep && !strcmp(word, "password") && p[strspn(p, " \t")] == '$' &&
			   p[strspn(p, " \t") + 1] == '(' && strchr(p, ')')) {
			/* a password command stays a command */
			p += strspn(p, " \t");
			fprintf(f, " password %.*s", (int)(strchr(p, ')') + 1 - p), p);
			p = strchr(p, ')') + 1;
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
