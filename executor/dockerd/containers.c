/* berth: the Docker Engine's container calls (see api.h): the vetted
 * create request, start, wait, kill, inspect, remove and list. */
#define _GNU_SOURCE
#include "executor/dockerd/api.h"
#include "executor/dockerd/api_int.h"
#include "executor/base/jsonval.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dk_check_path(const char *what, size_t i, const char *p, struct berth_err *err)
{
	if (!p || p[0] != '/')
		return berth_fail(err, 0, "bind %zu: %s '%s' is not an absolute path: give a path starting with /",
				  i, what, p ? p : "(null)");
	if (strpbrk(p, ":,"))
		return berth_fail(err, 0, "bind %zu: %s '%s' contains ':' or ',', which Docker's bind syntax cannot carry: rename or choose another path",
				  i, what, p);
	if (strlen(p) > 4096)
		return berth_fail(err, 0, "bind %zu: %s is longer than 4096 bytes", i, what);
	return 0;
}

/* Options and propagation travel inside Docker's own syntax: plain words. */
static int dk_check_mount_words(size_t i, const struct berth_docker_bind *b,
				struct berth_err *err)
{
	const char *words[] = {b->propagation, b->tmpfs_options};

	for (size_t w = 0; w < 2; w++)
		if (words[w] && (!*words[w] ||
				 strspn(words[w], "abcdefghijklmnopqrstuvwxyz0123456789=,_:%-") !=
					 strlen(words[w])))
			return berth_fail(err, 0, "bind %zu: mount option '%s' is not plain "
					  "words", i, words[w]);
	return 0;
}

static int dk_check_label(const char *name, const char *v, struct berth_err *err)
{
	if (!v)
		return 0;
	for (const char *p = v; *p; p++)
		if (iscntrl((unsigned char)*p))
			return berth_fail(err, 0, "container label %s holds a control character: pass plain text",
					  name);
	return 0;
}

static int dk_check_create(const struct berth_docker_create *c, struct berth_err *err)
{
	if (!c)
		return berth_fail(err, EINVAL, "creating container: no settings");
	if (dk_check_ref("image", c->image, err) < 0)
		return berth_wrap(err, "creating container");
	for (size_t i = 0; i < c->n_binds; i++)
		if ((!c->binds[i].tmpfs_options &&
		     dk_check_path("source", i, c->binds[i].src, err) < 0) ||
		    dk_check_path("destination", i, c->binds[i].dst, err) < 0 ||
		    dk_check_mount_words(i, &c->binds[i], err) < 0)
			return berth_wrap(err, "creating container");
	if (c->n_groups && !c->groups)
		return berth_fail(err, EINVAL, "creating container: n_groups without groups");
	if (c->argv)
		for (size_t i = 0; c->argv[i]; i++)
			if (i > 65536)
				return berth_fail(err, E2BIG, "creating container: argv");
	if (c->env)
		for (size_t i = 0; c->env[i]; i++)
			if (!strchr(c->env[i], '=') || c->env[i][0] == '=')
				return berth_fail(err, 0, "creating container: environment entry %zu '%.60s' is not NAME=value",
						  i, c->env[i]);
	if (c->workdir && c->workdir[0] != '/')
		return berth_fail(err, 0, "creating container: working directory '%s' is not absolute: give a path starting with /",
				  c->workdir);
	if (c->cgroup_parent && !*c->cgroup_parent)
		return berth_fail(err, 0, "creating container: empty cgroup parent: pass NULL for Docker's default");
	if (c->cpus > 4096)
		return berth_fail(err, 0, "creating container: %u CPUs is not plausible", c->cpus);
	if (c->memory_bytes > INT64_MAX)
		return berth_fail(err, 0, "creating container: memory limit too large");
	if (c->pids_limit > INT64_MAX)
		return berth_fail(err, 0, "creating container: process limit too large");
	if (c->cpuset_cpus && (!*c->cpuset_cpus || !isdigit((unsigned char)*c->cpuset_cpus) ||
			       strspn(c->cpuset_cpus, "0123456789,-") != strlen(c->cpuset_cpus)))
		return berth_fail(err, 0, "creating container: CPU list '%.60s' is not like "
				  "0-3,8: pass NULL for every CPU", c->cpuset_cpus);
	for (size_t i = 0; i < c->n_ulimits; i++) {
		const struct berth_ulimit *u = &c->ulimits[i];
		if (!u->name || !*u->name || strspn(u->name, "abcdefghijklmnopqrstuvwxyz") != strlen(u->name))
			return berth_fail(err, 0, "creating container: ulimit %zu has no valid name", i);
		if (u->soft < -1 || u->hard < -1 ||
		    (u->hard != -1 && (u->soft == -1 || u->soft > u->hard)))
			return berth_fail(err, 0, "creating container: ulimit %s: soft %lld above hard %lld",
					  u->name, (long long)u->soft, (long long)u->hard);
	}
	if (dk_check_label("berth.job", c->label_job, err) < 0 ||
	    dk_check_label("berth.step", c->label_step, err) < 0 ||
	    dk_check_label("berth.uid", c->label_uid, err) < 0 ||
	    dk_check_label("berth.node", c->label_node, err) < 0)
		return berth_wrap(err, "creating container");
	return 0;
}

