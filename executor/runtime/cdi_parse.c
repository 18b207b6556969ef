/* berth: CDI specs (cdi.h): reading and checking them.
 *
 * One reader for both formats: a YAML spec is turned into the same json-c
 * tree a JSON spec parses to (libyaml's document API; plain scalars that
 * look like numbers, booleans or null become those, as YAML 1.2's core
 * schema has it), and one validator walks that tree.  Every field of CDI
 * 0.5.0-0.8.0 is known; an unknown field is an error naming it, so a typo
 * or a newer spec is reported instead of half applied. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/dl/yaml_lazy.h"
#include "executor/base/jsonval.h"
#include "executor/runtime/cdi.h"
#include "executor/runtime/cdi_int.h"

#define SPEC_MAX_BYTES (4u << 20) /* nvidia.yaml for 8 GPUs is ~30 KiB */

/* ---- YAML into json-c ---------------------------------------------------- */

static struct json_object *yaml_scalar(const yaml_node_t *node)
{
	const char *s = (const char *)node->data.scalar.value;
	size_t len = node->data.scalar.length;

	if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		char *end;
		if (!len || !strcmp(s, "~") || !strcmp(s, "null"))
			return NULL;
		if (!strcmp(s, "true") || !strcmp(s, "false"))
			return json_object_new_boolean(s[0] == 't');
		errno = 0;
		long long v = strtoll(s, &end, 0);
		if (!*end && !errno && (isdigit((unsigned char)s[0]) || s[0] == '-'))
			return json_object_new_int64(v);
	}
	return json_object_new_string_len(s, (int)len);
}

static struct json_object *yaml_to_json(yaml_document_t *doc, const yaml_node_t *node,
					int depth)
{
	struct json_object *o;

	if (!node || depth > 32)
		return NULL;
	switch (node->type) {
	case YAML_SCALAR_NODE:
		return yaml_scalar(node);
	case YAML_SEQUENCE_NODE:
		o = json_object_new_array();
		for (yaml_node_item_t *it = node->data.sequence.items.start;
		     o && it < node->data.sequence.items.top; it++)
			json_object_array_add(o, yaml_to_json(doc, yaml_document_get_node(doc, *it),
							      depth + 1));
		return o;
	case YAML_MAPPING_NODE:
		o = json_object_new_object();
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
		     o && p < node->data.mapping.pairs.top; p++) {
			const yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE)
				continue;
			json_object_object_add(o, (const char *)k->data.scalar.value,
					       yaml_to_json(doc, yaml_document_get_node(doc, p->value),
							    depth + 1));
		}
		return o;
	default:
		return NULL;
	}
}

static struct json_object *parse_yaml(const char *text, size_t len, const char *file,
				      struct berth_err *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct json_object *root = NULL;

	if (berth_yaml_load(err) < 0) {
		berth_wrap(err, "CDI spec %s", file);
		return NULL;
	}
	if (!yaml_parser_initialize(&parser)) {
		berth_fail(err, ENOMEM, "CDI spec %s", file);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		berth_fail(err, 0, "CDI spec %s: not valid YAML at line %zu: %s; fix or remove "
			   "the file", file, parser.problem_mark.line + 1,
			   parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		return NULL;
	}
	yaml_node_t *top = yaml_document_get_root_node(&doc);
	if (top)
		root = yaml_to_json(&doc, top, 0);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		berth_fail(err, 0, "CDI spec %s: not a mapping at the top; fix or remove the file",
			   file);
		return NULL;
	}
	return root;
}

static struct json_object *parse_json(const char *text, const char *file, struct berth_err *err)
{
	enum json_tokener_error jerr;
	struct json_object *root = json_tokener_parse_verbose(text, &jerr);

	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		berth_fail(err, 0, "CDI spec %s: not a JSON object (%s); fix or remove the file",
			   file, root ? "another value" : json_tokener_error_desc(jerr));
		return NULL;
	}
	return root;
}

/* ---- the validator --------------------------------------------------------- */

