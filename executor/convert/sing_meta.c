/* berth: /.singularity.d and the SIF metadata objects, as Apptainer 1.4.5's
 * `apptainer build X.sif docker-archive:...` writes them (see sing_meta.h).
 *
 * The sources followed: internal/pkg/build/sources/conveyorPacker_oci.go
 * (runscript template, Env quoting, labels.json), base_environment.go
 * (folders, symlinks, files), internal/pkg/build/metadata.go (build labels,
 * definition, inspect metadata), internal/pkg/util/shell/escape.go, and the
 * files of a real 1.4.5 build, compared byte for byte.  Apptainer's fixed
 * files are in sing_fixed.c, Go's quoting in goquote.c. */
#define _GNU_SOURCE
#include "executor/convert/sing_meta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"
#include "executor/base/strbuf.h"
#include "executor/convert/goquote.h"
#include "executor/convert/sing_fixed.h"
#include "executor/convert/squashfs.h"

#define JSON_DEPTH 64
#define ENV_DIR ".singularity.d/env"

/* ---- the pieces, for the tests ------------------------------------------------ */

char *berth_sing_go_quote(const char *s)
{
	struct berth_sb b = {0};

	berth_go_quote(&b, s);
	return berth_sb_take(&b);
}

char *berth_sing_json_string(const char *s)
{
	struct berth_sb b = {0};

	berth_go_json_string(&b, s);
	return berth_sb_take(&b);
}

/* ---- env/10-docker2singularity.sh ----------------------------------------- */

static void env_line(struct berth_sb *b, const char *entry)
{
	const char *eq = strchr(entry, '=');
	struct berth_sb esc = {0};

	if (!eq) {
		berth_sb_add(b, "export ");
		berth_sb_add(b, entry);
		berth_sb_add(b, "=\"${");
		berth_sb_add(b, entry);
		berth_sb_add(b, ":-}\"\n");
		return;
	}
	berth_go_shell_escape(&esc, eq + 1);
	if (esc.oom) {
		b->oom = true;
		berth_sb_free(&esc);
		return;
	}
	berth_sb_add(b, "export ");
	berth_sb_addn(b, entry, (size_t)(eq - entry));
	if (eq - entry == 4 && !strncmp(entry, "PATH", 4)) {
		berth_sb_addc(b, '=');
		berth_go_quote(b, esc.p ? esc.p : "");
	} else {
		berth_sb_add(b, "=\"${");
		berth_sb_addn(b, entry, (size_t)(eq - entry));
		berth_sb_add(b, ":-");
		berth_go_quote(b, esc.p ? esc.p : "");
		berth_sb_add(b, "}\"");
	}
	berth_sb_addc(b, '\n');
	berth_sb_free(&esc);
}

char *berth_sing_env_line(const char *entry)
{
	struct berth_sb b = {0};

	env_line(&b, entry);
	return berth_sb_take(&b);
}

static char *make_env_script(const struct berth_image *img)
{
	struct berth_sb b = {0};

	berth_sb_add(&b, "#!/bin/sh\n");
	for (size_t i = 0; i < img->n_env; i++)
		env_line(&b, img->env[i]);
	return berth_sb_take(&b);
}

/* ---- runscript --------------------------------------------------------------- */

/* shell.ArgsQuoted: "a" "b" (each shell.Escape'd), single-quote escaped. */
static void oci_var(struct berth_sb *b, const char *name, char *const *v, size_t n)
{
	struct berth_sb q = {0};

	for (size_t i = 0; i < n; i++) {
		berth_sb_addc(&q, '"');
		berth_go_shell_escape(&q, v[i]);
		berth_sb_add(&q, i + 1 < n ? "\" " : "\"");
	}
	berth_sb_add(b, name);
	berth_sb_add(b, "='");
	if (q.oom)
		b->oom = true;
	else if (q.p)
		berth_go_shell_escape_sq(b, q.p);
	berth_sb_add(b, "'\n");
	berth_sb_free(&q);
}

/* set -- 'vN' "$@" ... set -- 'v1' "$@", one per line. */
static void prepend(struct berth_sb *b, char *const *v, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		berth_sb_add(b, "set -- '");
		berth_go_shell_escape_sq(b, v[i]);
		berth_sb_add(b, "' \"$@\"\n");
	}
}