/* json-c helpers: they take ownership of v and report allocation failure. */
static int dk_add(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, k, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int dk_push(json_object *a, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_array_add(a, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static json_object *dk_strings(char *const *v, size_t from)
{
	json_object *a = json_object_new_array();

	if (!a)
		return NULL;
	for (size_t i = from; v && v[i]; i++)
		if (dk_push(a, json_object_new_string(v[i])) < 0) {
			json_object_put(a);
			return NULL;
		}
	return a;
}

static json_object *dk_create_body(const struct berth_docker_create *c)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *hc, *a, *labels;
	char buf[4200];

	if (!o)
		return NULL;
	if (dk_add(o, "Image", json_object_new_string(c->image)) < 0)
		return NULL;
	if (c->argv && c->argv[0]) {
		/* Exactly argv: Entrypoint = argv[0], Cmd = the rest. A set
		 * Entrypoint also stops the image's Cmd from being appended. */
		char *const first[] = { c->argv[0], NULL };

		if (dk_add(o, "Entrypoint", dk_strings(first, 0)) < 0 ||
		    dk_add(o, "Cmd", dk_strings(c->argv, 1)) < 0)
			return NULL;
	}
	if (c->env && dk_add(o, "Env", dk_strings(c->env, 0)) < 0)
		return NULL;
	if (c->workdir && dk_add(o, "WorkingDir", json_object_new_string(c->workdir)) < 0)
		return NULL;
	if (c->network_none && c->hostname &&
	    dk_add(o, "Hostname", json_object_new_string(c->hostname)) < 0)
		return NULL;
	snprintf(buf, sizeof(buf), "%ju:%ju", (uintmax_t)c->uid, (uintmax_t)c->gid);
	if (dk_add(o, "User", json_object_new_string(buf)) < 0 ||
	    dk_add(o, "Tty", json_object_new_boolean(0)) < 0 ||
	    dk_add(o, "AttachStdin", json_object_new_boolean(c->open_stdin)) < 0 ||
	    dk_add(o, "OpenStdin", json_object_new_boolean(c->open_stdin)) < 0 ||
	    dk_add(o, "StdinOnce", json_object_new_boolean(c->open_stdin)) < 0 ||
	    dk_add(o, "AttachStdout", json_object_new_boolean(1)) < 0 ||
	    dk_add(o, "AttachStderr", json_object_new_boolean(1)) < 0)
		return NULL;

	labels = json_object_new_object();
	if (dk_add(o, "Labels", labels) < 0)
		return NULL;
	if ((c->label_job && dk_add(labels, "berth.job", json_object_new_string(c->label_job)) < 0) ||
	    (c->label_step && dk_add(labels, "berth.step", json_object_new_string(c->label_step)) < 0) ||
	    (c->label_uid && dk_add(labels, "berth.uid", json_object_new_string(c->label_uid)) < 0) ||
	    (c->label_node && dk_add(labels, "berth.node", json_object_new_string(c->label_node)) < 0))
		return NULL;

	hc = json_object_new_object();
	if (dk_add(o, "HostConfig", hc) < 0)
		return NULL;
	if (dk_add(hc, "Privileged", json_object_new_boolean(0)) < 0 ||
	    dk_add(hc, "ReadonlyRootfs", json_object_new_boolean(!c->writable)) < 0 ||
	    dk_add(hc, "AutoRemove", json_object_new_boolean(0)) < 0 ||
	    dk_add(hc, "Init", json_object_new_boolean(1)) < 0 ||
	    dk_add(hc, "PublishAllPorts", json_object_new_boolean(0)) < 0 ||
	    dk_add(hc, "NetworkMode", json_object_new_string(c->network_none ? "none" : "host")) < 0 ||
	    (c->ipc_private && dk_add(hc, "IpcMode", json_object_new_string("private")) < 0))
		return NULL;
	/* A read-only root still needs a scratch /tmp, as the other runtimes
	 * give one: private to the container, gone with it. */
	bool tmp_bound = false;
	for (size_t i = 0; i < c->n_binds; i++)
		tmp_bound |= !strcmp(c->binds[i].dst, "/tmp");
	struct json_object *tmpfs = json_object_new_object();
	if (dk_add(hc, "Tmpfs", tmpfs) < 0 ||
	    (!c->writable && !tmp_bound &&
	     dk_add(tmpfs, "/tmp", json_object_new_string("rw,nosuid,nodev,mode=1777")) < 0))
		return NULL;
	for (size_t i = 0; i < c->n_binds; i++)
		if (c->binds[i].tmpfs_options &&
		    dk_add(tmpfs, c->binds[i].dst,
			   json_object_new_string(c->binds[i].tmpfs_options)) < 0)
			return NULL;
	a = json_object_new_array();
	if (dk_add(hc, "CapDrop", a) < 0 || dk_push(a, json_object_new_string("ALL")) < 0)
		return NULL;
	a = json_object_new_array();
	if (dk_add(hc, "SecurityOpt", a) < 0 ||
	    dk_push(a, json_object_new_string("no-new-privileges")) < 0)
		return NULL;
	a = json_object_new_array();
	if (dk_add(hc, "GroupAdd", a) < 0)
		return NULL;
	for (size_t i = 0; i < c->n_groups; i++) {
		snprintf(buf, sizeof(buf), "%ju", (uintmax_t)c->groups[i]);
		if (dk_push(a, json_object_new_string(buf)) < 0)
			return NULL;
	}
	a = json_object_new_array();
	if (dk_add(hc, "Binds", a) < 0)
		return NULL;
	for (size_t i = 0; i < c->n_binds; i++) {
		const struct berth_docker_bind *b = &c->binds[i];
		if (b->tmpfs_options)
			continue;
		snprintf(buf, sizeof(buf), "%s:%s:%s%s%s", b->src, b->dst,
			 b->read_only ? "ro" : "rw", b->propagation ? "," : "",
			 b->propagation ? b->propagation : "");
		if (dk_push(a, json_object_new_string(buf)) < 0)
			return NULL;
	}
	a = json_object_new_array();
	if (dk_add(hc, "Devices", a) < 0)
		return NULL;
	for (size_t i = 0; c->devices && c->devices[i]; i++) {
		const char *sep = strchr(c->devices[i], ':');
		json_object *dev = json_object_new_object();
		if (dk_push(a, dev) < 0 || !sep)
			return NULL;
		snprintf(buf, sizeof(buf), "%.*s", (int)(sep - c->devices[i]), c->devices[i]);
		if (dk_add(dev, "PathOnHost", json_object_new_string(buf)) < 0 ||
		    dk_add(dev, "PathInContainer", json_object_new_string(sep + 1)) < 0 ||
		    dk_add(dev, "CgroupPermissions", json_object_new_string("rwm")) < 0)
			return NULL;
	}
	/* MemorySwap equal to Memory: no swap on top (Docker's default is as
	 * much swap again, which a node with swap would let it use). */
	if (c->memory_bytes &&
	    (dk_add(hc, "Memory", json_object_new_int64((int64_t)c->memory_bytes)) < 0 ||
	     dk_add(hc, "MemorySwap", json_object_new_int64((int64_t)c->memory_bytes)) < 0))
		return NULL;
	if (c->cpuset_cpus &&
	    dk_add(hc, "CpusetCpus", json_object_new_string(c->cpuset_cpus)) < 0)
		return NULL;
	if (c->pids_limit &&
	    dk_add(hc, "PidsLimit", json_object_new_int64((int64_t)c->pids_limit)) < 0)
		return NULL;
	if (c->cpus &&
	    dk_add(hc, "NanoCpus", json_object_new_int64((int64_t)c->cpus * 1000000000LL)) < 0)
		return NULL;
	if (c->cgroup_parent &&
	    dk_add(hc, "CgroupParent", json_object_new_string(c->cgroup_parent)) < 0)
		return NULL;
	if (c->n_ulimits) {
		a = json_object_new_array();
		if (dk_add(hc, "Ulimits", a) < 0)
			return NULL;
		for (size_t i = 0; i < c->n_ulimits; i++) {
			json_object *u = json_object_new_object();
			if (dk_push(a, u) < 0 ||
			    dk_add(u, "Name", json_object_new_string(c->ulimits[i].name)) < 0 ||
			    dk_add(u, "Soft", json_object_new_int64(c->ulimits[i].soft)) < 0 ||
			    dk_add(u, "Hard", json_object_new_int64(c->ulimits[i].hard)) < 0)
				return NULL;
		}
	}
	return berth_steal(o);
}

int berth_docker_container_create(struct berth_docker *d,
				  const struct berth_docker_create *c,
				  char id[BERTH_DOCKER_ID_MAX], struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	_cleanup_json_ json_object *req = NULL;
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	long status = 0;

	id[0] = '\0';
	if (dk_check_create(c, err) < 0) /* before any API call */
		return -1;
	if (!d)
		return berth_fail(err, EINVAL, "creating container: no Docker connection");
	req = dk_create_body(c);
	if (!req)
		return berth_fail(err, ENOMEM, "creating container: building the request");
	if (dk_request(d, "POST", "/containers/create",
		       json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE),
		       -1, &status, &body, err) < 0)
		return -1;
	if (status != 201 && status != 200)
		return dk_http_fail(err, "creating container", status, &body,
				    status == 404 ? "load the image first" : NULL);
	if (dk_parse_json(&body, "creating container", &o, err) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "Id", &v))
		return berth_fail(err, 0, "creating container: Docker's answer has no Id");
	return dk_copy_id(id, bj_string(v), false, "creating container", err);
}

