/* berth: which Singularity the binary at SingularityPath is, and what that
 * flavour and release can do.
 *
 * Two families answer to `singularity`: Apptainer (the Linux Foundation
 * fork, `apptainer version 1.4.5`) and Sylabs' SingularityCE and the
 * Singularity 3.x before it (`singularity version 3.4.2`,
 * `singularity-ce version 4.1.0`).  What berth relies on differs:
 *   - SquashFS compressions in a SIF: Apptainer reads zstd; SingularityCE
 *     (every release up to 4.5.1, pkg/image/squashfs.go) only gzip, lzma,
 *     lzo, xz and lz4 ("unknown compression algorithm value 6");
 *   - --fakeroot: Apptainer has --ignore-subuid and
 *     --ignore-fakeroot-command (a namespace mapping the user alone);
 *     SingularityCE has neither and maps a range of 65536 ids from the
 *     user's /etc/subuid and /etc/subgid entries, through its setuid
 *     starter (which a no_new_privs process cannot use).
 * An unknown first line is treated as Sylabs': what it reads Apptainer
 * reads too. */
#ifndef BERTH_SING_RUNTIME_H
#define BERTH_SING_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <sys/types.h>

#include "conf/config.h"
#include "conf/error.h"
#include "conf/mounts.h"

#define BERTH_SING_VERSION_MAX 256
/* SingularityCE's --fakeroot wants a range of exactly this many ids (3.4;
 * at least this many from 3.5 on). */
#define BERTH_SUBID_RANGE 65536u

/* What the release can do comes from its version (the flags and
 * behaviours below were read in each flavour's sources and seen with
 * SingularityCE 3.4.2 and Apptainer 1.4.5); how it is installed (setuid
 * or user namespaces, squashfuse) from the files beside it. */
struct berth_sing_runtime {
	bool apptainer;                      /* else Sylabs (SingularityCE) */
	char version[BERTH_SING_VERSION_MAX]; /* first line of --version */
	const char *number;                  /* points into version: "3.4.2" */
	unsigned major, minor;               /* 0.0 when the number is not one */
	bool reads_zstd;                     /* SquashFS zstd inside a SIF */
	bool fakeroot;                       /* --fakeroot: Singularity 3.3+, Apptainer */
	bool fakeroot_ignore_subuid;         /* --ignore-subuid & co.: Apptainer 1.1+ */
	bool writable_tmpfs;                 /* --writable-tmpfs: 3.0+, Apptainer */
	bool overlay_in_userns;              /* ...also under --fakeroot/--userns:
					      * Apptainer only (SingularityCE 3.4
					      * warns and leaves the root read-only) */
	bool no_pid;                         /* --no-pid: Apptainer (3.4.2 has none) */
	bool no_pid_with_containall;         /* honoured under --containall: no
					      * release seen (Apptainer 1.4.5
					      * ignores it there) */
	/* the installation, from berth_sing_runtime_install */
	bool setuid;                         /* a root-owned setuid starter-suid */
	char starter[PATH_MAX];              /* its path, when setuid */
	bool squashfuse;                     /* squashfuse(_ll) and a usable /dev/fuse */
	/* --net --network none, --ipc, --uts for an unprivileged user:
	 * Singularity 3.0 on and every Apptainer (2.x had no --net) */
	bool unshares;
};

/* Fill *rt from the first line of `singularity --version` (the
 * installation fields stay false). */
void berth_sing_runtime_parse(const char *line, struct berth_sing_runtime *rt);

/* Fill the installation fields of *rt for the binary at `bin`: a setuid
 * starter at <prefix>/libexec/{apptainer,singularity}/bin/starter-suid,
 * squashfuse on the host. */
void berth_sing_runtime_install(const char *bin, struct berth_sing_runtime *rt);