/* Where in the file a value is: "devices[1].containerEdits.mounts[0]". */
struct where {
	const char *file;
	char field[256];
};

static bool one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static int bad(const struct where *w, const char *field, struct berth_err *err,
	       const char *what)
{
	return berth_fail(err, 0, "CDI spec %s: %s%s%s %s; fix the spec (or regenerate it: "
			  "nvidia-ctk cdi generate)", w->file, w->field, *w->field ? "." : "",
			  field, what);
}

static int only_fields(const struct where *w, struct json_object *o, const char *const *known,
		       struct berth_err *err)
{
	json_object_object_foreach(o, key, val) {
		(void)val;
		bool ok = false;
		for (const char *const *k = known; *k && !ok; k++)
			ok = !strcmp(*k, key);
		if (!ok)
			return bad(w, key, err, "is not a CDI 0.5-0.8 field");
	}
	return 0;
}

static struct json_object *member(struct json_object *o, const char *key, enum json_type type,
				  bool required, const struct where *w, struct berth_err *err,
				  int *rc)
{
	struct json_object *v = NULL;
	static const char *const names[] = {
		[json_type_null] = "null", [json_type_boolean] = "a boolean",
		[json_type_double] = "a number", [json_type_int] = "a whole number",
		[json_type_object] = "a mapping", [json_type_array] = "a list",
		[json_type_string] = "a string",
	};
	char msg[64];

	*rc = 0;
	if (!json_object_object_get_ex(o, key, &v) || !v) {
		if (required)
			*rc = bad(w, key, err, "is missing");
		return NULL;
	}
	if (!json_object_is_type(v, type)) {
		snprintf(msg, sizeof(msg), "must be %s", names[type]);
		*rc = bad(w, key, err, msg);
		return NULL;
	}
	return v;
}

static int abs_path(const struct where *w, struct json_object *o, const char *key,
		    bool required, char **out, struct berth_err *err)
{
	int rc;
	struct json_object *v = member(o, key, json_type_string, required, w, err, &rc);

	if (rc < 0 || !v)
		return rc;
	const char *s = json_object_get_string(v);
	if (s[0] != '/' || strstr(s, "/../") || strchr(s, ':') || strchr(s, ',') ||
	    (strlen(s) >= 3 && !strcmp(s + strlen(s) - 3, "/..")))
		return bad(w, key, err, "must be an absolute path without '..', ':' or ','");
	return (*out = strdup(s)) ? 0 : berth_fail(err, ENOMEM, "CDI spec %s", w->file);
}

int berth_cdi_grow(void **arr, size_t n, size_t size, struct berth_err *err)
{
	void *more = realloc(*arr, (n + 1) * size);

	if (!more)
		return berth_fail(err, ENOMEM, "CDI edits");
	memset((char *)more + n * size, 0, size);
	*arr = more;
	return 0;
}

int berth_cdi_add_env(struct berth_cdi_edits *e, const char *kv, struct berth_err *err)
{
	if (berth_cdi_grow((void **)&e->env, e->n_env + 1, sizeof(char *), err) < 0 ||
	    !(e->env[e->n_env] = strdup(kv)))
		return berth_fail(err, ENOMEM, "CDI edits");
	e->env[++e->n_env] = NULL;
	return 0;
}

static int parse_env(const struct where *w, struct json_object *list, struct berth_cdi_edits *e,
		     struct berth_err *err)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		const char *kv = bj_string(json_object_array_get_idx(list, i));
		char field[32];
		snprintf(field, sizeof(field), "env[%zu]", i);
		if (!kv || !strchr(kv, '=') || kv[0] == '=')
			return bad(w, field, err, "must be a string NAME=VALUE");
		if (berth_cdi_add_env(e, kv, err) < 0)
			return -1;
	}
	return 0;
}

static int parse_node(struct where *w, struct json_object *o, struct berth_cdi_edits *e,
		      struct berth_err *err)
{
	static const char *const known[] = {"path", "hostPath", "type", "major", "minor",
					    "fileMode", "permissions", "uid", "gid", NULL};
	int rc;
	char *path = NULL, *host = NULL;