/* A POST with an empty body whose answer only matters by status. */
static int dk_simple(struct berth_docker *d, const char *method, const char *id,
		     const char *suffix, const char *what, long ok1, long ok2,
		     struct uhttp_body *body, long *status, struct berth_err *err)
{
	char path[512];

	if (dk_check_ref("container id", id, err) < 0)
		return berth_wrap(err, "%s", what);
	snprintf(path, sizeof(path), "/containers/%s%s", id, suffix);
	if (dk_request(d, method, path, NULL, -1, status, body, err) < 0)
		return berth_wrap(err, "%s %.12s", what, id);
	if (*status == ok1 || *status == ok2)
		return 0;
	{
		char w[128];

		snprintf(w, sizeof(w), "%s %.12s", what, id);
		return dk_http_fail(err, w, *status, body, NULL);
	}
}

int berth_docker_container_start(struct berth_docker *d, const char *id,
				 struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	/* 304: already started. */
	return dk_simple(d, "POST", id, "/start", "starting container", 204, 304,
			 &body, &status, err);
}

/* The answer of POST /containers/{id}/wait: {"StatusCode": N, "Error": ...}. */
static int dk_wait_answer(const struct uhttp_body *body, const char *id, int *code,
			  struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *v;
	const char *message;
	int64_t sc;

	if (dk_parse_json(body, "waiting for container", &o, err) < 0)
		return -1;
	if (json_object_object_get_ex(o, "Error", &v) && (message = bj_member_string(v, "Message")) &&
	    message[0])
		return berth_fail(err, 0, "waiting for container %.12s: Docker: %.400s", id, message);
	if (!json_object_object_get_ex(o, "StatusCode", &v))
		return berth_fail(err, 0, "waiting for container %.12s: Docker's answer has no StatusCode", id);
	sc = json_object_get_int64(v);
	if (sc < 0 || sc > 255)
		return berth_fail(err, 0, "waiting for container %.12s: Docker's StatusCode %" PRId64 " is not an exit status",
				  id, sc);
	*code = (int)sc;
	return 0;
}

