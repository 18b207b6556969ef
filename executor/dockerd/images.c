/* berth: the Docker Engine's image calls (see api.h): inspect, config,
 * load (a docker-save archive) and remove. */
#define _GNU_SOURCE
#include "executor/dockerd/api.h"
#include "executor/dockerd/api_int.h"
#include "executor/base/jsonval.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GET /images/{ref}/json: *o gets the parsed answer, or stays NULL when
 * the daemon has no such image (404).  `what` names the call in errors. */
static int dk_image_json(struct berth_docker *d, const char *ref, json_object **o,
			 char *what, size_t what_size, struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	char path[512];
	long status = 0;

	*o = NULL;
	if (dk_check_ref("image reference", ref, err) < 0)
		return -1;
	snprintf(what, what_size, "inspecting image %s", ref);
	snprintf(path, sizeof(path), "/images/%s/json", ref);
	if (dk_request(d, "GET", path, NULL, -1, &status, &body, err) < 0)
		return -1;
	if (status == 404)
		return 0;
	if (status != 200)
		return dk_http_fail(err, what, status, &body, NULL);
	return dk_parse_json(&body, what, o, err);
}

int berth_docker_image_inspect(struct berth_docker *d, const char *ref,
			       bool *present, char id[BERTH_DOCKER_ID_MAX],
			       struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	char what[320];

	*present = false;
	id[0] = '\0';
	if (dk_image_json(d, ref, &o, what, sizeof(what), err) < 0)
		return -1;
	if (!o)
		return 0;
	if (!json_object_object_get_ex(o, "Id", &v))
		return berth_fail(err, 0, "%s: Docker's answer has no Id", what);
	if (dk_copy_id(id, bj_string(v), true, what, err) < 0)
		return -1;
	*present = true;
	return 0;
}

int berth_docker_image_config(struct berth_docker *d, const char *ref, char **config,
			      struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	char what[320];

	*config = NULL;
	if (dk_image_json(d, ref, &o, what, sizeof(what), err) < 0)
		return -1;
	if (!o)
		return berth_fail(err, 0, "%s: Docker has no such image", what);
	if (!json_object_object_get_ex(o, "Config", &v))
		return berth_fail(err, 0, "%s: Docker's answer has no Config", what);
	/* In the image-config shape: {"config": {...}} */
	_cleanup_json_ json_object *wrap = json_object_new_object();
	if (!wrap || json_object_object_add(wrap, "config", json_object_get(v)) < 0)
		return berth_fail(err, ENOMEM, "%s", what);
	if (!(*config = strdup(json_object_to_json_string_ext(wrap, JSON_C_TO_STRING_PLAIN))))
		return berth_fail(err, ENOMEM, "%s", what);
	return 0;
}

/* Walk the concatenated JSON messages of a load answer. */
static int dk_load_messages(const struct uhttp_body *body, char *first_id,
			    char *first_name, size_t name_size, struct berth_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	const char *p = body->p ? body->p : "";
	size_t left = body->len;
	int ret = 0;

	if (!tok)
		return berth_fail(err, ENOMEM, "loading image: parsing Docker's answer");
	while (left > 0 && ret == 0) {
		json_object *o, *v, *dv;
		size_t used;

		while (left > 0 && isspace((unsigned char)*p)) {
			p++;
			left--;
		}
		if (left == 0)
			break;
		o = json_tokener_parse_ex(tok, p, (int)(left > INT32_MAX ? INT32_MAX : left));
		if (!o) {
			ret = berth_fail(err, 0, "loading image: Docker's answer is not a JSON message stream: %.200s",
					 p);
			break;
		}
		used = json_tokener_get_parse_end(tok);
		json_tokener_reset(tok);
		p += used;
		left -= used;

		if ((json_object_object_get_ex(o, "errorDetail", &dv) &&
		     json_object_object_get_ex(dv, "message", &v)) ||
		    json_object_object_get_ex(o, "error", &v)) {
			ret = berth_fail(err, 0, "loading image: Docker: %.400s; check that the file is a docker-save archive (docker save / skopeo copy docker-archive:)",
					 bj_text(v));
		} else if (json_object_object_get_ex(o, "stream", &v) && bj_string(v)) {
			const char *s = bj_string(v);
			size_t n;

			if (!first_id[0] && !first_name[0] &&
			    strncmp(s, "Loaded image ID: ", 17) == 0) {
				n = strcspn(s + 17, "\r\n");
				if (n < BERTH_DOCKER_ID_MAX)
					memcpy(first_id, s + 17, n), first_id[n] = '\0';
			} else if (!first_id[0] && !first_name[0] &&
				   strncmp(s, "Loaded image: ", 14) == 0) {
				n = strcspn(s + 14, "\r\n");
				if (n < name_size)
					memcpy(first_name, s + 14, n), first_name[n] = '\0';
			}
		}
		json_object_put(o);
	}
	json_tokener_free(tok);
	return ret;
}

