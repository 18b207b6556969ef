/* berth: a task's environment, working directory and argv (task.h). */
#define _GNU_SOURCE
#include "executor/task.h"

#include "executor/base/strbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ---- environment ------------------------------------------------------------ */

static size_t env_name_len(const char *pair)
{
	return strcspn(pair, "=");
}

static bool env_name_in(const char *pair, char *const *names)
{
	size_t len = env_name_len(pair);

	for (size_t i = 0; names && names[i]; i++)
		if (strlen(names[i]) == len && !strncmp(names[i], pair, len))
			return true;
	return false;
}

static bool env_name_is(const char *pair, const char *name)
{
	size_t len = strlen(name);

	return !strncmp(pair, name, len) && (pair[len] == '=' || !pair[len]);
}

/* LANG, LANGUAGE and LC_*: the job's locale names one of the host's
 * locales, which the image may lack (pyxis keeps the image's locale). */
static bool env_is_locale(const char *pair)
{
	return env_name_is(pair, "LANG") || env_name_is(pair, "LANGUAGE") ||
	       !strncmp(pair, "LC_", 3);
}

static ssize_t env_find(char **v, size_t n, const char *pair)
{
	size_t len = env_name_len(pair);

	for (size_t i = 0; i < n; i++)
		if (!strncmp(v[i], pair, len) && v[i][len] == '=')
			return (ssize_t)i;
	return -1;
}

/* One of the image's variables: added, or over base's value unless the
 * name is kept.  SLURM_* never comes from an image: the task must see its
 * own step. */
static int env_add_image(struct berth_strv *out, const char *pair, char *const *keep,
			 struct berth_err *err)
{
	if (!strchr(pair, '=') || pair[0] == '=' || !strncmp(pair, "SLURM_", 6))
		return 0;
	ssize_t at = out->v ? env_find(out->v, out->n, pair) : -1;
	if (at < 0)
		return berth_strv_add(out, pair, err);
	if (env_name_in(pair, keep))
		return 0;
	char *copy = strdup(pair);
	if (!copy)
		return berth_fail(err, ENOMEM, "environment");
	free(out->v[at]);
	out->v[at] = copy;
	return 0;
}

