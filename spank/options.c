/* berth: the SPANK options, their BERTH_CONTAINER_* environment defaults,
 * and their validation on the submitting side (srun, sbatch, salloc), so a
 * bad value fails at submission with a message that says what to fix. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/runtime/caps.h"
#include "executor/runtime/sing_runtime.h"
#include "executor/source/imageref.h"
#include "conf/names.h"
#include "conf/unshare.h"
#include "spank/berth_spank.h"
#include "spank/pin.h"

enum opt_id { OPT_IMAGE, OPT_RUNTIME, OPT_MOUNTS, OPT_WORKDIR, OPT_ENV, OPT_NAME, OPT_SAVE,
	      OPT_UNSHARE, OPT_DEVICES, /* the last string option (berth_options_free) */
	      OPT_HOME, OPT_NO_HOME, OPT_WRITABLE, OPT_READONLY,
	      OPT_ENTRYPOINT, OPT_NO_ENTRYPOINT, OPT_VERBOSE, OPT_ENTRYPOINT_LOG,
	      OPT_REMAP_ROOT, OPT_NO_REMAP_ROOT, OPT_COUNT };

/* Where each string option is kept, and its environment default. */
static char **string_slot(int id)
{
	switch (id) {
	case OPT_IMAGE: return &berth.image;
	case OPT_RUNTIME: return &berth.runtime_name;
	case OPT_MOUNTS: return &berth.mounts;
	case OPT_WORKDIR: return &berth.workdir;
	case OPT_ENV: return &berth.env_names;
	case OPT_NAME: return &berth.container_name;
	case OPT_SAVE: return &berth.save;
	case OPT_UNSHARE: return &berth.unshare;
	case OPT_DEVICES: return &berth.devices;
	default: return NULL;
	}
}

/* A yes/no pair (--container-writable / --container-readonly, ...): the
 * second of two opposite choices is refused, as pyxis does, rather than
 * one of them silently winning.  Slurm may replay the same choice. */
static int set_choice(enum berth_tristate *slot, enum berth_tristate want,
		      const char *yes, const char *no)
{
	if (*slot != BERTH_UNSET && *slot != want) {
		slurm_error(PFX "both --%s and --%s were given: keep the one you mean",
			    yes, no);
		return -1;
	}
	*slot = want;
	return 0;
}

static int on_option(int id, const char *optarg, int remote)
{
	char **slot = string_slot(id);

	(void)remote;
	if (slot) {
		if (!optarg || !*optarg) {
			slurm_error(PFX "this option needs a value");
			return -1;
		}
		free(*slot);
		*slot = strdup(optarg);
		return *slot ? 0 : -1;
	}
	switch (id) {
	case OPT_HOME:
	case OPT_NO_HOME:
		return set_choice(&berth.mount_home, id == OPT_HOME ? BERTH_YES : BERTH_NO,
				  "container-mount-home", "no-container-mount-home");
	case OPT_WRITABLE:
	case OPT_READONLY:
		return set_choice(&berth.writable, id == OPT_WRITABLE ? BERTH_YES : BERTH_NO,
				  "container-writable", "container-readonly");
	case OPT_ENTRYPOINT:
	case OPT_NO_ENTRYPOINT:
		return set_choice(&berth.entrypoint, id == OPT_ENTRYPOINT ? BERTH_YES : BERTH_NO,
				  "container-entrypoint", "no-container-entrypoint");
	case OPT_REMAP_ROOT:
	case OPT_NO_REMAP_ROOT:
		return set_choice(&berth.remap_root, id == OPT_REMAP_ROOT ? BERTH_YES : BERTH_NO,
				  "container-remap-root", "no-container-remap-root");
	case OPT_VERBOSE: berth.verbose = BERTH_YES; return 0;
	case OPT_ENTRYPOINT_LOG: berth.entrypoint_log = BERTH_YES; return 0;
	default: return -1;
	}
}

