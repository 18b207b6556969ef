/* berth: the Singularity/Apptainer metadata of an image, as `apptainer
 * build X.sif docker-archive:...` (Apptainer 1.4.5) makes it.
 *
 * In the flattened rootfs: /.singularity.d/ with actions/{exec,run,shell,
 * start,test}, env/{01-base.sh, 10-docker2singularity.sh (the config's Env),
 * 90-environment.sh, 94-appsbase.sh, 95-apps.sh, 99-base.sh,
 * 99-runtimevars.sh}, libs/, runscript (from ENTRYPOINT and CMD),
 * startscript, labels.json (the config's labels plus the build labels
 * Apptainer adds) and Singularity (the "definition"); the symlinks
 * /singularity, /.run, /.exec, /.shell, /.test, /environment; the folders
 * /dev /proc /root /var/tmp /tmp /etc /sys /home; empty /etc/hosts and
 * /etc/resolv.conf.  The shell scripts are Apptainer 1.4.5's own text
 * (3-clause BSD, Copyright Contributors to the Apptainer project, Sylabs
 * Inc. and others, as their headers say); the generated ones follow its
 * quoting byte for byte.
 *
 * For the SIF: the Def.FILE object and the two JSON.Generic objects
 * "inspect-metadata.json" (what `apptainer inspect` prints, read from the
 * SIF without mounting it) and "oci-config.json" (the image config).
 *
 * Where berth differs from `apptainer build`, on purpose:
 * - nothing is followed out of the rootfs: where the image has a symlink
 *   (or a non-folder) on a path Apptainer would create or write through
 *   (/var/tmp, /etc/hosts, /singularity, ...), berth leaves the image's
 *   entry alone; /.singularity.d itself being one is an error;
 * - existing files in /.singularity.d are replaced (new inode), not
 *   truncated in place;
 * - "org.label-schema.usage.apptainer.version" is written only when the
 *   caller names the Apptainer version that will run the image;
 * - strconv.Quote (used for Env values) is reproduced exactly for ASCII and
 *   valid UTF-8 except for unassigned code points, which Go escapes as
 *   \u.... and berth keeps (berth has no Unicode tables);
 * - other files under /.singularity.d/env that the image itself brings
 *   are not listed in inspect-metadata.json. */
#ifndef BERTH_SING_META_H
#define BERTH_SING_META_H

#include <stddef.h>
#include <time.h>

#include "conf/error.h"
#include "executor/source/image.h"
#include "executor/convert/sif.h"

struct berth_sing_build {
	const char *bootstrap;   /* definition "bootstrap:"; NULL = "docker-archive" */
	const char *from;        /* definition "from:"; NULL = the image's archive */
	const char *apptainer_version; /* e.g. "1.4.5"; NULL = no version label */
	const char *arch;        /* Go arch name; NULL = this machine's */
	time_t time;             /* build time (build-date label); 0 = now */
};

/* Everything generated, kept in memory for the rootfs and the SIF. */
struct berth_sing_meta {
	char *env_docker;        /* env/10-docker2singularity.sh */
	char *runscript;
	char *labels_json;       /* labels.json */
	char *deffile;           /* Singularity, and the Def.FILE object */
	char *inspect_json;      /* inspect-metadata.json */
	char *oci_config;        /* oci-config.json */
	struct berth_sif_object objects[3]; /* for berth_sif_opts.objects */
	size_t n_objects;
};

/* Generate all of it from the image config. */
int berth_singularity_meta_build(const struct berth_image *img,
				 const struct berth_sing_build *b,
				 struct berth_sing_meta *m, struct berth_err *err);

/* Write it into the rootfs below `root_dir_fd` (a folder fd). */
int berth_singularity_meta_write(int root_dir_fd, const struct berth_sing_meta *m,
				 struct berth_err *err);

/* The same into the index of a SquashFS image being written (squashfs.h). */
struct berth_sqfs_merge;
int berth_singularity_meta_write_squashfs(struct berth_sqfs_merge *merge,
					  const struct berth_sing_meta *m,
					  struct berth_err *err);

void berth_singularity_meta_free(struct berth_sing_meta *m);

/* The pieces, exposed for the tests: Apptainer's quoting of one Env entry
 * ("export ...\n"), Go's strconv.Quote and encoding/json's string encoding
 * (HTML-safe).  Each returns a malloc'd string, NULL when out of memory. */
char *berth_sing_env_line(const char *entry);
char *berth_sing_go_quote(const char *s);
char *berth_sing_json_string(const char *s);

#endif
