/* berth: what a task gets inside its container, by pyxis's rules: its
 * environment (the job's, under the image's), its working directory and
 * its argv (with or without the image's ENTRYPOINT).  Pure functions of
 * the job and the image's config; nothing here runs anything. */
#ifndef BERTH_TASK_H
#define BERTH_TASK_H

#include <stddef.h>

#include "conf/error.h"
#include "executor/base/strv.h"
#include "executor/source/image.h"

/* The image's Env over `base` (NULL-terminated "K=V"), except names in
 * `keep` (may be NULL) that base has: those keep base's value.  SLURM_*
 * never comes from the image.  Returns a malloc'd vector. */
char **berth_env_merge(char *const *base, const struct berth_image *img,
		       char *const *keep, struct berth_err *err);
/* A task's environment, by pyxis's rules: the job's environment `job`
 * without its locale (LANG, LANGUAGE, LC_*: the host's locale may not exist
 * in the image), with the image's Env over it.  The job's value wins for
 * SLURM_*, TERM and the names in `keep` (--container-env; may be NULL) where
 * the job has one: a kept name the job lacks keeps the image's value; a kept
 * locale name brings the job's locale in.  Returns a malloc'd vector. */
char **berth_task_env(char *const *job, const struct berth_image *img,
		      char *const *keep, struct berth_err *err);

/* --container-workdir as pyxis resolves it: relative to the container's
 * root ("data" is "/data"), "." and ".." resolved on the text, never above
 * "/" ("../" is "/").  `out` gets the absolute path; an empty or too long
 * one is an error. */
int berth_workdir_resolve(const char *dir, char *out, size_t len, struct berth_err *err);

/* What becomes of the image's ENTRYPOINT. */
enum berth_entrypoint {
	BERTH_EP_NONE,   /* not run (--no-container-entrypoint, the default) */
	BERTH_EP_QUIET,  /* run, its own output hidden (pyxis's default) */
	BERTH_EP_LOG,    /* run, its output shown (--container-entrypoint-log) */
	BERTH_EP_BARE,   /* run as is: the image has no /bin/sh to wrap it */
};

/* The argv of a task: `cmd`, after the image's ENTRYPOINT unless
 * BERTH_EP_NONE; BERTH_EP_QUIET wraps both in the image's /bin/sh so that
 * the entry point's output goes to /dev/null and the command's does not.
 * A malloc'd vector (berth_strv_free). */
char **berth_task_argv(const struct berth_image *img, char *const *cmd,
		       enum berth_entrypoint mode, struct berth_err *err);

/* The same, where the entry point sees only the image's environment, the
 * `keep` names (--container-env) and PATH, HOME, USER, TERM, as pyxis runs
 * it (issue 26): the image's /bin/sh unsets the job's other variables
 * before the entry point and sets them again for the command.  Their
 * values travel in one variable added to *env (BERTH_TASK_ENV, encoded so
 * that no runtime's shell evaluation changes them) and, once in the
 * container, in a here-document on fd 9, never in argv; the entry point
 * sees neither the names nor the values in its environment.
 * BERTH_EP_BARE and BERTH_EP_NONE: berth_task_argv's. */
char **berth_task_argv_env(const struct berth_image *img, char *const *cmd,
			   enum berth_entrypoint mode, char ***env, char *const *keep,
			   struct berth_err *err);

#endif