	if (only_fields(w, o, known, err) < 0 || abs_path(w, o, "path", true, &path, err) < 0 ||
	    abs_path(w, o, "hostPath", false, &host, err) < 0)
		goto fail;
	struct json_object *type = member(o, "type", json_type_string, false, w, err, &rc);
	if (rc < 0)
		goto fail;
	if (type && !one_of(json_object_get_string(type), (const char *const[]){"c", "b", "u", NULL})) {
		bad(w, "type", err, "must be \"c\", \"u\" or \"b\" (berth passes device nodes "
		    "only, not pipes)");
		goto fail;
	}
	static const char *const ints[] = {"major", "minor", "fileMode", "uid", "gid"};
	for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++)
		if (member(o, ints[i], json_type_int, false, w, err, &rc), rc < 0)
			goto fail;
	struct json_object *perms = member(o, "permissions", json_type_string, false, w, err, &rc);
	if (rc < 0 || (perms && strspn(json_object_get_string(perms), "rwm") !=
				strlen(json_object_get_string(perms)))) {
		if (rc == 0)
			bad(w, "permissions", err, "may hold only r, w and m");
		goto fail;
	}
	/* Every runtime berth drives is unprivileged (or, for Docker, takes
	 * the host's node): the node is bound from the host, never made. */
	struct stat st;
	const char *src = host ? host : path;
	if (stat(src, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
		berth_fail(err, errno, "CDI spec %s: %s%sdevice node %s is not a device on this "
			   "host", w->file, w->field, *w->field ? ": " : "", src);
		goto fail;
	}
	if (berth_cdi_grow((void **)&e->mounts, e->n_mounts, sizeof(*e->mounts), err) < 0 ||
	    berth_cdi_grow((void **)&e->nodes, e->n_nodes, sizeof(char *), err) < 0 ||
	    !(e->nodes[e->n_nodes] = strdup(path)))
		goto fail;
	e->n_nodes++;
	e->mounts[e->n_mounts++] = (struct berth_mount){
		.src = host ? host : strdup(path), .dst = path, .berth_own = true};
	return 0;
fail:
	free(path);
	free(host);
	return -1;
}

static int parse_mount(struct where *w, struct json_object *o, struct berth_cdi_edits *e,
		       struct berth_err *err)
{
	static const char *const known[] = {"hostPath", "containerPath", "options", "type", NULL};
	struct berth_mount m = {.berth_own = true};
	int rc;

	if (only_fields(w, o, known, err) < 0 ||
	    abs_path(w, o, "hostPath", true, &m.src, err) < 0 ||
	    abs_path(w, o, "containerPath", true, &m.dst, err) < 0)
		goto fail;
	struct json_object *type = member(o, "type", json_type_string, false, w, err, &rc);
	if (rc < 0)
		goto fail;
	if (type && strcmp(json_object_get_string(type), "bind") != 0) {
		bad(w, "type", err, "must be \"bind\" (berth makes bind mounts only)");
		goto fail;
	}
	struct json_object *opts = member(o, "options", json_type_array, false, w, err, &rc);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
		const char *opt = bj_string(json_object_array_get_idx(opts, i));
		if (!opt) {
			bad(w, "options", err, "must be a list of strings");
			goto fail;
		}
		if (!strcmp(opt, "ro"))
			m.read_only = true;
		else if (!strcmp(opt, "nosuid"))
			m.flags |= BERTH_MNT_NOSUID;
		else if (!strcmp(opt, "nodev"))
			m.flags |= BERTH_MNT_NODEV;
		else if (!strcmp(opt, "noexec"))
			m.flags |= BERTH_MNT_NOEXEC;
		/* bind/rbind, rw, private propagation: what every bind here is */
		else if (!one_of(opt, (const char *const[]){"bind", "rbind", "rw", "rprivate",
							     "private", NULL})) {
			char msg[160];
			snprintf(msg, sizeof(msg), "has '%.60s', which berth does not apply "
				 "(known: ro, rw, bind, rbind, nosuid, nodev, noexec, rprivate)", opt);
			bad(w, "options", err, msg);
			goto fail;
		}
	}
	if (berth_cdi_grow((void **)&e->mounts, e->n_mounts, sizeof(*e->mounts), err) < 0)
		goto fail;
	e->mounts[e->n_mounts++] = m;
	return 0;
