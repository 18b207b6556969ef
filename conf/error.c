#define _GNU_SOURCE
#include "conf/error.h"

#include <errno.h>
#include <string.h>

int berth_fail(struct berth_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (!err)
		return -1;
	va_start(ap, fmt);
	len = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	if (errnum && (size_t)len < sizeof(err->msg))
		snprintf(err->msg + len, sizeof(err->msg) - (size_t)len, ": %s",
			 strerror(errnum));
	err->errnum = errnum;
	return -1;
}

int berth_wrap(struct berth_err *err, const char *fmt, ...)
{
	char prefix[BERTH_ERR_MSG_MAX];
	va_list ap;
	size_t plen, mlen;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* "prefix: message", the message's tail cut when it does not fit */
	plen = strnlen(prefix, sizeof(err->msg) - 3);
	mlen = strnlen(err->msg, sizeof(err->msg));
	if (plen + 2 + mlen >= sizeof(err->msg))
		mlen = sizeof(err->msg) - 1 - plen - 2;
	memmove(err->msg + plen + 2, err->msg, mlen);
	memcpy(err->msg, prefix, plen);
	memcpy(err->msg + plen, ": ", 2);
	err->msg[plen + 2 + mlen] = '\0';
	return -1;
}