static char *make_runscript(const struct berth_image *img)
{
	struct berth_sb b = {0}, pc = {0}, pe = {0};

	prepend(&pc, img->cmd, img->n_cmd);
	prepend(&pe, img->entrypoint, img->n_entrypoint);
	if (pc.oom || pe.oom)
		b.oom = true;
	const char *cmd = pc.p ? pc.p : "", *ep = pe.p ? pe.p : "";
	berth_sb_add(&b, "#!/bin/sh\n");
	oci_var(&b, "OCI_ENTRYPOINT", img->entrypoint, img->n_entrypoint);
	oci_var(&b, "OCI_CMD", img->cmd, img->n_cmd);
	/* The template, with Go's {{- trimming applied by hand. */
	berth_sb_add(&b, "\n"
		   "# When SINGULARITY_NO_EVAL set, use OCI compatible behavior that does\n"
		   "# not evaluate resolved CMD / ENTRYPOINT / ARGS through the shell, and\n"
		   "# does not modify expected quoting behavior of args.\n"
		   "if [ -n \"$SINGULARITY_NO_EVAL\" ]; then\n"
		   "    # ENTRYPOINT only - run entrypoint plus args\n"
		   "    if [ -z \"$OCI_CMD\" ] && [ -n \"$OCI_ENTRYPOINT\" ]; then\n"
		   "        ");
	berth_sb_add(&b, ep);
	berth_sb_add(&b, "\n"
		   "        exec \"$@\"\n"
		   "    fi\n"
		   "\n"
		   "    # CMD only - run CMD or override with args\n"
		   "    if [ -n \"$OCI_CMD\" ] && [ -z \"$OCI_ENTRYPOINT\" ]; then");
	if (*cmd) {
		berth_sb_add(&b, "\n        if [ $# -eq 0 ]; then\n            ");
		berth_sb_add(&b, cmd);
		berth_sb_add(&b, "\n        fi");
	}
	berth_sb_add(&b, "\n"
		   "        exec \"$@\"\n"
		   "    fi\n"
		   "\n"
		   "    # ENTRYPOINT and CMD - run ENTRYPOINT with CMD as default args\n"
		   "    # override with user provided args");
	if (*ep) {
		berth_sb_add(&b, "\n    if [ $# -gt 0 ]; then\n        ");
		berth_sb_add(&b, ep);
		berth_sb_add(&b, "\n\telse\n        ");
		berth_sb_add(&b, cmd);
		berth_sb_add(&b, "\n        ");
		berth_sb_add(&b, ep);
		berth_sb_add(&b, "\n    fi");
	} else if (*cmd) {
		berth_sb_add(&b, "\n    if [ $# -eq 0 ]; then\n        ");
		berth_sb_add(&b, cmd);
		berth_sb_add(&b, "\n    fi");
	}
	berth_sb_add(&b, "\n    exec \"$@\"\nfi\n");
	berth_sb_add(&b, berth_sing_runscript_tail);
	berth_sb_free(&pc);
	berth_sb_free(&pe);
	return berth_sb_take(&b);
}

/* ---- labels -------------------------------------------------------------------- */

struct kv {
	const char *key, *value;
};

struct kvs {
	struct kv *v;
	size_t n, cap;
};

/* Set key (pointers are borrowed); a later value wins, as in a Go map. */
static int kvs_set(struct kvs *m, const char *key, const char *value)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].key, key)) {
			m->v[i].value = value;
			return 0;
		}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct kv *v = reallocarray(m->v, cap, sizeof(*v));
		if (!v)
			return -1;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n++] = (struct kv){key, value};
	return 0;
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* {"k":"v",...} or MarshalIndent's "{\n\t\"k\": \"v\",\n...}" */
static void json_map(struct berth_sb *b, const struct kvs *m, bool indent)
{
	if (!m->n) {
		berth_sb_add(b, "{}");
		return;
	}
	berth_sb_addc(b, '{');
	for (size_t i = 0; i < m->n; i++) {
		if (i)
			berth_sb_addc(b, ',');
		if (indent)
			berth_sb_add(b, "\n\t");
		berth_go_json_string(b, m->v[i].key);
		berth_sb_add(b, indent ? ": " : ":");
		berth_go_json_string(b, m->v[i].value);
	}
	if (indent)
		berth_sb_addc(b, '\n');
	berth_sb_addc(b, '}');
}