/* Same names as pyxis where the meaning is the same. */
static struct spank_option options[] = {
	{"container-image", "IMAGE",
	 "[berth] run in a container made from IMAGE: a docker-save archive "
	 "PATH[#REPO:TAG], an http(s):// or file:// URL of one, or (singularity) "
	 "a .sif/squashfs file",
	 1, OPT_IMAGE, on_option},
	{"container-runtime", "NAME",
	 "[berth] charliecloud, singularity, apptainer or docker (default: the "
	 "site's DefaultRuntime)",
	 1, OPT_RUNTIME, on_option},
	{"container-mounts", "SRC:DST[:ro|rw][,...]",
	 "[berth] bind host folders or files into the container", 1, OPT_MOUNTS, on_option},
	{"container-workdir", "DIR",
	 "[berth] working directory inside the container (default: the image's)",
	 1, OPT_WORKDIR, on_option},
	{"container-env", "NAME[,NAME...]",
	 "[berth] these variables keep the job's value even where the image sets "
	 "them", 1, OPT_ENV, on_option},
	{"container-name", "NAME[:MODE]",
	 "[berth] keep the container (its writable layer) under NAME: later steps on "
	 "the node reuse it with their changes, and a step joins it while it runs. "
	 "MODE: auto (default), create, exec, no_create, no_exec. Kept until the "
	 "job ends (the site's ContainerScope)", 1, OPT_NAME, on_option},
	{"container-save", "PATH",
	 "[berth] when the step ends, write the container (its image and its "
	 "changes) to PATH as a docker-save archive that berth and Docker run; "
	 "the container is writable", 1, OPT_SAVE, on_option},
	{"container-unshare", "net,ipc,uts",
	 "[berth] give the container namespaces of its own (pyxis 0.24): net "
	 "(loopback only), ipc, uts (hostname); comma-separated",
	 1, OPT_UNSHARE, on_option},
	{"container-devices", "CDI-NAME[,...]",
	 "[berth] give the container these devices too (CDI names, as "
	 "nvidia.com/gpu=0), within the site's AllowedDevices; the GPUs Slurm "
	 "gave the step always reach it", 1, OPT_DEVICES, on_option},
	{"container-mount-home", NULL, "[berth] bind the home folder (site default: MountHome)",
	 0, OPT_HOME, on_option},
	{"no-container-mount-home", NULL, "[berth] do not bind the home folder",
	 0, OPT_NO_HOME, on_option},
	{"container-writable", NULL,
	 "[berth] make the container's root writable (changes are discarded or, "
	 "for charliecloud, kept in your image cache)", 0, OPT_WRITABLE, on_option},
	{"container-readonly", NULL, "[berth] keep the container's root read-only (default)",
	 0, OPT_READONLY, on_option},
	{"container-entrypoint", NULL, "[berth] run the image's ENTRYPOINT before the command",
	 0, OPT_ENTRYPOINT, on_option},
	{"no-container-entrypoint", NULL, "[berth] do not run the ENTRYPOINT (default)",
	 0, OPT_NO_ENTRYPOINT, on_option},
	{"container-remap-root", NULL,
	 "[berth] be uid 0 inside the container, mapped to you (no privilege on the "
	 "node); chown and set*id succeed without effect, so package managers work "
	 "in a writable container", 0, OPT_REMAP_ROOT, on_option},
	{"no-container-remap-root", NULL, "[berth] keep your own uid inside (default)",
	 0, OPT_NO_REMAP_ROOT, on_option},
	{"container-entrypoint-log", NULL,
	 "[berth] show what the image's ENTRYPOINT prints before it starts the "
	 "command (default: hidden, as pyxis does)", 0, OPT_ENTRYPOINT_LOG, on_option},
	{"container-verbose", NULL,
	 "[berth] show the container runtime's own notices in the job's output "
	 "(default: only its warnings and errors)", 0, OPT_VERBOSE, on_option},
	SPANK_OPTIONS_TABLE_END,
};

