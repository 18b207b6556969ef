/* berth: NVIDIA's image conventions on the CDI edits of a container
 * (cdi.h): NVIDIA_DRIVER_CAPABILITIES picks which driver files are
 * mounted, NVIDIA_VISIBLE_DEVICES=none keeps the driver without the GPUs.
 *
 * The capability of a driver file is the one libnvidia-container gives it
 * (its lists of utility, compute, video, graphics, display and ngx
 * binaries and libraries, nvc_info.c); a file none of them names (firmware,
 * a site's own) is mounted whatever the image asks, as before.
 *
 * And which GPUs Slurm's list means under ConstrainDevices: per task
 * (--gpus-per-task), Slurm 22.05 numbers a task's GPUs among those its
 * device cgroup allows, as CUDA counts them. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/runtime/cdi.h"

enum cap {
	CAP_UTILITY = 1 << 0,
	CAP_COMPUTE = 1 << 1,
	CAP_VIDEO = 1 << 2,
	CAP_GRAPHICS = 1 << 3,
	CAP_DISPLAY = 1 << 4,
	CAP_NGX = 1 << 5,
	CAP_COMPAT32 = 1 << 6,
	CAP_ALL = (1 << 7) - 1,
};

static const struct {
	const char *name;
	unsigned cap;
} cap_names[] = {
	{"utility", CAP_UTILITY}, {"compute", CAP_COMPUTE}, {"video", CAP_VIDEO},
	{"graphics", CAP_GRAPHICS}, {"display", CAP_DISPLAY}, {"ngx", CAP_NGX},
	{"compat32", CAP_COMPAT32}, {"all", CAP_ALL},
};

/* A library matches "NAME.so" and its versions ("libcuda.so.1"); a tool,
 * or a JSON file, its exact name. */
static const struct {
	const char *file;
	unsigned cap;
} files[] = {
	{"nvidia-smi", CAP_UTILITY}, {"nvidia-debugdump", CAP_UTILITY},
	{"nvidia-persistenced", CAP_UTILITY}, {"nv-fabricmanager", CAP_UTILITY},
	{"libnvidia-ml.so", CAP_UTILITY}, {"libnvidia-cfg.so", CAP_UTILITY},
	{"libnvidia-nscq.so", CAP_UTILITY},
	{"nvidia-cuda-mps-control", CAP_COMPUTE}, {"nvidia-cuda-mps-server", CAP_COMPUTE},
	{"libcuda.so", CAP_COMPUTE}, {"libcudadebugger.so", CAP_COMPUTE},
	{"libnvidia-opencl.so", CAP_COMPUTE}, {"libnvidia-gpucomp.so", CAP_COMPUTE},
	{"libnvidia-ptxjitcompiler.so", CAP_COMPUTE},
	{"libnvidia-fatbinaryloader.so", CAP_COMPUTE}, {"libnvidia-allocator.so", CAP_COMPUTE},
	{"libnvidia-compiler.so", CAP_COMPUTE}, {"libnvidia-pkcs11.so", CAP_COMPUTE},
	{"libnvidia-pkcs11-openssl3.so", CAP_COMPUTE}, {"libnvidia-nvvm.so", CAP_COMPUTE},
	{"libvdpau_nvidia.so", CAP_VIDEO}, {"libnvidia-encode.so", CAP_VIDEO},
	{"libnvidia-opticalflow.so", CAP_VIDEO}, {"libnvcuvid.so", CAP_VIDEO},
	{"libnvidia-eglcore.so", CAP_GRAPHICS}, {"libnvidia-glcore.so", CAP_GRAPHICS},
	{"libnvidia-tls.so", CAP_GRAPHICS}, {"libnvidia-glsi.so", CAP_GRAPHICS},
	{"libnvidia-fbc.so", CAP_GRAPHICS}, {"libnvidia-ifr.so", CAP_GRAPHICS},
	{"libnvidia-rtcore.so", CAP_GRAPHICS}, {"libnvoptix.so", CAP_GRAPHICS},
	{"libGLX_nvidia.so", CAP_GRAPHICS}, {"libEGL_nvidia.so", CAP_GRAPHICS},
	{"libGLESv2_nvidia.so", CAP_GRAPHICS}, {"libGLESv1_CM_nvidia.so", CAP_GRAPHICS},
	{"libnvidia-glvkspirv.so", CAP_GRAPHICS}, {"libnvidia-cbl.so", CAP_GRAPHICS},
	{"libnvidia-egl-gbm.so", CAP_GRAPHICS}, {"libnvidia-egl-wayland.so", CAP_GRAPHICS},
	{"libnvidia-vulkan-producer.so", CAP_GRAPHICS}, {"nvidia-drm_gbm.so", CAP_GRAPHICS},
	{"nvidia_icd.json", CAP_GRAPHICS}, {"nvidia_layers.json", CAP_GRAPHICS},
	{"10_nvidia.json", CAP_GRAPHICS}, {"15_nvidia_gbm.json", CAP_GRAPHICS},
	{"10_nvidia_wayland.json", CAP_GRAPHICS},
	{"nvidia_drv.so", CAP_DISPLAY}, {"libglxserver_nvidia.so", CAP_DISPLAY},
	{"libnvidia-ngx.so", CAP_NGX}, {"nvidia-ngx-updater", CAP_NGX},
};