/* Go's case-insensitive field matching: the exact key first. */
static struct json_object *field(struct json_object *obj, const char *name)
{
	struct json_object *v = NULL;

	if (!json_object_is_type(obj, json_type_object))
		return NULL;
	if (json_object_object_get_ex(obj, name, &v))
		return v;
	json_object_object_foreach(obj, key, val)
	{
		if (!strcasecmp(key, name))
			return val;
	}
	return NULL;
}

static const char *const weekdays[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
				       "Thursday", "Friday", "Saturday"};
static const char *const months[] = {"January", "February", "March", "April", "May",
				     "June", "July", "August", "September",
				     "October", "November", "December"};

/* Apptainer's build-date label: Sunday_29_November_2026_20:50:14_UTC (no
 * zero padding, the local zone's abbreviation). */
static void build_date(char *out, size_t len, time_t t)
{
	struct tm tm;

	if (!localtime_r(&t, &tm)) {
		snprintf(out, len, "unknown");
		return;
	}
	snprintf(out, len, "%s_%d_%s_%d_%d:%d:%d_%s", weekdays[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, tm.tm_zone ? tm.tm_zone : "UTC");
}

/* ---- oci-config.json: json.Marshal of go-containerregistry's v1.Config -- */

static void oci_sep(struct berth_sb *b, bool *first, const char *name)
{
	if (!*first)
		berth_sb_addc(b, ',');
	*first = false;
	berth_go_json_string(b, name);
	berth_sb_addc(b, ':');
}

static void oci_bool(struct berth_sb *b, bool *first, struct json_object *cfg,
		     const char *name)
{
	struct json_object *v = field(cfg, name);

	if (json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)) {
		oci_sep(b, first, name);
		berth_sb_add(b, "true");
	}
}

static void oci_string(struct berth_sb *b, bool *first, struct json_object *cfg,
		       const char *name)
{
	const char *s = bj_string(field(cfg, name));

	if (s && *s) {
		oci_sep(b, first, name);
		berth_go_json_string(b, s);
	}
}

static void oci_strv(struct berth_sb *b, bool *first, struct json_object *cfg,
		     const char *name)
{
	struct json_object *v = field(cfg, name);

	if (!json_object_is_type(v, json_type_array) || !json_object_array_length(v))
		return;
	oci_sep(b, first, name);
	berth_sb_addc(b, '[');
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		const char *s = bj_string(json_object_array_get_idx(v, i));
		if (i)
			berth_sb_addc(b, ',');
		berth_go_json_string(b, s ? s : "");
	}
	berth_sb_addc(b, ']');
}

static void oci_map(struct berth_sb *b, bool *first, struct json_object *cfg,
		    const char *name, bool set)
{
	struct json_object *v = field(cfg, name);
	struct kvs m = {0};

	if (!json_object_is_type(v, json_type_object) || !json_object_object_length(v))
		return;
	json_object_object_foreach(v, key, val)
	{
		const char *s = bj_string(val);
		if (kvs_set(&m, key, set || !s ? "" : s) < 0) {
			b->oom = true;
			free(m.v);
			return;
		}
	}
	if (m.n > 1)
		qsort(m.v, m.n, sizeof(*m.v), kv_cmp);
	oci_sep(b, first, name);
	if (!set) {
		json_map(b, &m, false);
	} else {
		berth_sb_addc(b, '{');
		for (size_t i = 0; i < m.n; i++) {
			if (i)
				berth_sb_addc(b, ',');
			berth_go_json_string(b, m.v[i].key);
			berth_sb_add(b, ":{}");
		}
		berth_sb_addc(b, '}');
	}
	free(m.v);
}

static void oci_int(struct berth_sb *b, bool *first, struct json_object *obj,
		    const char *name)
{
	struct json_object *v = field(obj, name);

	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v)) {
		oci_sep(b, first, name);
		berth_sb_printf(b, "%lld", (long long)json_object_get_int64(v));
	}
}