int berth_docker_container_wait(struct berth_docker *d, const char *id, int *code,
				struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	*code = -1;
	if (dk_simple(d, "POST", id, "/wait?condition=not-running", "waiting for container",
		      200, 200, &body, &status, err) < 0)
		return -1;
	return dk_wait_answer(&body, id, code, err);
}

static const char *dk_signame(int signo)
{
	static const struct {
		int no;
		const char *name;
	} tab[] = {
		{ SIGHUP, "SIGHUP" },   { SIGINT, "SIGINT" },   { SIGQUIT, "SIGQUIT" },
		{ SIGABRT, "SIGABRT" }, { SIGKILL, "SIGKILL" }, { SIGUSR1, "SIGUSR1" },
		{ SIGUSR2, "SIGUSR2" }, { SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" },
		{ SIGTERM, "SIGTERM" }, { SIGCONT, "SIGCONT" }, { SIGSTOP, "SIGSTOP" },
		{ SIGTSTP, "SIGTSTP" }, { SIGTTIN, "SIGTTIN" }, { SIGTTOU, "SIGTTOU" },
		{ SIGXCPU, "SIGXCPU" }, { SIGXFSZ, "SIGXFSZ" }, { SIGWINCH, "SIGWINCH" },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].no == signo)
			return tab[i].name;
	return NULL;
}