fail:
	free(m.src);
	free(m.dst);
	return -1;
}

static int parse_hook(struct where *w, struct json_object *o, struct berth_cdi_edits *e,
		      struct berth_err *err)
{
	static const char *const known[] = {"hookName", "path", "args", "env", "timeout", NULL};
	static const char *const names[] = {"prestart", "createRuntime", "createContainer",
					    "startContainer", "poststart", "poststop", NULL};
	int rc;
	char *path = NULL;

	if (only_fields(w, o, known, err) < 0 || abs_path(w, o, "path", true, &path, err) < 0)
		goto fail;
	struct json_object *name = member(o, "hookName", json_type_string, true, w, err, &rc);
	if (rc < 0)
		goto fail;
	bool ok = false;
	for (const char *const *n = names; *n && !ok; n++)
		ok = !strcmp(*n, json_object_get_string(name));
	if (!ok) {
		bad(w, "hookName", err, "must be one of prestart, createRuntime, createContainer, "
		    "startContainer, poststart, poststop");
		goto fail;
	}
	struct json_object *args = member(o, "args", json_type_array, false, w, err, &rc);
	if (rc < 0 || (member(o, "env", json_type_array, false, w, err, &rc), rc < 0) ||
	    (member(o, "timeout", json_type_int, false, w, err, &rc), rc < 0) ||
	    berth_cdi_grow((void **)&e->hooks, e->n_hooks, sizeof(*e->hooks), err) < 0)
		goto fail;
	struct berth_cdi_hook *h = &e->hooks[e->n_hooks++];
	h->path = path;
	h->hook_name = strdup(json_object_get_string(name));
	h->file = strdup(w->file);
	size_t n_args = args ? json_object_array_length(args) : 0;
	if (!(h->args = calloc(n_args + 1, sizeof(char *))))
		return berth_fail(err, ENOMEM, "CDI hooks");
	for (size_t i = 0; i < n_args; i++) {
		const char *a = bj_string(json_object_array_get_idx(args, i));
		if (!a)
			return bad(w, "args", err, "must be a list of strings");
		if (!(h->args[i] = strdup(a)))
			return berth_fail(err, ENOMEM, "CDI hooks");
	}
	return h->hook_name && h->file ? 0 : berth_fail(err, ENOMEM, "CDI hooks");
fail:
	free(path);
	return -1;
}

typedef int parse_item_fn(struct where *w, struct json_object *o, struct berth_cdi_edits *e,
			  struct berth_err *err);

static int parse_list(struct where *w, struct json_object *edits, const char *key,
		      parse_item_fn *fn, struct berth_cdi_edits *e, struct berth_err *err)
{
	int rc;
	struct json_object *list = member(edits, key, json_type_array, false, w, err, &rc);
	size_t base = strlen(w->field);

	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		struct json_object *item = json_object_array_get_idx(list, i);
		snprintf(w->field + base, sizeof(w->field) - base, "%s%s[%zu]", base ? "." : "",
			 key, i);
		if (!json_object_is_type(item, json_type_object))
			rc = berth_fail(err, 0, "CDI spec %s: %s must be a mapping; fix the spec",
					w->file, w->field);
		else
			rc = fn(w, item, e, err);
		w->field[base] = '\0';
		if (rc < 0)
			return -1;
	}
	return rc;
}

static int parse_edits(struct where *w, struct json_object *edits, int minor,
		       struct berth_cdi_edits *e, struct berth_err *err)
{
	static const char *const known[] = {"env", "deviceNodes", "mounts", "hooks",
					    "additionalGids", "intelRdt", NULL};
	int rc;