int berth_options_register(spank_t sp)
{
	for (struct spank_option *opt = options; opt->name; opt++) {
		if (spank_option_register(sp, opt) != ESPANK_SUCCESS) {
			slurm_error(PFX "cannot register --%s", opt->name);
			return -1;
		}
	}
	return 0;
}

/* The value of NAME in the job's environment (remote) or ours (local). */
static char *env_default(spank_t sp, const char *name)
{
	char buf[4096];

	if (spank_context() == S_CTX_REMOTE) {
		if (spank_getenv(sp, name, buf, sizeof(buf)) != ESPANK_SUCCESS)
			return NULL;
		return buf[0] ? strdup(buf) : NULL;
	}
	const char *value = getenv(name);
	return value && *value ? strdup(value) : NULL;
}

static enum berth_tristate *choice_slot(int id)
{
	switch (id) {
	case OPT_HOME: return &berth.mount_home;
	case OPT_WRITABLE: return &berth.writable;
	case OPT_ENTRYPOINT: return &berth.entrypoint;
	case OPT_VERBOSE: return &berth.verbose;
	case OPT_ENTRYPOINT_LOG: return &berth.entrypoint_log;
	case OPT_REMAP_ROOT: return &berth.remap_root;
	default: return NULL;
	}
}

/* Every option's environment name, BERTH_CONTAINER_<suffix>; with the
 * site's PyxisEnvCompat=yes also PYXIS_CONTAINER_<suffix> where pyxis has
 * that name.  A yes/no option has both forms (NO_MOUNT_HOME, READONLY):
 * `inverted` rows say the opposite of the option they set. */
static const struct env_row {
	const char *suffix;
	int id;
	bool inverted, pyxis;
} env_rows[] = {
	{"IMAGE", OPT_IMAGE, false, true},
	{"RUNTIME", OPT_RUNTIME, false, false},
	{"MOUNTS", OPT_MOUNTS, false, true},
	{"WORKDIR", OPT_WORKDIR, false, true},
	{"ENV", OPT_ENV, false, true},
	{"NAME", OPT_NAME, false, true},
	{"SAVE", OPT_SAVE, false, true},
	{"UNSHARE", OPT_UNSHARE, false, false},
	{"DEVICES", OPT_DEVICES, false, false},
	{"MOUNT_HOME", OPT_HOME, false, true},
	{"NO_MOUNT_HOME", OPT_HOME, true, false},
	{"WRITABLE", OPT_WRITABLE, false, true},
	{"READONLY", OPT_WRITABLE, true, true},
	{"ENTRYPOINT", OPT_ENTRYPOINT, false, true},
	{"NO_ENTRYPOINT", OPT_ENTRYPOINT, true, false},
	{"ENTRYPOINT_LOG", OPT_ENTRYPOINT_LOG, false, true},
	{"REMAP_ROOT", OPT_REMAP_ROOT, false, true},
	{"NO_REMAP_ROOT", OPT_REMAP_ROOT, true, false},
	{"VERBOSE", OPT_VERBOSE, false, false},
};

#define N_ENV_ROWS (sizeof(env_rows) / sizeof(*env_rows))

/* 1/yes/true or 0/no/false; anything else is refused, not read as no. */
static int yes_no(const char *name, const char *value, bool *yes)
{
	static const char *const yeses[] = {"1", "yes", "true", "y", "on"};
	static const char *const noes[] = {"0", "no", "false", "n", "off"};

	for (size_t i = 0; i < sizeof(yeses) / sizeof(*yeses); i++) {
		if (!strcasecmp(value, yeses[i]) || !strcasecmp(value, noes[i])) {
			*yes = !strcasecmp(value, yeses[i]);
			return 0;
		}
	}
	slurm_error(PFX "%s=%s: write 1 or 0 (yes/no, true/false)", name, value);
	return -1;
}