int berth_docker_image_load(struct berth_docker *d, int archive_fd,
			    char id[BERTH_DOCKER_ID_MAX], struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	char first_id[BERTH_DOCKER_ID_MAX] = "", name[300] = "";
	long status = 0;
	bool present;

	id[0] = '\0';
	if (dk_request(d, "POST", "/images/load?quiet=1", NULL, archive_fd, &status, &body, err) < 0)
		return -1;
	if (status != 200)
		return dk_http_fail(err, "loading image", status, &body,
				    "check that the file is a docker-save archive");
	if (dk_load_messages(&body, first_id, name, sizeof(name), err) < 0)
		return -1;
	if (first_id[0])
		return dk_copy_id(id, first_id, true, "loading image", err);
	if (!name[0])
		return berth_fail(err, 0, "loading image: Docker loaded no image (answer: %.200s); check that the archive's manifest.json names one",
				  body.p ? body.p : "");
	if (berth_docker_image_inspect(d, name, &present, id, err) < 0)
		return berth_wrap(err, "loading image");
	if (!present)
		return berth_fail(err, 0, "loading image: Docker said it loaded %s but does not know it now (removed concurrently?); retry",
				  name);
	return 0;
}

int berth_docker_image_remove(struct berth_docker *d, const char *ref,
			      struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	char path[512], what[320];
	long status = 0;

	if (dk_check_ref("image reference", ref, err) < 0)
		return -1;
	snprintf(what, sizeof(what), "removing image %s", ref);
	snprintf(path, sizeof(path), "/images/%s", ref);
	if (dk_request(d, "DELETE", path, NULL, -1, &status, &body, err) < 0)
		return -1;
	if (status == 200 || status == 404)
		return 0;
	return dk_http_fail(err, what, status, &body,
			    status == 409 ? "a container still uses it: remove that first" : NULL);
}

int berth_docker_image_save(struct berth_docker *d, const char *ref, int out_fd,
			    uint64_t max_bytes, struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { .sink = true, .sink_fd = out_fd };
	char path[512], what[320];
	long status = 0;

	if (dk_check_ref("image reference", ref, err) < 0)
		return -1;
	body.max = max_bytes && max_bytes < SIZE_MAX ? (size_t)max_bytes : SIZE_MAX;
	snprintf(what, sizeof(what), "exporting image %s", ref);
	snprintf(path, sizeof(path), "/images/%s/get", ref);
	if (dk_request(d, "GET", path, NULL, -1, &status, &body, err) < 0)
		return berth_wrap(err, "%s", what);
	if (status != 200)
		return dk_http_fail(err, what, status, &body,
				    status == 404 ? "docker images lists what this node's Docker holds" : NULL);
	return 0;
}

/* ---- one call on its own connection (dockerd:// images, as the user) ---- */

int berth_docker_id_at(const char *socket_path, const char *name, bool *present,
		       char id[BERTH_DOCKER_ID_MAX], struct berth_err *err)
{
	struct berth_docker *d = NULL;

	*present = false;
	if (berth_docker_open(&d, socket_path, err) < 0)
		return -1;
	int rc = berth_docker_image_inspect(d, name, present, id, err);
	berth_docker_close(d);
	return rc;
}

int berth_docker_save_at(const char *socket_path, const char *ref, int out_fd,
			 uint64_t max_bytes, struct berth_err *err)
{
	struct berth_docker *d = NULL;

	if (berth_docker_open(&d, socket_path, err) < 0)
		return -1;
	int rc = berth_docker_image_save(d, ref, out_fd, max_bytes, err);
	berth_docker_close(d);
	return rc;
}
