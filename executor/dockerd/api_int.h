/* berth: what the pieces of the Docker Engine client share and no one else
 * uses: the connection, the request and error helpers of api.c, for
 * images.c, containers.c and attach.c.  The public interface is api.h. */
#ifndef BERTH_DOCKERD_API_INT_H
#define BERTH_DOCKERD_API_INT_H

#include <stdbool.h>

#include <json.h>

#include "conf/error.h"
#include "executor/dockerd/api.h"
#include "executor/dockerd/uhttp.h"

#define DK_BODY_MAX (8u << 20)   /* cap on any answer we keep in memory */

struct berth_docker {
	char *socket;
	char version[16]; /* "" until negotiated, then "1.41" */
	struct uhttp_conn conn; /* conn.fd: the kept-alive connection, or -1 */
};

static inline void dk_json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(dk_json_putp)))
#define _cleanup_buf_ __attribute__((cleanup(uhttp_body_free)))

/* A new connection to the daemon's socket: the fd, or -1 with err set. */
int dk_connect(const char *path, struct berth_err *err);

/* An image reference or container id fit for a URL path. */
int dk_check_ref(const char *what, const char *ref, struct berth_err *err);

/* One request on the kept-alive connection: the status and the body. */
int dk_request(struct berth_docker *d, const char *method, const char *path,
	       const char *json_body, int upload_fd, long *status,
	       struct uhttp_body *out, struct berth_err *err);

/* An error answer as err (always -1). */
int dk_http_fail(struct berth_err *err, const char *what, long status,
		 const struct uhttp_body *body, const char *fix);

/* An answer that must be a JSON object. */
int dk_parse_json(const struct uhttp_body *b, const char *what, json_object **o,
		  struct berth_err *err);

/* An image id ("sha256:" + 64 hex) or container id (64 hex) the daemon
 * answered, checked, into id. */
int dk_copy_id(char id[BERTH_DOCKER_ID_MAX], const char *s, bool image,
	       const char *what, struct berth_err *err);

#endif