/* Fill what the command line (or an earlier prefix) left unset from one
 * prefix's variables.  set_by[] names the variable of this prefix that set
 * a yes/no option, so two that disagree (WRITABLE=1 and READONLY=1) are
 * refused as the two options would be. */
static int from_prefix(spank_t sp, const char *prefix)
{
	char set_by[OPT_COUNT][64] = {{0}};
	bool pyxis = !strcmp(prefix, "PYXIS_CONTAINER_");

	for (size_t i = 0; i < N_ENV_ROWS; i++) {
		const struct env_row *row = &env_rows[i];
		char name[64];
		char **text = string_slot(row->id);
		enum berth_tristate *slot = choice_slot(row->id);

		if (pyxis && !row->pyxis)
			continue;
		snprintf(name, sizeof(name), "%s%s", prefix, row->suffix);
		if (text) {
			if (!*text)
				*text = env_default(sp, name);
			continue;
		}
		if (*slot != BERTH_UNSET && !set_by[row->id][0])
			continue; /* the command line (or BERTH_CONTAINER_*) decided */
		_cleanup_free_ char *value = env_default(sp, name);
		bool yes;
		if (!value)
			continue;
		if (yes_no(name, value, &yes) < 0)
			return -1;
		enum berth_tristate want = yes != row->inverted ? BERTH_YES : BERTH_NO;
		if (set_by[row->id][0] && *slot != want) {
			slurm_error(PFX "%s and %s disagree: unset one", set_by[row->id], name);
			return -1;
		}
		*slot = want;
		snprintf(set_by[row->id], sizeof(set_by[row->id]), "%s", name);
	}
	return 0;
}

int berth_options_from_env(spank_t sp)
{
	if (from_prefix(sp, "BERTH_CONTAINER_") < 0 ||
	    (berth.cfg.pyxis_env_compat && from_prefix(sp, "PYXIS_CONTAINER_") < 0))
		return -1;
	/* the site's ContainerWritable=yes applies to a job that chose
	 * neither --container-writable nor --container-readonly (nor their
	 * variables) */
	if (berth.writable == BERTH_UNSET && berth.cfg.container_writable)
		berth.writable = BERTH_YES;
	return 0;
}

/* Relative paths start where srun, sbatch or salloc ran: their getcwd(),
 * recorded at submission in BERTH_SUBMIT_DIR (each srun records its own,
 * so an srun inside a batch script that changed folder uses that folder),
 * else Slurm's SLURM_SUBMIT_DIR.  Never $PWD: a shell variable anyone can
 * set, which is not where the command ran (PWD=/proc/self/fd named
 * slurmstepd's own descriptors).  The nodes open what the path names only
 * as the job user, in a process of its own, so the folder decides only
 * which of the user's files is meant. */
#define SUBMIT_CWD_ENV "BERTH_SUBMIT_DIR"

void berth_job_cwd(spank_t sp, char *cwd, size_t len)
{
	if (spank_context() != S_CTX_REMOTE) {
		if (getcwd(cwd, len))
			return;
	} else if ((spank_getenv(sp, SUBMIT_CWD_ENV, cwd, (int)len) == ESPANK_SUCCESS &&
		    cwd[0] == '/') ||
		   (spank_getenv(sp, "SLURM_SUBMIT_DIR", cwd, (int)len) == ESPANK_SUCCESS &&
		    cwd[0] == '/'))
		return;
	snprintf(cwd, len, "/");
}

/* On the submitting side: the job's environment carries our folder. */
static int record_submit_cwd(void)
{
	char cwd[PATH_MAX];

	if (!getcwd(cwd, sizeof(cwd)) || setenv(SUBMIT_CWD_ENV, cwd, 1) < 0) {
		slurm_error(PFX "cannot record the folder the job is submitted from: %s",
			    strerror(errno));
		return -1;
	}
	return 0;
}

/* Parse --container-mounts (relative sources start where the job was
 * submitted) and keep its canonical text: what the nodes' launchers get
 * is absolute and spelled out, whatever the user wrote. */