static void oci_config(struct berth_sb *b, struct json_object *cfg)
{
	bool first = true;

	berth_sb_addc(b, '{');
	oci_bool(b, &first, cfg, "AttachStderr");
	oci_bool(b, &first, cfg, "AttachStdin");
	oci_bool(b, &first, cfg, "AttachStdout");
	oci_strv(b, &first, cfg, "Cmd");
	struct json_object *hc = field(cfg, "Healthcheck");
	if (json_object_is_type(hc, json_type_object)) {
		bool hfirst = true;
		oci_sep(b, &first, "Healthcheck");
		berth_sb_addc(b, '{');
		oci_strv(b, &hfirst, hc, "Test");
		oci_int(b, &hfirst, hc, "Interval");
		oci_int(b, &hfirst, hc, "Timeout");
		oci_int(b, &hfirst, hc, "StartPeriod");
		oci_int(b, &hfirst, hc, "Retries");
		berth_sb_addc(b, '}');
	}
	oci_string(b, &first, cfg, "Domainname");
	oci_strv(b, &first, cfg, "Entrypoint");
	oci_strv(b, &first, cfg, "Env");
	oci_string(b, &first, cfg, "Hostname");
	oci_string(b, &first, cfg, "Image");
	oci_map(b, &first, cfg, "Labels", false);
	oci_strv(b, &first, cfg, "OnBuild");
	oci_bool(b, &first, cfg, "OpenStdin");
	oci_bool(b, &first, cfg, "StdinOnce");
	oci_bool(b, &first, cfg, "Tty");
	oci_string(b, &first, cfg, "User");
	oci_map(b, &first, cfg, "Volumes", true);
	oci_string(b, &first, cfg, "WorkingDir");
	oci_map(b, &first, cfg, "ExposedPorts", true);
	oci_bool(b, &first, cfg, "ArgsEscaped");
	oci_bool(b, &first, cfg, "NetworkDisabled");
	oci_string(b, &first, cfg, "MacAddress");
	oci_string(b, &first, cfg, "StopSignal");
	oci_strv(b, &first, cfg, "Shell");
	berth_sb_addc(b, '}');
}

/* ---- building it all ----------------------------------------------------------- */

/* Apptainer's inspect values: the file's text without its trailing
 * newlines (only those: spaces, tabs and leading blank lines stay, as
 * `apptainer inspect --all --json` of a folder shows). */
static void json_trimmed(struct berth_sb *b, const char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '\n')
		n--;
	_cleanup_free_ char *t = strndup(s, n);
	if (!t)
		b->oom = true;
	else
		berth_go_json_string(b, t);
}

void berth_singularity_meta_free(struct berth_sing_meta *m)
{
	free(m->env_docker);
	free(m->runscript);
	free(m->labels_json);
	free(m->deffile);
	free(m->inspect_json);
	free(m->oci_config);
	memset(m, 0, sizeof(*m));
}

static void json_putp(struct json_object **o)
{
	json_object_put(*o);
}

static void kvs_freep(struct kvs *m)
{
	free(m->v);
}

static void strv_freep(char ***v)
{
	for (size_t i = 0; *v && (*v)[i]; i++)
		free((*v)[i]);
	free(*v);
}

static int build(const struct berth_image *img, const struct berth_sing_build *bo,
		 struct json_object *cfg, struct berth_sing_meta *m)
{
	const char *bootstrap = bo->bootstrap ? bo->bootstrap : "docker-archive";
	const char *from = bo->from ? bo->from : img->archive ? img->archive : "";
	const char *arch = bo->arch ? bo->arch : berth_sif_host_arch();
	__attribute__((cleanup(kvs_freep))) struct kvs labels = {0};
	__attribute__((cleanup(strv_freep))) char **keys = NULL;
	size_t nkeys = 0;
	__attribute__((cleanup(berth_sb_free))) struct berth_sb sb = {0};
	char date[128];

	if (!(m->env_docker = make_env_script(img)) || !(m->runscript = make_runscript(img)))
		return -1;