/* The capability `path` needs, or 0 for a file no list names. */
static unsigned file_cap(const char *path)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		size_t len = strlen(files[i].file);
		bool lib = len > 3 && !strcmp(files[i].file + len - 3, ".so");
		if (!strncmp(base, files[i].file, len) &&
		    (base[len] == '\0' || (lib && base[len] == '.')))
			return files[i].cap;
	}
	return 0;
}

/* A 32-bit library folder (Debian's multiarch, or lib32). */
static bool lib32(const char *path)
{
	return strstr(path, "/i386-linux-gnu/") || strstr(path, "/lib32/");
}

static int parse_caps(const char *caps, unsigned *out, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(caps && *caps ? caps : "utility,compute");
	char *save = NULL;

	if (!copy)
		return berth_fail(err, ENOMEM, "driver capabilities");
	*out = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i = 0;
		while (i < sizeof(cap_names) / sizeof(*cap_names) && strcmp(cap_names[i].name, t) != 0)
			i++;
		if (i == sizeof(cap_names) / sizeof(*cap_names))
			return berth_fail(err, 0, "NVIDIA_DRIVER_CAPABILITIES has '%.40s', not one of "
					  "compute, utility, graphics, video, display, ngx, compat32, "
					  "all; fix the image's variable or set it with --container-env",
					  t);
		*out |= cap_names[i].cap;
	}
	return 0;
}

void berth_cdi_drop_mount(struct berth_cdi_edits *e, const char *dst)
{
	for (size_t i = 0; i < e->n_nodes; i++) {
		if (!strcmp(e->nodes[i], dst)) {
			free(e->nodes[i]);
			memmove(&e->nodes[i], &e->nodes[i + 1], (e->n_nodes - i - 1) * sizeof(char *));
			e->n_nodes--;
			break;
		}
	}
	for (size_t i = 0; i < e->n_mounts; i++) {
		if (!strcmp(e->mounts[i].dst, dst)) {
			free(e->mounts[i].src);
			free(e->mounts[i].dst);
			memmove(&e->mounts[i], &e->mounts[i + 1],
				(e->n_mounts - i - 1) * sizeof(*e->mounts));
			e->n_mounts--;
			return;
		}
	}
}