static int parse_mounts(spank_t sp)
{
	struct berth_err err = {0};
	char cwd[PATH_MAX];

	berth_job_cwd(sp, cwd, sizeof(cwd));
	if (berth_mounts_parse_list_at(berth.mounts, cwd, &berth.mount_list, &berth.n_mounts,
				       &err) < 0) {
		slurm_error(PFX "--container-mounts: %s", err.msg);
		return -1;
	}
	/* Here, as the user who submits; on the node the launcher checks again */
	for (size_t i = 0; spank_context() != S_CTX_REMOTE && i < berth.n_mounts; i++)
		if (berth_mount_check_source(&berth.mount_list[i], true, &err) < 0) {
			slurm_error(PFX "--container-mounts: %s", err.msg);
			return -1;
		}
	char *canonical = berth_mounts_format(berth.mount_list, berth.n_mounts);
	if (!canonical)
		return -1;
	free(berth.mounts);
	berth.mounts = canonical;
	return 0;
}

/* NAME[,NAME...]: no empty item (a stray comma is a typo, not a wish). */
static bool valid_env_names(const char *list)
{
	if (list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,"))
		return false;
	for (const char *p = list; *p; p++)
		if (!(*p == ',' || *p == '_' || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return false;
	return true;
}

/* dockerd://NAME: only for whoever may use Docker themselves (`docker
 * save` as enroot runs it): srun and sbatch run as the user, so the
 * kernel's own check of the socket decides.  A submitting host without
 * the socket leaves it to the node, whose stager asks as the job user. */
static int check_dockerd(const char *img)
{
	const char *name = img + 10;
	const char *sock = berth.cfg.docker_socket;

	if (!*name || strlen(name) > 255 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@") != strlen(name)) {
		slurm_error(PFX "--container-image=%s: give dockerd://REPO[:TAG] or "
			    "dockerd://IMAGE-ID, as `docker images` shows it", img);
		return -1;
	}
	if (access(sock, R_OK | W_OK) == 0 || errno == ENOENT)
		return 0;
	slurm_error(PFX "--container-image=%s: you may not use Docker (%s: %s); dockerd:// "
		    "images are only for users who may run `docker save` themselves "
		    "(members of the socket's group, and root): give a docker-save archive "
		    "instead (docker save IMAGE -o FILE.tar)", img, sock, strerror(errno));
	return -1;
}

/* The image is a URL, a .sif path or an archive path; a local path must
 * be there where the job is submitted (a shared file system, normally). */
static int check_image(void)
{
	const char *img = berth.image;
	_cleanup_free_ char *path = strdup(img);

	if (!path)
		return -1;
	if (strlen(img) > BERTH_IMAGE_MAX) {
		slurm_error(PFX "--container-image is longer than %d bytes; give a shorter "
			    "image name or URL", BERTH_IMAGE_MAX);
		return -1;
	}
	if (!strncmp(img, "http://", 7) || !strncmp(img, "https://", 8) ||
	    !strncmp(img, "file://", 7))
		return 0;
	if (!strncmp(img, "dockerd://", 10))
		return check_dockerd(img);
	/* Any other scheme may be the site importer's: it says on the node. */
	if (strstr(img, "://") && berth.cfg.importer[0])
		return 0;
	if (strstr(img, "://") && strncmp(img, "docker://", 9) != 0) {
		slurm_error(PFX "--container-image=%s: unsupported scheme; use a path, "
			    "an http://, https:// or file:// URL, or a registry image "
			    "(docker://REG/REPO:TAG, REG#REPO:TAG, REPO:TAG)", berth_image_shown());
		return -1;
	}
	if (!strncmp(img, "docker://", 9))
		return 0; /* a registry image: berth resolve checks it */
	char *hash = strrchr(path, '#');
	if (hash)
		*hash = '\0';
	struct berth_imageref ref;
	struct berth_err err = {0};
	if (access(path, R_OK) < 0 && access(img, R_OK) < 0 &&
	    !berth_imageref_looks_like_path(img) &&
	    berth_imageref_parse(img, berth.cfg.default_registry, &ref, &err) == 0)
		return 0; /* a registry image, pinned next */
	if (access(path, R_OK) < 0) {
		slurm_error(PFX "--container-image=%s: cannot read %s: %s; give the path "
			    "of a docker-save archive (docker save IMAGE -o FILE.tar) or a "
			    "registry image (REPO:TAG)%s%s",
			    img, path, strerror(errno), err.msg[0] ? ", which it is not: " : "",
			    err.msg);
		return -1;
	}
	return 0;
}

/* --container-save=PATH: a file in a folder that exists (relative to where
 * the job was submitted); kept absolute for the nodes. */
static int check_save(spank_t sp)
{
	char cwd[PATH_MAX];
	_cleanup_free_ char *abs = NULL;
	const char *path = berth.save;

	if (path[strlen(path) - 1] == '/') {
		slurm_error(PFX "--container-save=%s: give a file name, not a folder", path);
		return -1;
	}
	if (path[0] != '/') {
		berth_job_cwd(sp, cwd, sizeof(cwd));
		if (asprintf(&abs, "%s/%s", cwd, path) < 0)
			return -1;
		path = abs;
	}
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return -1;
	*strrchr(dir, '/') = '\0';
	if (spank_context() != S_CTX_REMOTE && access(dir[0] ? dir : "/", W_OK) < 0) {
		slurm_error(PFX "--container-save=%s: cannot write in %s: %s", berth.save,
			    dir[0] ? dir : "/", strerror(errno));
		return -1;
	}
	if (abs) {
		free(berth.save);
		berth.save = abs;
		abs = NULL;
	}
	return 0;
}

/* --container-devices: CDI names within AllowedDevices, checked on both
 * sides (the node's check is the one that counts). */
static int check_devices(void)
{
	struct berth_err err = {0};
	_cleanup_free_ char *copy = strdup(berth.devices);
	char *save = NULL;

	if (!copy)
		return -1;
	if (berth.devices[0] == ',' || berth.devices[strlen(berth.devices) - 1] == ',' ||
	    strstr(berth.devices, ",,")) {
		slurm_error(PFX "--container-devices=%s: separate CDI names with single commas",
			    berth.devices);
		return -1;
	}
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (berth_device_check(&berth.cfg, t, &err) < 0) {
			slurm_error(PFX "%s", err.msg);
			return -1;
		}
	}
	return 0;
}

static int check_name(void)
{
	struct berth_err err = {0};
	char name[BERTH_NAME_MAX];
	enum berth_name_mode mode;

	if (berth_name_parse(berth.container_name, name, &mode, &err) < 0) {
		slurm_error(PFX "%s", err.msg);
		return -1;
	}
	return 0;
}

/* --container-unshare: a bad word fails here, at submission; the nodes
 * get the canonical list. */
static int check_unshare(void)
{
	struct berth_err err = {0};
	char canonical[32];

	if (berth_unshare_parse(berth.unshare, "--container-unshare", &berth.unshare_mask,
				&err) < 0) {
		slurm_error(PFX "%s", err.msg);
		return -1;
	}
	berth_unshare_format(berth.unshare_mask, canonical, sizeof(canonical));
	free(berth.unshare);
	berth.unshare = strdup(canonical);
	return berth.unshare ? 0 : -1;
}

int berth_options_validate(spank_t sp)
{
	if ((berth.container_name && check_name() < 0) || (berth.save && check_save(sp) < 0) ||
	    (berth.unshare && check_unshare() < 0))
		return -1;
	if (!berth.image && !berth.container_name) {
		if (berth.runtime_name || berth.mounts || berth.workdir || berth.env_names ||
		    berth.unshare || berth.devices)
			slurm_error(PFX "container options given without --container-image: "
				    "they are ignored and the job runs on the host");
		return 0;
	}
	if ((berth.mounts && parse_mounts(sp) < 0) || (berth.devices && check_devices() < 0))
		return -1;
	/* A relative path starts at the container's root, as in pyxis (the
	 * launcher resolves it: berth_workdir_resolve). */
	if (berth.env_names && !valid_env_names(berth.env_names)) {
		slurm_error(PFX "--container-env=%s: give variable names separated by "
			    "single commas, with no empty item", berth.env_names);
		return -1;
	}
	if (berth.image && spank_context() != S_CTX_REMOTE &&
	    (check_image() < 0 || record_submit_cwd() < 0))
		return -1;
	return 0;
}

/* --container-name=JOBID.STEPID[:MODE] joins a running step: no
 * container of its own is named, whatever the format. */
static bool joins_step(const char *name)
{
	char bare[128];

	snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(name, ":"), name);
	return berth_name_is_step(bare);
}

/* What the Singularity at SingularityPath cannot do of the job, asked on
 * the submitting side when the binary is there too (the same probe and
 * words as the node's launcher; where it is not, the step's start says
 * it).  What depends on the image (a working folder it lacks, a .sif
 * given as the image) is left to the node. */
static int check_singularity(struct berth_err *err)
{
	struct berth_sing_runtime rt;
	struct berth_sing_choice choice;
	struct berth_err not_here = {0};
	bool userns;

	/* FUSE is the node's to have: whether berth mounts a SIF there or
	 * keeps a sandbox, the runtime is handed a folder all the same */
	if (berth.runtime != BERTH_RT_SINGULARITY || spank_context() == S_CTX_REMOTE ||
	    access(berth.cfg.singularity_path, X_OK) < 0 ||
	    berth_sing_runtime_probe(berth.cfg.singularity_path, -1, &rt, &not_here) < 0 ||
	    berth_sing_choose_format(&berth.cfg, &rt, NULL, &choice, &not_here) < 0)
		return 0;
	struct berth_sing_ask ask = {
		.uid = getuid(), .format = choice.runs,
		.named = (berth.container_name && !joins_step(berth.container_name)) || berth.save,
		.writable = berth.writable == BERTH_YES,
		.remap_root = berth.remap_root == BERTH_YES,
		.subuid = "/etc/subuid", .subgid = "/etc/subgid"};
	for (size_t i = 0; i < berth.n_mounts; i++) {
		const struct berth_mount *m = &berth.mount_list[i];
		ask.tmpfs |= m->kind == BERTH_MOUNT_TMPFS;
		if (m->kind == BERTH_MOUNT_BIND && (m->flags & BERTH_MNT_NOEXEC) && !ask.noexec)
			ask.noexec = m;
	}
	return berth_sing_check(&rt, &ask, &userns, err);
}

/* Once the runtime is known: what it cannot do is refused here, at
 * submission, with the words the node would use. */
int berth_options_check_runtime(void)
{
	struct berth_err err = {0};

	if (check_singularity(&err) < 0 || berth_runtime_can_mount_all(berth.runtime, berth.mount_list, berth.n_mounts,
					&err) < 0 ||
	    ((berth.container_name || berth.save) &&
	     berth_runtime_can_name(berth.runtime, &err) < 0) ||
	    (berth.remap_root == BERTH_YES &&
	     berth_runtime_can_remap_root(berth.runtime, &err) < 0)) {
		slurm_error(PFX "%s", err.msg);
		return -1;
	}
	return 0;
}

void berth_options_free(void)
{
	for (int id = OPT_IMAGE; id <= OPT_DEVICES; id++) {
		char **slot = string_slot(id);
		free(*slot);
		*slot = NULL;
	}
	free(berth.raw_image);
	berth.raw_image = NULL;
	berth_mounts_free(berth.mount_list, berth.n_mounts);
	berth.mount_list = NULL;
	berth.n_mounts = 0;
	berth.unshare_mask = 0;
}