	/* labels.json: the config's labels, then the build labels over them. */
	struct json_object *lab = field(cfg, "Labels");
	if (json_object_is_type(lab, json_type_object)) {
		json_object_object_foreach(lab, key, val)
		{
			const char *s = bj_string(val);
			if (s && kvs_set(&labels, key, s) < 0)
				return -1;
		}
	} else if (!cfg && img->n_labels) {
		/* no config bytes: the parsed "key=value" list */
		if (!(keys = calloc(img->n_labels + 1, sizeof(*keys))))
			return -1;
		for (size_t i = 0; i < img->n_labels; i++) {
			const char *eq = strchr(img->labels[i], '=');
			if (!eq)
				continue;
			if (!(keys[nkeys] = strndup(img->labels[i],
						    (size_t)(eq - img->labels[i]))) ||
			    kvs_set(&labels, keys[nkeys++], eq + 1) < 0)
				return -1;
		}
	}
	build_date(date, sizeof(date), bo->time ? bo->time : time(NULL));
	if (kvs_set(&labels, "org.label-schema.schema-version", "1.0") < 0 ||
	    kvs_set(&labels, "org.label-schema.build-date", date) < 0 ||
	    (bo->apptainer_version &&
	     kvs_set(&labels, "org.label-schema.usage.apptainer.version",
		     bo->apptainer_version) < 0) ||
	    kvs_set(&labels, "org.label-schema.usage.singularity.deffile.bootstrap",
		    bootstrap) < 0 ||
	    kvs_set(&labels, "org.label-schema.usage.singularity.deffile.from", from) < 0 ||
	    kvs_set(&labels, "org.label-schema.build-arch", arch) < 0)
		return -1;
	qsort(labels.v, labels.n, sizeof(*labels.v), kv_cmp);
	json_map(&sb, &labels, true);
	if (!(m->labels_json = berth_sb_take(&sb)))
		return -1;

	berth_sb_add(&sb, "bootstrap: ");
	berth_sb_add(&sb, bootstrap);
	berth_sb_add(&sb, "\nfrom: ");
	berth_sb_add(&sb, from);
	berth_sb_add(&sb, "\n\n");
	if (!(m->deffile = berth_sb_take(&sb)))
		return -1;

	/* inspect-metadata.json: `apptainer inspect --all --json`, compact. */
	berth_sb_add(&sb, "{\"data\":{\"attributes\":{\"environment\":{");
	berth_go_json_string(&sb, "/" ENV_DIR "/10-docker2singularity.sh");
	berth_sb_addc(&sb, ':');
	json_trimmed(&sb, m->env_docker);
	berth_sb_addc(&sb, ',');
	berth_go_json_string(&sb, "/" ENV_DIR "/90-environment.sh");
	berth_sb_addc(&sb, ':');
	json_trimmed(&sb, berth_sing_env_90_environment_sh);
	berth_sb_add(&sb, "},\"labels\":");
	json_map(&sb, &labels, false);
	berth_sb_add(&sb, ",\"runscript\":");
	json_trimmed(&sb, m->runscript);
	berth_sb_add(&sb, ",\"deffile\":");
	json_trimmed(&sb, m->deffile);
	berth_sb_add(&sb, ",\"startscript\":");
	json_trimmed(&sb, berth_sing_startscript);
	berth_sb_add(&sb, "}},\"type\":\"container\"}");
	if (!(m->inspect_json = berth_sb_take(&sb)))
		return -1;

	oci_config(&sb, cfg);
	if (!(m->oci_config = berth_sb_take(&sb)))
		return -1;

	m->objects[0] = (struct berth_sif_object){BERTH_SIF_DATA_DEFFILE, NULL,
						  m->deffile, strlen(m->deffile)};
	m->objects[1] = (struct berth_sif_object){BERTH_SIF_DATA_GENERIC_JSON,
						  "inspect-metadata.json", m->inspect_json,
						  strlen(m->inspect_json)};
	m->objects[2] = (struct berth_sif_object){BERTH_SIF_DATA_GENERIC_JSON,
						  "oci-config.json", m->oci_config,
						  strlen(m->oci_config)};
	m->n_objects = 3;
	return 0;
}

int berth_singularity_meta_build(const struct berth_image *img,
				 const struct berth_sing_build *b,
				 struct berth_sing_meta *m, struct berth_err *err)
{
	static const struct berth_sing_build defaults;
	__attribute__((cleanup(json_putp))) struct json_object *root = NULL;

