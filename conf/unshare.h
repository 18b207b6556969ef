/* berth: --container-unshare=LIST (pyxis 0.24's option): the namespaces a
 * container gets of its own beyond the runtime's default, among net, ipc
 * and uts.  libc only (the plugin checks it at submission). */
#ifndef BERTH_UNSHARE_H
#define BERTH_UNSHARE_H

#include <stddef.h>

#include "conf/error.h"

enum {
	BERTH_UNSHARE_NET = 1u << 0, /* loopback only, up */
	BERTH_UNSHARE_IPC = 1u << 1, /* System V IPC and POSIX message queues */
	BERTH_UNSHARE_UTS = 1u << 2, /* hostname and domain name */
};

/* "net,ipc,uts" in any order and number, no empty item, no other word:
 * the BERTH_UNSHARE_* bits in *mask.  `option` names the option the
 * list came from in the message (e.g. "--container-unshare"). */
int berth_unshare_parse(const char *list, const char *option, unsigned *mask,
			struct berth_err *err);

/* The canonical list ("net,ipc"), "" for none. */
void berth_unshare_format(unsigned mask, char *buf, size_t len);

#endif