/* How a step's image is kept and handed to the runtime. */
struct berth_sing_choice {
	enum berth_sing_format format;  /* what is staged in the cache: sif or sandbox */
	/* berth mounts the SIF's SquashFS with squashfuse in its own user and
	 * mount namespace and hands the runtime that folder (unprivileged
	 * installations): measured 13-33 ms slower than a sandbox to start
	 * where the runtime's own squashfuse mount was 36-49 ms (README) */
	bool mount;
	enum berth_sing_format runs;    /* what the runtime is given: sandbox when mounted */
	char why[PATH_MAX + 512];
};

/* SingularityImageFormat and ImageStorage decided for this installation.
 * An explicit SingularityImageFormat is kept as it is.  auto: a SIF where
 * a setuid starter mounts it; else ImageStorage: tree, a sandbox;
 * squashfs or auto, a SIF that berth mounts where it can (`fuse_why` NULL:
 * SquashfusePath runs and /dev/fuse opens; else why not), else for auto a
 * sandbox and for squashfs -1 with the fix.  c->why says why. */
int berth_sing_choose_format(const struct berth_config *cfg, const struct berth_sing_runtime *rt,
			     const char *fuse_why, struct berth_sing_choice *c,
			     struct berth_err *err);

/* What a step asks of Singularity that not every flavour, release or
 * installation can do.  The plugin fills what it knows at submission; the
 * launcher all of it when the step starts. */
struct berth_sing_ask {
	uid_t uid;
	enum berth_sing_format format;   /* what the runtime is given (never auto) */
	bool raw_image;                  /* a .sif or SquashFS file the user gave */
	bool named;                      /* --container-name or --container-save */
	bool writable, remap_root;
	bool tmpfs;                      /* a tmpfs mount */
	const struct berth_mount *noexec; /* a noexec bind, or NULL */
	bool missing_workdir;            /* known when the image is staged */
	const char *subuid, *subgid;     /* /etc/subuid, /etc/subgid */
};

/* 0 when `rt` runs what `ask` asks; *userns then says whether it must run
 * in user-namespace mode (--userns: a setuid installation inside the
 * namespace berth makes for tmpfs mounts, a missing working folder or a
 * named container).  Else -1 with the runtime's name and version and
 * what would make it work. */
int berth_sing_check(const struct berth_sing_runtime *rt, const struct berth_sing_ask *ask,
		     bool *userns, struct berth_err *err);

/* "Apptainer" or "SingularityCE". */
const char *berth_sing_flavour(const struct berth_sing_runtime *rt);

/* Run `bin --version` (about 20 ms for SingularityCE 3.4) unless
 * `memo_dir_fd` (>= 0: the user's cache folder) holds its answer for this
 * very binary: path, device, inode, size and mtime must all match, so a
 * replaced or upgraded binary is asked again. */
int berth_sing_runtime_probe(const char *bin, int memo_dir_fd,
			     struct berth_sing_runtime *rt, struct berth_err *err);

/* The SquashFS compression for SIFs this runtime runs: the configured one
 * (refused, naming the runtime and the fix, when the runtime cannot read
 * it) or for auto the best one it reads.  `why` may be NULL. */
int berth_sing_compression(enum berth_sqfs_comp cfg, const struct berth_sing_runtime *rt,
			   enum berth_sqfs_comp *out, char *why, size_t why_len,
			   struct berth_err *err);

/* True when `path` (/etc/subuid, /etc/subgid) has an enabled entry for
 * `user` or `id` of at least BERTH_SUBID_RANGE ids. */
bool berth_subid_has_range(const char *path, const char *user, unsigned long id);

/* --container-remap-root on this runtime for user `uid`: fine on
 * Apptainer; on SingularityCE an error naming the runtime, its version and
 * the fix unless `subuid` and `subgid` both hold a range for the user. */
int berth_sing_can_fakeroot(const struct berth_sing_runtime *rt, uid_t uid,
			    const char *subuid, const char *subgid, struct berth_err *err);

/* --container-unshare (BERTH_UNSHARE_* bits `what`) on this runtime:
 * its own flags (--net --network none, --ipc, --uts) where it has them,
 * else an error naming the runtime, its version and the fix. */
int berth_sing_can_unshare(const struct berth_sing_runtime *rt, unsigned what,
			   struct berth_err *err);

#endif