int berth_docker_container_kill(struct berth_docker *d, const char *id, int signo,
				struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	const char *name = dk_signame(signo);
	char suffix[64];
	long status = 0;

	if (signo <= 0 || signo >= 65)
		return berth_fail(err, EINVAL, "signalling container: %d is not a signal number", signo);
	if (name)
		snprintf(suffix, sizeof(suffix), "/kill?signal=%s", name);
	else
		snprintf(suffix, sizeof(suffix), "/kill?signal=%d", signo);
	/* 409: not running, which is what a kill aims at. */
	return dk_simple(d, "POST", id, suffix, "signalling container", 204, 409,
			 &body, &status, err);
}

/* The answer of GET /containers/{id}/json: its State. */
static int dk_inspect_answer(const struct uhttp_body *body, const char *id,
			     struct berth_docker_state *st, struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *s, *v;

	if (dk_parse_json(body, "inspecting container", &o, err) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "State", &s) || !json_object_is_type(s, json_type_object))
		return berth_fail(err, 0, "inspecting container %.12s: Docker's answer has no State", id);
	if (json_object_object_get_ex(s, "Status", &v))
		snprintf(st->status, sizeof(st->status), "%s", bj_text(v));
	if (json_object_object_get_ex(s, "ExitCode", &v))
		st->exit_code = json_object_get_int(v);
	if (json_object_object_get_ex(s, "Pid", &v))
		st->pid = (pid_t)json_object_get_int(v);
	return 0;
}