	if (only_fields(w, edits, known, err) < 0)
		return -1;
	if (json_object_object_get_ex(edits, "intelRdt", NULL))
		return bad(w, "intelRdt", err, "is not supported by berth; remove it");
	struct json_object *env = member(edits, "env", json_type_array, false, w, err, &rc);
	if (rc < 0 || (env && parse_env(w, env, e, err) < 0) ||
	    parse_list(w, edits, "deviceNodes", parse_node, e, err) < 0 ||
	    parse_list(w, edits, "mounts", parse_mount, e, err) < 0 ||
	    parse_list(w, edits, "hooks", parse_hook, e, err) < 0)
		return -1;
	struct json_object *gids = member(edits, "additionalGids", json_type_array, false, w, err,
					  &rc);
	if (rc < 0)
		return -1;
	if (gids && minor < 7)
		return bad(w, "additionalGids", err, "needs cdiVersion 0.7.0 or later");
	for (size_t i = 0; gids && i < json_object_array_length(gids); i++) {
		struct json_object *g = json_object_array_get_idx(gids, i);
		if (!json_object_is_type(g, json_type_int) || json_object_get_int64(g) < 0 ||
		    json_object_get_int64(g) > UINT32_MAX - 1)
			return bad(w, "additionalGids", err, "must be a list of group ids");
		if (berth_cdi_grow((void **)&e->gids, e->n_gids, sizeof(gid_t), err) < 0)
			return -1;
		e->gids[e->n_gids++] = (gid_t)json_object_get_int64(g);
	}
	return 0;
}

bool berth_cdi_name_valid(const char *name)
{
	const char *eq = strchr(name, '='), *slash = strchr(name, '/');

	if (!eq || !slash || slash > eq || slash == name || slash + 1 == eq || !eq[1])
		return false;
	for (const char *p = name; *p; p++) {
		if (p == slash || p == eq)
			continue;
		if (!isalnum((unsigned char)*p) && !strchr(p < slash ? ".-" : p < eq ? "_-." : "_-.:", *p))
			return false;
	}
	return strchr(slash + 1, '/') == NULL && strchr(eq + 1, '=') == NULL;
}

static int parse_version(struct where *w, struct json_object *root, int *minor,
			 struct berth_err *err)
{
	int rc;
	struct json_object *v = member(root, "cdiVersion", json_type_string, true, w, err, &rc);

	if (rc < 0)
		return -1;
	const char *s = json_object_get_string(v);
	char *end = NULL;
	*minor = -1;
	if (!strncmp(s, "0.", 2) && isdigit((unsigned char)s[2])) {
		*minor = (int)strtol(s + 2, &end, 10);
		if (*end == '.' && isdigit((unsigned char)end[1]))
			strtol(end + 1, &end, 10);
		else
			*minor = -1;
	}
	if (*minor < 5 || *minor > 8 || *end)
		return bad(w, "cdiVersion", err, "is not a version berth reads (0.5.0 to 0.8.0)");
	return 0;
}

static int add_device(struct berth_cdi_registry *reg, const char *kind, const char *name,
		      struct where *w, struct berth_err *err)
{
	char *full;

	if (asprintf(&full, "%s=%s", kind, name) < 0)
		return berth_fail(err, ENOMEM, "CDI devices");
	if (!berth_cdi_name_valid(full)) {
		free(full);
		return bad(w, "name", err, "must be letters, digits, '_', '-', '.' and ':'");
	}
	for (size_t i = 0; i < reg->n_devices; i++) {
		if (strcmp(reg->devices[i].name, full) != 0)
			continue;
		if (i >= reg->dir_start) { /* two files of one folder: ambiguous */
			berth_fail(err, 0, "CDI device %s is defined by both %s and %s; remove one",
				   full, reg->specs[reg->devices[i].spec].file, w->file);
			free(full);
			return -1;
		}
		/* a later folder wins: the earlier device is dropped */
		free(reg->devices[i].name);
		berth_cdi_edits_free(&reg->devices[i].edits);
		memmove(&reg->devices[i], &reg->devices[i + 1],
			(reg->n_devices - i - 1) * sizeof(*reg->devices));
		reg->n_devices--;
		reg->dir_start--;
		break;
	}
	if (berth_cdi_grow((void **)&reg->devices, reg->n_devices, sizeof(*reg->devices), err) < 0) {
		free(full);
		return -1;
	}
	reg->devices[reg->n_devices] = (struct berth_cdi_device){.name = full,
								  .spec = reg->n_specs - 1};
	reg->n_devices++;
	return 0;
}

