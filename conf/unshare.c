#include "conf/unshare.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	unsigned bit;
} kinds[] = {
	{"net", BERTH_UNSHARE_NET},
	{"ipc", BERTH_UNSHARE_IPC},
	{"uts", BERTH_UNSHARE_UTS},
};

#define N_KINDS (sizeof(kinds) / sizeof(*kinds))

int berth_unshare_parse(const char *list, const char *option, unsigned *mask,
			struct berth_err *err)
{
	const char *p = list;

	*mask = 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		size_t k = 0;
		while (k < N_KINDS && !(strlen(kinds[k].name) == len &&
					!strncmp(p, kinds[k].name, len)))
			k++;
		if (k == N_KINDS)
			/* pid, mnt, user: the runtimes decide those (README,
			 * "What each runtime isolates") */
			return berth_fail(err, 0, "%s=%s: '%.*s' is not a namespace berth "
					  "unshares; give a comma-separated list of net, ipc "
					  "and uts", option, list, (int)len, p);
		*mask |= kinds[k].bit;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

void berth_unshare_format(unsigned mask, char *buf, size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (size_t k = 0; k < N_KINDS; k++)
		if ((mask & kinds[k].bit) && used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "",
						 kinds[k].name);
}