int berth_docker_container_inspect(struct berth_docker *d, const char *id,
				   bool *present, struct berth_docker_state *st,
				   struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	*present = false;
	memset(st, 0, sizeof(*st));
	if (dk_simple(d, "GET", id, "/json", "inspecting container", 200, 404, &body,
		      &status, err) < 0)
		return -1;
	if (status == 404)
		return 0;
	if (dk_inspect_answer(&body, id, st, err) < 0)
		return -1;
	*present = true;
	return 0;
}

int berth_docker_container_remove(struct berth_docker *d, const char *id,
				  struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	long status = 0;

	/* 404: already gone.  409 "removal ... already in progress": another
	 * sweeper (the task's monitor, the step's exit) got there first. */
	int rc = dk_simple(d, "DELETE", id, "?force=1&v=1", "removing container", 204, 404,
			   &body, &status, err);
	if (rc < 0 && status == 409 && body.p && memmem(body.p, body.len, "already in progress", 19)) {
		*err = (struct berth_err){0};
		return 0;
	}
	return rc;
}

void berth_docker_ids_free(char **ids)
{
	if (!ids)
		return;
	for (size_t i = 0; ids[i]; i++)
		free(ids[i]);
	free(ids);
}

/* The answer of GET /containers/json: the containers' ids. */
static int dk_list_answer(const struct uhttp_body *body, char ***idsp, size_t *np,
			  struct berth_err *err)
{
	_cleanup_json_ json_object *o = NULL;
	char **ids;
	size_t n;

	o = body->p ? json_tokener_parse(body->p) : NULL;
	if (!o || !json_object_is_type(o, json_type_array))
		return berth_fail(err, 0, "listing containers: Docker's answer is not a JSON array");
	n = json_object_array_length(o);
	ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return berth_fail(err, ENOMEM, "listing containers");
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(o, i);
		char id[BERTH_DOCKER_ID_MAX];

		if (dk_copy_id(id, bj_member_string(c, "Id"), false, "listing containers", err) < 0) {
			berth_docker_ids_free(ids);
			return -1;
		}
		ids[i] = strdup(id);
		if (!ids[i]) {
			berth_docker_ids_free(ids);
			return berth_fail(err, ENOMEM, "listing containers");
		}
	}
	*idsp = ids;
	*np = n;
	return 0;
}

int berth_docker_container_list(struct berth_docker *d, const char *label,
				const char *also, char ***idsp, size_t *np,
				struct berth_err *err)
{
	_cleanup_buf_ struct uhttp_body body = { 0 };
	_cleanup_json_ json_object *f = NULL;
	json_object *a;
	char path[4096], *esc; /* two 512-byte labels, URL-escaped */
	long status = 0;

	*idsp = NULL;
	*np = 0;
	if (!label || !*label || strlen(label) > 512 || (also && (!*also || strlen(also) > 512)))
		return berth_fail(err, EINVAL, "listing containers: label filter must be 1 to 512 bytes");
	f = json_object_new_object();
	a = json_object_new_array();
	if (!f || dk_add(f, "label", a) < 0 || dk_push(a, json_object_new_string(label)) < 0 ||
	    (also && dk_push(a, json_object_new_string(also)) < 0))
		return berth_fail(err, ENOMEM, "listing containers");
	esc = uhttp_escape(json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN));
	if (!esc)
		return berth_fail(err, ENOMEM, "listing containers");
	snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", esc);
	free(esc);
	if (dk_request(d, "GET", path, NULL, -1, &status, &body, err) < 0)
		return berth_wrap(err, "listing containers labelled %s", label);
	if (status != 200) {
		char w[600];

		snprintf(w, sizeof(w), "listing containers labelled %s", label);
		return dk_http_fail(err, w, status, &body, NULL);
	}
	return dk_list_answer(&body, idsp, np, err);
}
