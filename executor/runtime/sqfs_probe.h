/* berth: can this node run a charliecloud image from one SquashFS file?
 * (ImageStorage=squashfs|auto).  Asked by trying it once, as the step
 * would: in a child, a user+mount namespace, a tiny SquashFS written by
 * berth's own writer, mounted with SquashfusePath (berth_ns_squashfs) and
 * read back.  The verdict is remembered in the user's cache folder, keyed by
 * what could change it (the program's path, device, inode, size and mtime,
 * and the kernel release; one file per node), so a warm start costs a stat,
 * not a spawn. */
#ifndef BERTH_SQFS_PROBE_H
#define BERTH_SQFS_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* The file in the cache folder that remembers the verdict: one per node
 * (BERTH_SQFS_PROBE_MEMO.<nodename>), as nodes sharing a CacheDir may
 * differ in what they allow. */
#define BERTH_SQFS_PROBE_MEMO "squashfuse.probe"
void berth_sqfs_probe_memo_name(char *name, size_t len);
/* A "no" is asked again after this long: a library or a kernel setting
 * fixed later changes no key. */
#define BERTH_SQFS_PROBE_NO_TTL 3600
/* How long squashfuse may take to answer the probe. */
#define BERTH_SQFS_PROBE_TIMEOUT_S 10

/* true when SquashfusePath `squashfuse` can serve an image here.  `dir` is
 * an existing folder the child may mount its private tmpfs on (the cache's
 * layer folder); memo_dir_fd the folder that remembers the verdict (-1:
 * ask every time).  When false, `why` names the problem (with what
 * squashfuse said, if anything). */
bool berth_ns_squashfs_probe(const char *squashfuse, const char *dir, int memo_dir_fd,
			     char *why, size_t len);

#endif
