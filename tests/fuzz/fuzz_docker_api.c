/* libFuzzer target: what dockerd answers, read by executor/dockerd/.
 * The files are included so that their static answer parsers are
 * reachable without a daemon; the bytes are the answer's body as
 * executor/dockerd/uhttp.c hands it over (its framing has its own target,
 * fuzz_uhttp).  Byte 0 picks the answer:
 *   0  image load: a stream of JSON messages (first id or name kept)
 *   1  image inspect: {"Id": "sha256:..."}, and its Config re-wrapped
 *   2  container wait: {"StatusCode": N, "Error": {...}}
 *   3  container inspect: {"State": {...}}
 *   4  container list: [{"Id": ...}, ...]
 *   5  an error answer: {"message": ...} or raw text
 *   6  the attach answer's head, and the API version string
 *   7  the attach stream: 8-byte frame headers and payloads
 * Properties checked beyond "no crash": an accepted id is 64 hex digits,
 * an exit status is 0..255, a parse that fails says why. */
#include "executor/dockerd/api.c"
#include "executor/dockerd/images.c"
#include "executor/dockerd/containers.c"
#include "executor/dockerd/attach.c"

static int devnull = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	return devnull < 0 ? -1 : 0;
}

static void check_failed(int rc, const struct berth_err *err)
{
	if (rc < 0 && !err->msg[0])
		abort(); /* a refusal must say why */
}

static bool hex_id(const char *id, size_t prefix)
{
	return strlen(id) == prefix + 64 && strspn(id + prefix, "0123456789abcdef") == 64;
}

static void image_answer(const struct uhttp_body *body, struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	char id[BERTH_DOCKER_ID_MAX];

	if (dk_parse_json(body, "inspecting image", &o, err) < 0)
		return check_failed(-1, err);
	if (json_object_object_get_ex(o, "Id", &v) &&
	    dk_copy_id(id, json_object_get_string(v), true, "inspecting image", err) == 0 &&
	    (strncmp(id, "sha256:", 7) != 0 || !hex_id(id, 7)))
		abort();
	if (json_object_object_get_ex(o, "Config", &v)) {
		_cleanup_json_ json_object *wrap = json_object_new_object();
		if (wrap && json_object_object_add(wrap, "config", json_object_get(v)) == 0)
			(void)json_object_to_json_string_ext(wrap, JSON_C_TO_STRING_PLAIN);
	}
}

static void answer(unsigned what, const struct uhttp_body *body, const uint8_t *raw, size_t n)
{
	struct berth_err err = { 0 };
	char id[BERTH_DOCKER_ID_MAX] = "", name[300] = "";
	int rc = 0, code = -1, major, minor;
	struct berth_docker_state st = { 0 };
	struct dk_demux x = { .target = -1 };
	char **ids = NULL;
	size_t nids = 0;

	switch (what) {
	case 0:
		rc = dk_load_messages(body, id, name, sizeof(name), &err);
		if (strlen(id) >= sizeof(id) || strlen(name) >= sizeof(name))
			abort();
		break;
	case 1: image_answer(body, &err); break;
	case 2:
		rc = dk_wait_answer(body, "0123456789ab", &code, &err);
		if (rc == 0 && (code < 0 || code > 255))
			abort();
		break;
	case 3: rc = dk_inspect_answer(body, "0123456789ab", &st, &err); break;
	case 4:
		rc = dk_list_answer(body, &ids, &nids, &err);
		for (size_t i = 0; rc == 0 && i < nids; i++)
			if (!hex_id(ids[i], 0))
				abort();
		berth_docker_ids_free(ids);
		break;
	case 5:
		rc = dk_http_fail(&err, "fuzzing", 500, body, "a fix");
		if (rc != -1)
			abort();
		break;
	case 6:
		/* as berth_docker_attach reads it: the bytes up to the blank line */
		if (n <= DK_HEADER_MAX) {
			static struct uhttp_conn head;
			struct uhttp_answer ans;
			long body_len;

			memcpy(head.buf, raw, n);
			rc = dk_attach_head(&head, n, &ans, &body_len, &err);
			if (rc == 0 && (ans.status < 100 || ans.status > 999 || body_len < 0))
				abort();
			check_failed(rc, &err);
			rc = 0;
		}
		if (dk_parse_version(body->p ? body->p : "", &major, &minor) == 0 &&
		    (major < 0 || major > 1000 || minor < 0 || minor > 1000))
			abort();
		break;
	default:
		/* Frames split at every odd boundary the input suggests. */
		for (size_t at = 0; at < n && rc == 0;) {
			size_t take = 1 + raw[at] % 37;
			if (take > n - at)
				take = n - at;
			rc = dk_demux_feed(&x, (const char *)raw + at, take, devnull, devnull, &err);
			at += take;
		}
		break;
	}
	check_failed(rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uhttp_body body = { .max = DK_BODY_MAX };

	if (size < 1 || size > (1u << 20))
		return 0;
	/* NUL-terminated where it ends, as uhttp.c keeps every body */
	if (!(body.p = malloc(size)))
		return 0;
	memcpy(body.p, data + 1, size - 1);
	body.p[size - 1] = '\0';
	body.len = size - 1;
	answer(data[0] % 8, &body, data + 1, size - 1);
	uhttp_body_free(&body);
	return 0;
}