	memset(m, 0, sizeof(*m));
	if (img->config_json) {
		struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
		if (!tok)
			return berth_fail(err, ENOMEM, "image config");
		root = json_tokener_parse_ex(tok, img->config_json, (int)img->config_len);
		enum json_tokener_error jerr = json_tokener_get_error(tok);
		json_tokener_free(tok);
		if (!root || jerr != json_tokener_success)
			return berth_fail(err, 0, "image config is not valid JSON (%s)",
					  json_tokener_error_desc(jerr));
	}
	if (build(img, b ? b : &defaults, field(root, "config"), m) < 0) {
		berth_singularity_meta_free(m);
		return berth_fail(err, ENOMEM, "Singularity metadata");
	}
	return 0;
}

/* ---- writing into the rootfs --------------------------------------------------- */

/* Make folder `path` below root_fd, each missing component exactly 0755
 * (whatever the umask).  Returns an fd of it; -1 with errno ELOOP, ENOTDIR
 * or EXDEV where the image has a symlink or a non-folder on the way (the
 * caller decides), or another errno. */
static int ensure_dir(int root_fd, const char *path)
{
	char name[NAME_MAX + 1];
	int fd = berth_open_child(root_fd, "", O_RDONLY | O_DIRECTORY);

	for (const char *p = path; fd >= 0 && *p;) {
		size_t len = strcspn(p, "/");
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		p += len;
		p += *p == '/';
		bool made = mkdirat(fd, name, 0755) == 0;
		int saved = errno;
		if (!made && saved != EEXIST) {
			close(fd);
			errno = saved;
			return -1;
		}
		int next = berth_open_child(fd, name, O_RDONLY | O_DIRECTORY);
		saved = errno;
		close(fd);
		if (next >= 0 && made && fchmod(next, 0755) < 0) {
			saved = errno;
			close(next);
			next = -1;
		}
		fd = next;
		errno = saved;
	}
	return fd;
}

static bool image_choice(int e)
{
	return e == ELOOP || e == ENOTDIR || e == EXDEV;
}

/* Where the metadata goes: the rootfs folder, or the index of a SquashFS
 * image being written (squashfs.h).  Each operation below does the same
 * on both; paths are relative to the root. */
struct target {
	int root;                    /* the folder, or -1 */
	struct berth_sqfs_merge *m;  /* or the index */
};

