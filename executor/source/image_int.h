/* berth: the JSON reading the image readers share (image.c: docker-save
 * archives, layout.c: layout folders), internal to executor/source; callers
 * use image.h. */
#ifndef BERTH_IMAGE_INT_H
#define BERTH_IMAGE_INT_H

#include <stddef.h>

#include <json-c/json.h>

#include "conf/error.h"

/* Parse `buf` (`len` bytes) as JSON, nesting limited; a failure says that
 * `what` is damaged.  NULL on failure. */
struct json_object *img_parse_json(const char *buf, size_t len,
				   const char *what, struct berth_err *err);

/* Member `key` of obj when it has that type, else NULL (obj may be NULL). */
struct json_object *img_json_get(struct json_object *obj, const char *key,
				 enum json_type type);

#endif