int berth_cdi_filter_caps(struct berth_cdi_edits *e, const char *caps, struct berth_err *err)
{
	unsigned want = 0;

	if (parse_caps(caps, &want, err) < 0)
		return -1;
	for (size_t i = 0; i < e->n_mounts;) {
		const char *dst = e->mounts[i].dst;
		bool node = false;
		for (size_t j = 0; j < e->n_nodes && !node; j++)
			node = !strcmp(e->nodes[j], dst);
		unsigned need = node ? 0 : file_cap(dst);
		if (!node && ((need && !(want & need)) || (lib32(dst) && !(want & CAP_COMPAT32)))) {
			_cleanup_free_ char *gone = strdup(dst);
			if (!gone)
				return berth_fail(err, ENOMEM, "driver capabilities");
			berth_cdi_drop_mount(e, gone);
			continue;
		}
		i++;
	}
	return 0;
}

/* ---- GPUs under ConstrainDevices ---------------------------------------- */

/* May this process open device node `path`?  Only the device cgroup's
 * EPERM says no: a node that fails otherwise (its mode, or a stand-in
 * without a driver: ENXIO) is one the cgroup allows. */
bool berth_cdi_node_allowed(const char *path)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	return errno != EPERM;
}

/* Are all the device nodes of `d` (their host paths) allowed? */
static bool device_allowed(const struct berth_cdi_device *d)
{
	for (size_t i = 0; i < d->edits.n_mounts; i++) {
		const struct berth_mount *m = &d->edits.mounts[i];
		for (size_t j = 0; j < d->edits.n_nodes; j++)
			if (!strcmp(d->edits.nodes[j], m->dst) && !berth_cdi_node_allowed(m->src))
				return false;
	}
	return true;
}

static const struct berth_cdi_device *find_device(const struct berth_cdi_registry *reg,
						  const char *name)
{
	for (size_t i = 0; i < reg->n_devices; i++)
		if (!strcmp(reg->devices[i].name, name))
			return &reg->devices[i];
	return NULL;
}

#define GPU_PREFIX "nvidia.com/gpu="

/* The index of "nvidia.com/gpu=N", or -1 for another name. */
static long gpu_index(const char *name)
{
	const char *n = name + strlen(GPU_PREFIX);
	char *end;

	if (strncmp(name, GPU_PREFIX, strlen(GPU_PREFIX)) != 0 || !isdigit((unsigned char)*n))
		return -1;
	long i = strtol(n, &end, 10);
	return *end || i > 4096 ? -1 : i;
}

int berth_cdi_cgroup_gpus(const struct berth_cdi_registry *reg, char **gpus, size_t n_gpus,
			  struct berth_err *err)
{
	bool denied = false;
	const char *allowed[64];
	size_t n_allowed = 0;

	for (size_t i = 0; i < n_gpus && !denied; i++) {
		const struct berth_cdi_device *d = find_device(reg, gpus[i]);
		denied = d && gpu_index(gpus[i]) >= 0 && !device_allowed(d);
	}
	if (!denied)
		return 0;
	/* Slurm numbered the task's GPUs among those its cgroup allows (as
	 * CUDA counts them): the allowed ones, in index order */
	for (long idx = 0; idx <= 4096 && n_allowed < 64; idx++) {
		char name[64];
		snprintf(name, sizeof(name), GPU_PREFIX "%ld", idx);
		const struct berth_cdi_device *d = find_device(reg, name);
		if (d && device_allowed(d))
			allowed[n_allowed++] = d->name;
	}
	for (size_t i = 0; i < n_gpus; i++) {
		long k = gpu_index(gpus[i]);
		if (k < 0)
			continue; /* a UUID names one GPU wherever it is */
		if ((size_t)k >= n_allowed)
			return berth_fail(err, 0, "the step's GPU %s is not one this task's device "
					  "cgroup allows (ConstrainDevices), which allows %zu; check "
					  "the node's gres.conf against the CDI spec (nvidia-ctk cdi "
					  "generate)", gpus[i], n_allowed);
		char *copy = strdup(allowed[k]);
		if (!copy)
			return berth_fail(err, ENOMEM, "GPUs");
		free(gpus[i]);
		gpus[i] = copy;
	}
	return 0;
}