static int t_ensure_dir(const struct target *t, const char *path)
{
	if (t->m)
		return berth_sqfs_merge_mkdirs(t->m, path, 0755);
	int fd = ensure_dir(t->root, path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* The folder of `path` (made), an fd of it; *base its last name. */
static int t_parent(const struct target *t, const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	*base = slash ? slash + 1 : path;
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
	return ensure_dir(t->root, dir);
}

static int t_lstat(const struct target *t, const char *path, mode_t *mode)
{
	const char *base;
	struct stat st;

	if (t->m)
		return berth_sqfs_merge_stat(t->m, path, mode);
	_cleanup_close_ int dir = t_parent(t, path, &base);
	if (dir < 0 || fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	*mode = st.st_mode;
	return 0;
}

static int t_symlink(const struct target *t, const char *to, const char *path)
{
	const char *base;

	if (t->m)
		return berth_sqfs_merge_symlink(t->m, path, to, time(NULL));
	_cleanup_close_ int dir = t_parent(t, path, &base);
	return dir < 0 ? -1 : symlinkat(to, dir, base);
}

static int t_remove(const struct target *t, const char *path)
{
	const char *base;

	if (t->m)
		return berth_sqfs_merge_remove(t->m, path);
	_cleanup_close_ int dir = t_parent(t, path, &base);
	return dir < 0 ? -1 : unlinkat(dir, base, 0);
}

/* A new file (the name is free) holding `data`, mode exactly `mode`. */
static int t_create(const struct target *t, const char *path, const char *data,
		    mode_t mode, struct berth_err *err)
{
	const char *base;
	size_t len = strlen(data);

	if (t->m) {
		if (berth_sqfs_merge_file_begin(t->m, path, mode, time(NULL), err) < 0)
			return errno ? berth_fail(err, errno, "cannot write /%s", path) : -1;
		if (berth_sqfs_merge_file_data(t->m, 0, data, len, err) < 0 ||
		    berth_sqfs_merge_file_end(t->m, len, err) < 0)
			return -1;
		return 0;
	}
	_cleanup_close_ int dir = t_parent(t, path, &base);
	_cleanup_close_ int fd = dir < 0 ? -1 : openat(dir, base, O_WRONLY | O_CREAT |
							O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, data, len) < 0 || fchmod(fd, mode) < 0)
		return berth_fail(err, errno, "cannot write /%s", path);
	if (close(berth_steal_fd(fd)) < 0)
		return berth_fail(err, errno, "cannot write /%s", path);
	return 0;
}

/* Replace `path` by a new file holding `data`, mode exactly `mode`. */
static int put_file(const struct target *t, const char *path, const char *data,
		    mode_t mode, struct berth_err *err)
{
	mode_t have;

	if (t_lstat(t, path, &have) == 0) {
		if (S_ISDIR(have))
			return berth_fail(err, EISDIR, "cannot write /%s: the image "
					  "has a folder there", path);
		if (t_remove(t, path) < 0)
			return berth_fail(err, errno, "cannot replace /%s", path);
	} else if (errno != ENOENT) {
		return berth_fail(err, errno, "cannot write /%s", path);
	}
	return t_create(t, path, data, mode, err);
}

/* /etc/hosts and /etc/resolv.conf: made empty (0644) as Apptainer does;
 * where the image has a symlink or something else, it stays. */
static int empty_etc_file(const struct target *t, const char *path, struct berth_err *err)
{
	mode_t have;

	if (t_lstat(t, path, &have) == 0) {
		if (!S_ISREG(have))
			return 0;
	} else if (errno != ENOENT) {
		return berth_fail(err, errno, "cannot write /%s", path);
	}
	if (t->m) /* a new empty file in the image */
		return put_file(t, path, "", 0644, err);
	const char *base;
	_cleanup_close_ int dir = t_parent(t, path, &base);
	int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_CREAT | O_TRUNC;
	_cleanup_close_ int fd = dir < 0 ? -1 : openat(dir, base, flags, 0644);
	if (fd < 0 || fchmod(fd, 0644) < 0)
		return berth_fail(err, errno, "cannot write /%s", path);
	return 0;
}

static int t_count(const struct target *t, const char *dir, size_t *count)
{
	if (t->m)
		return berth_sqfs_merge_count(t->m, dir, count);
	int fd = ensure_dir(t->root, dir);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		errno = saved;
		return -1;
	}
	*count = 0;
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(*count)++;
	closedir(d);
	return 0;
}

static int t_rename(const struct target *t, const char *from, const char *to)
{
	const char *fbase, *tbase;

	if (t->m)
		return berth_sqfs_merge_rename(t->m, from, to);
	_cleanup_close_ int fdir = t_parent(t, from, &fbase);
	_cleanup_close_ int tdir = fdir < 0 ? -1 : t_parent(t, to, &tbase);
	return tdir < 0 ? -1 : renameat(fdir, fbase, tdir, tbase);
}

#define SD ".singularity.d"
#define HISTORY SD "/bootstrap_history"

/* An existing definition moves to bootstrap_history/Apptainer<N>. */
static int keep_old_definition(const struct target *t, struct berth_err *err)
{
	mode_t have;
	size_t count;
	char to[64];

	if (t_lstat(t, SD "/Singularity", &have) < 0)
		return errno == ENOENT ? 0 : berth_fail(err, errno, "/" SD "/Singularity");
	if (t_ensure_dir(t, HISTORY) < 0)
		return berth_fail(err, errno, "cannot make /" HISTORY);
	if (t_count(t, HISTORY, &count) < 0)
		return berth_fail(err, errno, "cannot list /" HISTORY);
	snprintf(to, sizeof(to), HISTORY "/Apptainer%zu", count);
	if (t_rename(t, SD "/Singularity", to) < 0)
		return berth_fail(err, errno, "cannot move /" SD "/Singularity to "
				  "bootstrap_history/%s", to + strlen(HISTORY) + 1);
	return 0;
}

static int meta_write(const struct target *t, const struct berth_sing_meta *m,
		      struct berth_err *err)
{
	static const char *const dirs[] = {
		".singularity.d/libs", ".singularity.d/actions", ENV_DIR,
		"dev", "proc", "root", "var/tmp", "tmp", "etc", "sys", "home",
	};
	static const char *const links[][2] = {
		{"singularity", SD "/runscript"},
		{".run", SD "/actions/run"},
		{".exec", SD "/actions/exec"},
		{".test", SD "/actions/test"},
		{".shell", SD "/actions/shell"},
		{"environment", ENV_DIR "/90-environment.sh"},
	};
	static const struct {
		const char *path, *text;
		mode_t mode;
	} files[] = {
		{SD "/actions/exec", berth_sing_actions_exec, 0755},
		{SD "/actions/run", berth_sing_actions_run, 0755},
		{SD "/actions/shell", berth_sing_actions_shell, 0755},
		{SD "/actions/start", berth_sing_actions_start, 0755},
		{SD "/actions/test", berth_sing_actions_test, 0755},
		{ENV_DIR "/01-base.sh", berth_sing_env_01_base_sh, 0755},
		{ENV_DIR "/10-docker2singularity.sh", NULL, 0755},
		{ENV_DIR "/90-environment.sh", berth_sing_env_90_environment_sh, 0755},
		{ENV_DIR "/94-appsbase.sh", "", 0755},
		{ENV_DIR "/95-apps.sh", berth_sing_env_95_apps_sh, 0755},
		{ENV_DIR "/99-base.sh", berth_sing_env_99_base_sh, 0755},
		{ENV_DIR "/99-runtimevars.sh", berth_sing_env_99_runtimevars_sh, 0755},
		{SD "/runscript", NULL, 0755},
		{SD "/startscript", berth_sing_startscript, 0755},
		{SD "/labels.json", NULL, 0644},
	};
	mode_t have;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		if (t_ensure_dir(t, dirs[i]) == 0)
			continue;
		if (!image_choice(errno) || dirs[i][0] == '.')
			return berth_fail(err, errno, "cannot make /%s%s", dirs[i],
					  image_choice(errno) ? " (the image has a "
					  "symlink or a file on the way)" : "");
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(*links); i++) {
		if (t_lstat(t, links[i][0], &have) == 0)
			continue; /* the image's own */
		if (errno != ENOENT || t_symlink(t, links[i][1], links[i][0]) < 0)
			return berth_fail(err, errno, "cannot make the symlink /%s",
					  links[i][0]);
	}
	if (t_ensure_dir(t, "etc") == 0 &&
	    (empty_etc_file(t, "etc/hosts", err) < 0 ||
	     empty_etc_file(t, "etc/resolv.conf", err) < 0))
		return -1;
	if (t_ensure_dir(t, SD) < 0 || t_ensure_dir(t, SD "/actions") < 0 ||
	    t_ensure_dir(t, ENV_DIR) < 0)
		return berth_fail(err, errno, "cannot open /" SD);
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		const char *text = files[i].text;
		if (!text)
			text = i == 6 ? m->env_docker : i == 12 ? m->runscript : m->labels_json;
		if (put_file(t, files[i].path, text, files[i].mode, err) < 0)
			return -1;
	}
	if (keep_old_definition(t, err) < 0 ||
	    put_file(t, SD "/Singularity", m->deffile, 0644, err) < 0)
		return -1;
	return 0;
}

int berth_singularity_meta_write(int root_dir_fd, const struct berth_sing_meta *m,
				 struct berth_err *err)
{
	_cleanup_close_ int root = berth_open_child(root_dir_fd, "", O_RDONLY | O_DIRECTORY);
	struct target t = {.root = root};

	if (root < 0)
		return berth_fail(err, errno, "cannot open the rootfs folder");
	return meta_write(&t, m, err);
}

int berth_singularity_meta_write_squashfs(struct berth_sqfs_merge *merge,
					  const struct berth_sing_meta *m,
					  struct berth_err *err)
{
	struct target t = {.root = -1, .m = merge};

	return meta_write(&t, m, err);
}