char **berth_env_merge(char *const *base, const struct berth_image *img,
		       char *const *keep, struct berth_err *err)
{
	struct berth_strv out = {0};

	for (size_t i = 0; base && base[i]; i++)
		if (strchr(base[i], '=') && base[i][0] != '=' &&
		    berth_strv_add(&out, base[i], err) < 0)
			goto fail;
	for (size_t i = 0; img && i < img->n_env; i++)
		if (env_add_image(&out, img->env[i], keep, err) < 0)
			goto fail;
	if (!out.v && !(out.v = calloc(1, sizeof(char *)))) {
		berth_fail(err, ENOMEM, "environment");
		goto fail;
	}
	return out.v;
fail:
	berth_strv_free(out.v);
	return NULL;
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

char **berth_task_env(char *const *job, const struct berth_image *img,
		      char *const *keep, struct berth_err *err)
{
	size_t n_job = strv_len(job), n_keep = strv_len(keep), n = 0;
	/* Borrowed pointers: the job's variables without its locale, and the
	 * kept names plus TERM (the user's terminal, not the image builder's). */
	_cleanup_free_ char **base = calloc(n_job + 1, sizeof(char *));
	_cleanup_free_ char **kept = calloc(n_keep + 2, sizeof(char *));

	if (!base || !kept) {
		berth_fail(err, ENOMEM, "environment");
		return NULL;
	}
	for (size_t i = 0; i < n_job; i++)
		if (!env_is_locale(job[i]) || env_name_in(job[i], keep))
			base[n++] = job[i];
	if (n_keep)
		memcpy(kept, keep, n_keep * sizeof(char *));
	kept[n_keep] = (char *)"TERM";
	return berth_env_merge(base, img, kept, err);
}

/* ---- working directory ------------------------------------------------------- */

int berth_workdir_resolve(const char *dir, char *out, size_t len, struct berth_err *err)
{
	size_t n = 0;

	if (!dir || !dir[0])
		return berth_fail(err, 0, "empty working directory: give a path inside "
				  "the container");
	if (len < 2)
		return berth_fail(err, ENAMETOOLONG, "working directory '%s'", dir);
	/* Component by component from "/": "." goes, ".." drops the last one
	 * kept and stays at "/" when there is none, as the kernel does at a
	 * root.  The same text for every runtime (Docker would clean it too). */
	for (const char *p = dir; *p;) {
		size_t c = strcspn(p, "/");
		if (c == 2 && !strncmp(p, "..", 2)) {
			while (n > 0 && out[--n] != '/')
				;
		} else if (c > 0 && !(c == 1 && p[0] == '.')) {
			if (n + 1 + c >= len)
				return berth_fail(err, ENAMETOOLONG, "working directory '%s'", dir);
			out[n] = '/';
			memcpy(out + n + 1, p, c);
			n += 1 + c;
		}
		p += c + (p[c] == '/');
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

/* ---- what a task runs ---------------------------------------------------------- */

/* In the container, a task with a quiet ENTRYPOINT runs as
 *   /bin/sh -c HIDE sh ENTRYPOINT... /bin/sh -c SHOW sh CMD...
 * HIDE keeps the real stdout/stderr as fds 3/4 and sends the entry point's
 * own output to /dev/null; the entry point execs its arguments, so SHOW
 * runs next, puts 3/4 back for the command and closes them. */
static const char hide_output[] = "exec 3>&1 4>&2 >/dev/null 2>&1; exec \"$@\"";
static const char show_output[] = "exec 1>&3 2>&4 3>&- 4>&-; exec \"$@\"";

static int add_all(struct berth_strv *out, char *const *v, size_t n, struct berth_err *err)
{
	for (size_t i = 0; v && (n == SIZE_MAX ? v[i] != NULL : i < n); i++)
		if (berth_strv_add(out, v[i], err) < 0)
			return -1;
	return 0;
}

static int add_shell(struct berth_strv *out, const char *script, struct berth_err *err)
{
	if (berth_strv_add(out, "/bin/sh", err) < 0 || berth_strv_add(out, "-c", err) < 0 ||
	    berth_strv_add(out, script, err) < 0)
		return -1;
	return berth_strv_add(out, "sh", err); /* $0; the rest is "$@" */
}

/* The job's variables the entry point does not see (issue 26): names a
 * shell can unset, not the image's, not kept.  `names` gets them
 * space-separated, `restore` a printf format that prints one
 * "export NAME='VALUE'" line each: bytes other than [A-Za-z0-9_./:=,+ -]
 * as \ooo, so that neither `printf`, nor a runtime that shell-evaluates
 * the values it passes (SingularityCE 3.x), changes them. */
static bool env_shell_name(const char *pair)
{
	size_t len = env_name_len(pair);

	if (!len || !pair[len] || (pair[0] >= '0' && pair[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(pair[i] == '_' || (pair[i] >= 'a' && pair[i] <= 'z') ||
		      (pair[i] >= 'A' && pair[i] <= 'Z') || (pair[i] >= '0' && pair[i] <= '9')))
			return false;
	return true;
}

static bool env_hidden(const char *pair, const struct berth_image *img, char *const *keep)
{
	static char *const always[] = {"PATH", "HOME", "USER", "TERM", NULL};

	if (!env_shell_name(pair) || env_name_in(pair, keep) || env_name_in(pair, always))
		return false;
	for (size_t i = 0; img && i < img->n_env; i++)
		if (env_name_len(img->env[i]) == env_name_len(pair) &&
		    !strncmp(img->env[i], pair, env_name_len(pair)))
			return false;
	return true;
}

static void add_encoded(struct berth_sb *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("_./:=,+ -", *p))
			berth_sb_addc(b, (char)*p);
		else if (*p == '\'')
			berth_sb_add(b, "\\047\\134\\047\\047"); /* '\'' */
		else
			berth_sb_printf(b, "\\%03o", *p);
	}
}

#define TASK_ENV "BERTH_TASK_ENV"
/* A value of one variable beyond this (the kernel's limit on one string
 * is 128 KiB) keeps the job's variables in the entry point's view. */
#define TASK_ENV_MAX (96 * 1024)

static int hide_env(char ***env, const struct berth_image *img, char *const *keep,
		    char **names, struct berth_err *err)
{
	struct berth_sb n = {0}, r = {0};

	berth_sb_add(&r, TASK_ENV "=");
	for (size_t i = 0; *env && (*env)[i]; i++) {
		const char *pair = (*env)[i];
		if (!env_hidden(pair, img, keep))
			continue;
		size_t len = env_name_len(pair);
		berth_sb_addc(&n, ' ');
		berth_sb_addn(&n, pair, len);
		berth_sb_add(&r, "export ");
		berth_sb_addn(&r, pair, len);
		berth_sb_add(&r, "=\\047");
		add_encoded(&r, pair + len + 1);
		berth_sb_add(&r, "\\047\\n");
	}
	*names = berth_sb_take(&n);
	char *restore = berth_sb_take(&r);
	if (!restore || !*names) {
		free(restore);
		free(*names);
		*names = NULL;
		return berth_fail(err, ENOMEM, "environment");
	}
	if (!**names || strlen(restore) > TASK_ENV_MAX) { /* nothing to hide, or too much */
		free(restore);
		free(*names);
		*names = NULL;
		return 0;
	}
	struct berth_strv sv = {.v = *env, .n = 0};
	while (sv.v && sv.v[sv.n])
		sv.n++;
	sv.cap = sv.n + 1;
	int rc = berth_strv_add(&sv, restore, err);
	free(restore);
	*env = sv.v;
	return rc;
}

char **berth_task_argv(const struct berth_image *img, char *const *cmd,
		       enum berth_entrypoint mode, struct berth_err *err)
{
	return berth_task_argv_env(img, cmd, mode, NULL, NULL, err);
}

char **berth_task_argv_env(const struct berth_image *img, char *const *cmd,
			   enum berth_entrypoint mode, char ***env, char *const *keep,
			   struct berth_err *err)
{
	struct berth_strv out = {0};
	bool ep = mode != BERTH_EP_NONE && img && img->n_entrypoint > 0;
	bool quiet = ep && mode == BERTH_EP_QUIET;
	_cleanup_free_ char *names = NULL, *before = NULL, *after = NULL;

	if (!cmd || !cmd[0]) {
		berth_fail(err, 0, "no command to run in the container");
		return NULL;
	}
	if (ep && env && mode != BERTH_EP_BARE && hide_env(env, img, keep, &names, err) < 0)
		return NULL;
	if (names) {
		/* fd 9: the values, out of the entry point's environment */
		if (asprintf(&before, "exec 9<<BERTH_EOF\n$(printf \"$" TASK_ENV "\")\nBERTH_EOF\n"
			     "unset " TASK_ENV "%s; %s", names,
			     quiet ? hide_output : "exec \"$@\"") < 0 ||
		    asprintf(&after, "if [ -r /dev/fd/9 ]; then . /dev/fd/9; fi; exec 9<&-; %s",
			     quiet ? show_output : "exec \"$@\"") < 0) {
			berth_fail(err, ENOMEM, "environment");
			return NULL;
		}
	}
	const char *first = before ? before : quiet ? hide_output : NULL;
	const char *then = after ? after : quiet ? show_output : NULL;
	if ((first && add_shell(&out, first, err) < 0) ||
	    (ep && add_all(&out, img->entrypoint, img->n_entrypoint, err) < 0) ||
	    (then && add_shell(&out, then, err) < 0) ||
	    add_all(&out, cmd, SIZE_MAX, err) < 0) {
		berth_strv_free(out.v);
		return NULL;
	}
	return out.v;
}
