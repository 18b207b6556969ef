/* berth: one way to read a JSON value that may be missing, null or of another
 * type.  json-c represents a JSON null as a NULL object, and
 * json_object_get_string(NULL) returns NULL: every string berth reads from
 * an answer it did not write goes through these. */
#ifndef BERTH_JSONVAL_H
#define BERTH_JSONVAL_H

#include <json-c/json.h>

/* The value of a JSON string, or NULL for anything else (null included). */
static inline const char *bj_string(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The string member `key` of object `o`, or NULL. */
static inline const char *bj_member_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? bj_string(v) : NULL;
}

/* Any value as text for a message: a string as it is, another value as
 * its JSON text, a null or missing value as "null".  Never NULL. */
static inline const char *bj_text(struct json_object *v)
{
	return v ? json_object_get_string(v) : "null";
}

#endif