static int parse_spec(struct berth_cdi_registry *reg, struct json_object *root, const char *file,
		      struct berth_err *err)
{
	static const char *const known[] = {"cdiVersion", "kind", "devices", "containerEdits",
					    "annotations", NULL};
	struct where w = {.file = file};
	int rc, minor;

	if (only_fields(&w, root, known, err) < 0 || parse_version(&w, root, &minor, err) < 0)
		return -1;
	struct json_object *kind = member(root, "kind", json_type_string, true, &w, err, &rc);
	struct json_object *devs = rc < 0 ? NULL
		: member(root, "devices", json_type_array, true, &w, err, &rc);
	if (rc < 0)
		return -1;
	const char *k = json_object_get_string(kind);
	const char *slash = strchr(k, '/');
	if (!slash || slash == k || !slash[1] || strchr(k, '='))
		return bad(&w, "kind", err, "must be VENDOR/CLASS, as nvidia.com/gpu");
	if (!json_object_array_length(devs))
		return bad(&w, "devices", err, "is empty");
	if (berth_cdi_grow((void **)&reg->specs, reg->n_specs, sizeof(*reg->specs), err) < 0)
		return -1;
	struct berth_cdi_spec *spec = &reg->specs[reg->n_specs++];
	if (!(spec->file = strdup(file)) || !(spec->kind = strdup(k)))
		return berth_fail(err, ENOMEM, "CDI specs");
	struct json_object *edits = member(root, "containerEdits", json_type_object, false, &w,
					   err, &rc);
	snprintf(w.field, sizeof(w.field), "containerEdits");
	if (rc < 0 || (edits && parse_edits(&w, edits, minor, &spec->edits, err) < 0))
		return -1;
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		static const char *const dev_known[] = {"name", "containerEdits", "annotations",
							NULL};
		snprintf(w.field, sizeof(w.field), "devices[%zu]", i);
		if (!json_object_is_type(d, json_type_object))
			return bad(&w, "", err, "must be a mapping");
		struct json_object *name = member(d, "name", json_type_string, true, &w, err, &rc);
		if (rc < 0 || only_fields(&w, d, dev_known, err) < 0)
			return -1;
		edits = member(d, "containerEdits", json_type_object, true, &w, err, &rc);
		if (rc < 0 || add_device(reg, k, json_object_get_string(name), &w, err) < 0)
			return -1;
		snprintf(w.field, sizeof(w.field), "devices[%zu].containerEdits", i);
		if (parse_edits(&w, edits, minor, &reg->devices[reg->n_devices - 1].edits, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- files and folders -------------------------------------------------- */

/* Site configuration only: root's (or the test's owner), and nobody else
 * may write it. */
static int check_owner(const struct berth_cdi_registry *reg, const char *path,
		       const struct stat *st, struct berth_err *err)
{
	if (st->st_uid != reg->owner)
		return berth_fail(err, 0, "CDI spec %s is owned by uid %u, not root: specs are "
				  "site configuration; chown root it (or remove it)", path,
				  (unsigned)st->st_uid);
	if (st->st_mode & S_IWOTH || (st->st_mode & S_IWGRP && st->st_gid != 0))
		return berth_fail(err, 0, "CDI spec %s may be written by others (mode %04o); "
				  "chmod go-w it", path, (unsigned)(st->st_mode & 07777));
	return 0;
}

static char *read_spec(const struct berth_cdi_registry *reg, const char *path, size_t *len,
		       struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		berth_fail(err, errno, "cannot read CDI spec %s", path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SPEC_MAX_BYTES) {
		berth_fail(err, 0, "CDI spec %s is not a regular file under 4 MiB; remove it", path);
		return NULL;
	}
	if (check_owner(reg, path, &st, err) < 0)
		return NULL;
	char *text = malloc((size_t)st.st_size + 1);
	ssize_t n = text ? read(fd, text, (size_t)st.st_size) : -1;
	if (n < 0) {
		berth_fail(err, errno, "cannot read CDI spec %s", path);
		free(text);
		return NULL;
	}
	text[n] = '\0';
	*len = (size_t)n;
	return text;
}

int berth_cdi_load_file(struct berth_cdi_registry *reg, const char *path, struct berth_err *err)
{
	size_t len;
	_cleanup_free_ char *text = read_spec(reg, path, &len, err);

	if (!text)
		return -1;
	size_t plen = strlen(path);
	struct json_object *root = plen > 5 && !strcmp(path + plen - 5, ".json")
		? parse_json(text, path, err) : parse_yaml(text, len, path, err);
	if (!root)
		return -1;
	int rc = parse_spec(reg, root, path, err);
	json_object_put(root);
	return rc;
}

static bool spec_name(const char *name)
{
	size_t len = strlen(name);

	if (name[0] == '.')
		return false;
	return (len > 5 && !strcmp(name + len - 5, ".json")) ||
	       (len > 5 && !strcmp(name + len - 5, ".yaml")) ||
	       (len > 4 && !strcmp(name + len - 4, ".yml"));
}

static int load_dir(struct berth_cdi_registry *reg, const char *dir, struct berth_err *err)
{
	struct dirent **names = NULL;
	struct stat st;
	int n, rc = 0;

	if (stat(dir, &st) < 0)
		return errno == ENOENT ? 0 : berth_fail(err, errno, "CDI spec folder %s", dir);
	if (check_owner(reg, dir, &st, err) < 0)
		return berth_wrap(err, "folder");
	if ((n = scandir(dir, &names, NULL, alphasort)) < 0)
		return berth_fail(err, errno, "cannot list CDI spec folder %s", dir);
	reg->dir_start = reg->n_devices;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (rc == 0 && spec_name(names[i]->d_name)) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			rc = berth_cdi_load_file(reg, path, err);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int berth_cdi_load_dirs(struct berth_cdi_registry *reg, const char *dirs, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(dirs ? dirs : BERTH_CDI_DEFAULT_DIRS);
	char *save = NULL;

	if (!copy)
		return berth_fail(err, ENOMEM, "CDI folders");
	for (char *d = strtok_r(copy, ",", &save); d; d = strtok_r(NULL, ",", &save))
		if (load_dir(reg, d, err) < 0)
			return -1;
	return 0;
}

void berth_cdi_edits_free(struct berth_cdi_edits *e)
{
	berth_mounts_free(e->mounts, e->n_mounts);
	for (size_t i = 0; i < e->n_env; i++)
		free(e->env[i]);
	free(e->env);
	for (size_t i = 0; i < e->n_hooks; i++) {
		free(e->hooks[i].hook_name);
		free(e->hooks[i].path);
		free(e->hooks[i].file);
		for (size_t j = 0; e->hooks[i].args && e->hooks[i].args[j]; j++)
			free(e->hooks[i].args[j]);
		free(e->hooks[i].args);
	}
	free(e->hooks);
	free(e->gids);
	for (size_t i = 0; i < e->n_nodes; i++)
		free(e->nodes[i]);
	free(e->nodes);
	memset(e, 0, sizeof(*e));
}

void berth_cdi_free(struct berth_cdi_registry *reg)
{
	for (size_t i = 0; i < reg->n_specs; i++) {
		free(reg->specs[i].file);
		free(reg->specs[i].kind);
		berth_cdi_edits_free(&reg->specs[i].edits);
	}
	for (size_t i = 0; i < reg->n_devices; i++) {
		free(reg->devices[i].name);
		berth_cdi_edits_free(&reg->devices[i].edits);
	}
	free(reg->specs);
	free(reg->devices);
	reg->specs = NULL;
	reg->devices = NULL;
	reg->n_specs = reg->n_devices = 0;
}
