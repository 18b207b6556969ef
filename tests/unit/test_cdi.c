/* Unit tests for executor/runtime/cdi*.c: JSON and YAML specs of CDI 0.5 to
 * 0.8, the edits of chosen devices, folder priority, the step's GPUs from
 * Slurm's environment, and each refusal naming the file and the field
 * (bad specs, specs not root's or writable by others). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config.h"
#include "executor/runtime/cdi.h"
#include "executor/base/strv.h"
#include "helpers.h"

/* /dev/null stands in for a GPU node: the reader checks the host has one */
static const char yaml_spec[] =
	"---\n"
	"cdiVersion: 0.5.0\n"
	"kind: nvidia.com/gpu\n"
	"devices:\n"
	"- name: \"0\"\n"
	"  containerEdits:\n"
	"    deviceNodes:\n"
	"    - path: /dev/nvidia0\n"
	"      hostPath: /dev/null\n"
	"      type: c\n"
	"      major: 1\n"
	"      minor: 3\n"
	"- name: all\n"
	"  containerEdits:\n"
	"    deviceNodes:\n"
	"    - {path: /dev/nvidia0, hostPath: /dev/null}\n"
	"    - {path: /dev/nvidia1, hostPath: /dev/zero}\n"
	"containerEdits:\n"
	"  env:\n"
	"  - NVIDIA_VISIBLE_DEVICES=void\n"
	"  deviceNodes:\n"
	"  - path: /dev/nvidiactl\n"
	"    hostPath: /dev/full\n"
	"  mounts:\n"
	"  - hostPath: /usr/lib/libnvidia-ml.so.1\n"
	"    containerPath: /usr/lib/libnvidia-ml.so.1\n"
	"    options: [ro, nosuid, nodev, bind]\n";

static const char json_spec[] =
	"{\"cdiVersion\": \"0.8.0\", \"kind\": \"example.com/net\","
	" \"devices\": [{\"name\": \"eth\", \"annotations\": {\"a\": \"b\"},"
	"   \"containerEdits\": {\"env\": [\"NET=1\"], \"additionalGids\": [44],"
	"     \"hooks\": [{\"hookName\": \"createContainer\", \"path\": \"/usr/bin/true\","
	"                  \"args\": [\"true\"]}]}}]}";

static int setup(void **state)
{
	return fixture_setup(state, "/tmp/berth-cdi-XXXXXX", "etc", "run");
}

static void put(const struct fixture *fx, const char *dir, const char *name, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	(void)fx;
}

static void load_ok(struct berth_cdi_registry *reg, const char *dirs)
{
	struct berth_err err = {0};

	reg->owner = getuid();
	if (berth_cdi_load_dirs(reg, dirs, &err) < 0)
		fail_msg("refused: %s", err.msg);
}

static void load_refused(struct fixture *fx, const char *text, const char *name,
			 const char *phrase1, const char *phrase2)
{
	struct berth_cdi_registry reg = {.owner = getuid()};
	struct berth_err err = {0};

	put(fx, fx->tree, name, text);
	assert_int_equal(berth_cdi_load_dirs(&reg, fx->tree, &err), -1);
	if (!strstr(err.msg, phrase1) || !strstr(err.msg, phrase2) || !strstr(err.msg, name))
		fail_msg("message '%s' lacks '%s', '%s' or the file", err.msg, phrase1, phrase2);
	berth_cdi_free(&reg);
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", fx->tree, name);
	unlink(path);
}

static const char *env_of(const struct berth_cdi_edits *e, const char *kv)
{
	for (size_t i = 0; i < e->n_env; i++)
		if (!strcmp(e->env[i], kv))
			return e->env[i];
	return NULL;
}

static const struct berth_mount *mount_at(const struct berth_cdi_edits *e, const char *dst)
{
	for (size_t i = 0; i < e->n_mounts; i++)
		if (!strcmp(e->mounts[i].dst, dst))
			return &e->mounts[i];
	return NULL;
}

static void yaml_device_edits(void **state)
{
	struct fixture *fx = *state;
	struct berth_cdi_registry reg = {0};
	struct berth_cdi_edits e = {0};
	struct berth_err err = {0};

	put(fx, fx->tree, "nvidia.yaml", yaml_spec);
	load_ok(&reg, fx->tree);
	assert_int_equal(reg.n_devices, 2);
	char *names[] = {"nvidia.com/gpu=0", NULL};
	assert_int_equal(berth_cdi_edits_of(&reg, names, fx->tree, &e, &err), 0);
	/* the spec's own edits and the device's, nothing of gpu=all */
	assert_int_equal(e.n_mounts, 3);
	assert_string_equal(mount_at(&e, "/dev/nvidia0")->src, "/dev/null");
	assert_non_null(mount_at(&e, "/dev/nvidiactl"));
	assert_null(mount_at(&e, "/dev/nvidia1"));
	const struct berth_mount *lib = mount_at(&e, "/usr/lib/libnvidia-ml.so.1");
	assert_non_null(lib);
	assert_true(lib->read_only);
	assert_int_equal(lib->flags, BERTH_MNT_NOSUID | BERTH_MNT_NODEV);
	assert_non_null(env_of(&e, "NVIDIA_VISIBLE_DEVICES=void"));
	assert_int_equal(e.n_nodes, 2);
	berth_cdi_edits_free(&e);
	berth_cdi_free(&reg);
}

static void json_hooks_and_gids(void **state)
{
	struct fixture *fx = *state;
	struct berth_cdi_registry reg = {0};
	struct berth_cdi_edits e = {0};
	struct berth_err err = {0};

	put(fx, fx->tree, "net.json", json_spec);
	load_ok(&reg, fx->tree);
	char *names[] = {"example.com/net=eth", NULL};
	assert_int_equal(berth_cdi_edits_of(&reg, names, NULL, &e, &err), 0);
	assert_int_equal(e.n_hooks, 1);
	assert_string_equal(e.hooks[0].hook_name, "createContainer");
	assert_non_null(strstr(e.hooks[0].file, "net.json"));
	assert_int_equal(e.n_gids, 1);
	assert_int_equal(e.gids[0], 44);
	berth_cdi_edits_free(&e);
	/* a device no spec defines: named, with the folders */
	char *missing[] = {"nvidia.com/gpu=7", NULL};
	assert_int_equal(berth_cdi_edits_of(&reg, missing, fx->tree, &e, &err), -1);
	assert_non_null(strstr(err.msg, "nvidia.com/gpu=7"));
	assert_non_null(strstr(err.msg, fx->tree));
	berth_cdi_edits_free(&e);
	berth_cdi_free(&reg);
}

/* /var/run/cdi (later) wins over /etc/cdi; two files of one folder clash */
static void later_folder_wins(void **state)
{
	struct fixture *fx = *state;
	struct berth_cdi_registry reg = {0};
	struct berth_cdi_edits e = {0};
	struct berth_err err = {0};
	char dirs[256];

	assert_int_equal(mkdir(fx->out, 0755), 0);
	put(fx, fx->tree, "a.json", json_spec);
	put(fx, fx->out, "b.yaml",
	    "cdiVersion: \"0.6.0\"\nkind: example.com/net\ndevices:\n- name: eth\n"
	    "  containerEdits: {env: [NET=2]}\n");
	snprintf(dirs, sizeof(dirs), "%s,%s,/nonexistent/cdi", fx->tree, fx->out);
	load_ok(&reg, dirs);
	char *names[] = {"example.com/net=eth", NULL};
	assert_int_equal(berth_cdi_edits_of(&reg, names, dirs, &e, &err), 0);
	assert_non_null(env_of(&e, "NET=2"));
	assert_null(env_of(&e, "NET=1"));
	berth_cdi_edits_free(&e);
	berth_cdi_free(&reg);
	put(fx, fx->out, "c.json", json_spec);
	reg.owner = getuid();
	assert_int_equal(berth_cdi_load_dirs(&reg, dirs, &err), -1);
	assert_non_null(strstr(err.msg, "both"));
	assert_non_null(strstr(err.msg, "c.json"));
	berth_cdi_free(&reg);
}

static void bad_specs(void **state)
{
	struct fixture *fx = *state;

	load_refused(fx, "cdiVersion: 0.3.0\nkind: a.com/b\ndevices: [{name: x, containerEdits: {}}]\n",
		     "old.yaml", "cdiVersion", "0.5.0 to 0.8.0");
	load_refused(fx, "kind: a.com/b\ndevices: []\n", "nover.yaml", "cdiVersion", "missing");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: nokind\ndevices: [{name: x, containerEdits: {}}]\n",
		     "kind.yaml", "kind", "VENDOR/CLASS");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n"
		     "    mounts:\n    - {hostPath: relative, containerPath: /x}\n",
		     "rel.yaml", "devices[0].containerEdits.mounts[0].hostPath", "absolute");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n"
		     "    deviceNodes:\n    - {path: /dev/nvidia9, hostPath: /nonexistent/nvidia9}\n",
		     "nonode.yaml", "devices[0].containerEdits.deviceNodes[0]", "not a device");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n"
		     "    env: [NOEQUALS]\n", "env.yaml", "env[0]", "NAME=VALUE");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdit: {}\n",
		     "typo.yaml", "devices[0].containerEdit", "not a CDI");
	load_refused(fx, "cdiVersion: 0.6.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n"
		     "    additionalGids: [5]\n", "gids.yaml", "additionalGids", "0.7.0");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n"
		     "    hooks:\n    - {hookName: whenever, path: /bin/true}\n",
		     "hook.yaml", "hooks[0].hookName", "createContainer");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n"
		     "    mounts:\n    - {hostPath: /a, containerPath: /b, options: [suid]}\n",
		     "opts.yaml", "options", "suid");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: [unclosed\n", "broken.yaml", "not valid YAML",
		     "line");
	load_refused(fx, "{\"cdiVersion\": \"0.5.0\",", "broken.json", "not a JSON object", "fix");
	load_refused(fx, "cdiVersion: 0.5.0\nkind: a.com/b\ndevices:\n- name: 'bad name'\n"
		     "  containerEdits: {}\n", "name.yaml", "devices[0].name", "letters");
}

/* Specs are site configuration: writable by others, or another owner's,
 * is refused, for files and for the folder. */
static void refuses_unsafe_files(void **state)
{
	struct fixture *fx = *state;
	struct berth_cdi_registry reg = {.owner = getuid()};
	struct berth_err err = {0};
	char path[256];

	put(fx, fx->tree, "net.json", json_spec);
	snprintf(path, sizeof(path), "%s/net.json", fx->tree);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(berth_cdi_load_dirs(&reg, fx->tree, &err), -1);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "chmod go-w"));
	berth_cdi_free(&reg);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(chmod(fx->tree, 0777), 0);
	assert_int_equal(berth_cdi_load_dirs(&reg, fx->tree, &err), -1);
	assert_non_null(strstr(err.msg, fx->tree));
	assert_non_null(strstr(err.msg, "folder"));
	berth_cdi_free(&reg);
	assert_int_equal(chmod(fx->tree, 0755), 0);
	reg.owner = getuid() + 1; /* as a file root does not own */
	assert_int_equal(berth_cdi_load_dirs(&reg, fx->tree, &err), -1);
	assert_non_null(strstr(err.msg, "not root"));
	berth_cdi_free(&reg);
}

static void names_and_step_gpus(void **state)
{
	struct berth_err err = {0};
	char **names = NULL;
	size_t n = 0;

	(void)state;
	assert_true(berth_cdi_name_valid("nvidia.com/gpu=0"));
	assert_true(berth_cdi_name_valid("nvidia.com/gpu=GPU-4a7e6c1d-0b2f-11ee-be56-0242ac120002"));
	assert_true(berth_cdi_name_valid("nvidia.com/gpu=all"));
	assert_false(berth_cdi_name_valid("nvidia.com/gpu"));
	assert_false(berth_cdi_name_valid("gpu=0"));
	assert_false(berth_cdi_name_valid("nvidia.com/gpu=0/../x"));
	assert_false(berth_cdi_name_valid("nvidia.com/gpu=a b"));
	/* SLURM_STEP_GPUS first, CUDA_VISIBLE_DEVICES last */
	char *env[] = {"CUDA_VISIBLE_DEVICES=0,1", "SLURM_STEP_GPUS=2,3", NULL};
	assert_int_equal(berth_cdi_step_gpus(env, &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "nvidia.com/gpu=2");
	assert_string_equal(names[1], "nvidia.com/gpu=3");
	assert_null(names[2]);
	char *cuda[] = {"CUDA_VISIBLE_DEVICES=GPU-abc", NULL};
	assert_int_equal(berth_cdi_step_gpus(cuda, &names, &n, &err), 0);
	assert_string_equal(names[2], "nvidia.com/gpu=GPU-abc");
	berth_strv_free(names);
	names = NULL;
	n = 0;
	char *none[] = {"CUDA_VISIBLE_DEVICES=NoDevFiles", NULL};
	assert_int_equal(berth_cdi_step_gpus(none, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	char *hostile[] = {"SLURM_STEP_GPUS=0,../../x", NULL};
	assert_int_equal(berth_cdi_step_gpus(hostile, &names, &n, &err), -1);
	assert_non_null(strstr(err.msg, "../../x"));
	berth_strv_free(names);
}

/* nvidia-ctk's hooks done as edits; any other hook refused, named */
static const char ctk_spec[] =
	"cdiVersion: 0.6.0\n"
	"kind: nvidia.com/gpu\n"
	"devices:\n"
	"- name: \"0\"\n"
	"  containerEdits:\n"
	"    deviceNodes: [{path: /dev/nvidia0, hostPath: /dev/null}]\n"
	"containerEdits:\n"
	"  mounts:\n"
	"  - {hostPath: /host/libcuda.so.535.1, containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.535.1,\n"
	"     options: [ro, nosuid, nodev, bind]}\n"
	"  hooks:\n"
	"  - hookName: createContainer\n"
	"    path: /usr/bin/nvidia-ctk\n"
	"    args: [nvidia-ctk, hook, create-symlinks, --link,\n"
	"           libcuda.so.535.1::/usr/lib/x86_64-linux-gnu/libcuda.so.1]\n"
	"  - hookName: createContainer\n"
	"    path: /usr/bin/nvidia-cdi-hook\n"
	"    args: [nvidia-cdi-hook, update-ldcache, --folder, /usr/lib/x86_64-linux-gnu,\n"
	"           --folder=/usr/lib64]\n"
	"  - hookName: createContainer\n"
	"    path: /usr/bin/nvidia-ctk\n"
	"    args: [nvidia-ctk, hook, chmod, --mode, '755', --path, /dev/dri]\n";

static void nvidia_ctk_hooks(void **state)
{
	struct fixture *fx = *state;
	struct berth_cdi_registry reg = {0};
	struct berth_cdi_plan plan = {0};
	struct berth_err err = {0};

	put(fx, fx->tree, "nvidia.yaml", ctk_spec);
	load_ok(&reg, fx->tree);
	char *names[] = {"nvidia.com/gpu=0", NULL};
	assert_int_equal(berth_cdi_edits_of(&reg, names, NULL, &plan.edits, &err), 0);
	if (berth_cdi_do_hooks(&plan, &err) < 0)
		fail_msg("refused: %s", err.msg);
	const struct berth_mount *link = mount_at(&plan.edits, "/usr/lib/x86_64-linux-gnu/libcuda.so.1");
	assert_non_null(link);
	assert_string_equal(link->src, "/host/libcuda.so.535.1");
	assert_true(link->read_only);
	assert_string_equal(plan.ld_path, "/usr/lib/x86_64-linux-gnu:/usr/lib64");
	berth_cdi_plan_free(&plan);
	berth_cdi_free(&reg);
	/* a hook berth cannot do */
	put(fx, fx->tree, "nvidia.yaml", json_spec);
	load_ok(&reg, fx->tree);
	char *net[] = {"example.com/net=eth", NULL};
	assert_int_equal(berth_cdi_edits_of(&reg, net, NULL, &plan.edits, &err), 0);
	assert_int_equal(berth_cdi_do_hooks(&plan, &err), -1);
	assert_non_null(strstr(err.msg, "createContainer hook /usr/bin/true"));
	assert_non_null(strstr(err.msg, "nvidia.yaml"));
	berth_cdi_plan_free(&plan);
	berth_cdi_free(&reg);
}

/* AllowedDevices and CdiSpecDirs (conf/devices.c) */
static void allowed_devices(void **state)
{
	struct berth_config cfg;
	struct berth_err err = {0};
	char *args_ok[] = {"AllowedDevices=nvidia.com/gpu=*,example.com/fpga=0",
			   "CdiSpecDirs=/etc/cdi,/opt/cdi"};

	(void)state;
	berth_config_defaults(&cfg);
	assert_string_equal(cfg.cdi_spec_dirs, "/etc/cdi,/var/run/cdi");
	/* nothing is allowed by default */
	assert_int_equal(berth_device_check(&cfg, "nvidia.com/gpu=0", &err), -1);
	assert_non_null(strstr(err.msg, "AllowedDevices"));
	assert_int_equal(berth_config_load_args(&cfg, 2, args_ok, &err), 0);
	assert_string_equal(cfg.cdi_spec_dirs, "/etc/cdi,/opt/cdi");
	assert_int_equal(berth_device_check(&cfg, "nvidia.com/gpu=3", &err), 0);
	assert_int_equal(berth_device_check(&cfg, "example.com/fpga=0", &err), 0);
	assert_int_equal(berth_device_check(&cfg, "example.com/fpga=1", &err), -1);
	assert_non_null(strstr(err.msg, "example.com/fpga=1 is not among"));
	assert_int_equal(berth_device_check(&cfg, "gpu0", &err), -1);
	assert_non_null(strstr(err.msg, "not a CDI device name"));
	char *bad_dirs[] = {"CdiSpecDirs=relative/cdi"};
	assert_int_equal(berth_config_load_args(&cfg, 1, bad_dirs, &err), -1);
	assert_non_null(strstr(err.msg, "CdiSpecDirs"));
	char *bad_pat[] = {"AllowedDevices=nvidia.com/gpu"};
	assert_int_equal(berth_config_load_args(&cfg, 1, bad_pat, &err), -1);
	assert_non_null(strstr(err.msg, "KIND=NAME"));
	berth_config_free(&cfg);
}

/* NVIDIA_DRIVER_CAPABILITIES: each file by libnvidia-container's lists;
 * nodes and unknown files stay; 32-bit ones need compat32. */
static void driver_capabilities(void **state)
{
	(void)state;
	static const char *const dsts[] = {
		"/dev/nvidia0", "/usr/bin/nvidia-smi", "/usr/lib/libcuda.so.1",
		"/usr/lib/libcudart.so.12", "/usr/lib/libGLX_nvidia.so.0",
		"/usr/lib/i386-linux-gnu/libcuda.so.1", "/lib/firmware/nvidia/gsp.bin",
		"/usr/lib/libnvidia-encode.so.550",
	};
	const struct {
		const char *caps;
		const char *kept; /* the indexes kept, as digits */
	} cases[] = {
		{NULL, "01236"}, {"", "01236"}, {"utility", "0136"}, {"graphics", "0346"},
		{"compute,compat32", "02356"}, {"video", "0367"}, {"all", "01234567"},
	};
	struct berth_err err = {0};

	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct berth_cdi_edits e = {0};
		const size_t n = sizeof(dsts) / sizeof(*dsts);
		e.mounts = calloc(n, sizeof(*e.mounts));
		e.nodes = calloc(1, sizeof(char *));
		assert_non_null(e.mounts);
		assert_non_null(e.nodes);
		for (size_t i = 0; i < n; i++) {
			e.mounts[i].src = strdup("/dev/null");
			e.mounts[i].dst = strdup(dsts[i]);
		}
		e.n_mounts = n;
		e.nodes[0] = strdup(dsts[0]);
		e.n_nodes = 1;
		assert_int_equal(berth_cdi_filter_caps(&e, cases[c].caps, &err), 0);
		char got[16] = "";
		for (size_t i = 0; i < e.n_mounts; i++)
			for (size_t j = 0; j < n; j++)
				if (!strcmp(e.mounts[i].dst, dsts[j]))
					got[strlen(got)] = (char)('0' + j);
		assert_string_equal(got, cases[c].kept);
		berth_cdi_edits_free(&e);
	}
	struct berth_cdi_edits none = {0};
	assert_int_equal(berth_cdi_filter_caps(&none, "compute,bogus", &err), -1);
	assert_non_null(strstr(err.msg, "NVIDIA_DRIVER_CAPABILITIES has 'bogus'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(yaml_device_edits, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(json_hooks_and_gids, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(later_folder_wins, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(bad_specs, setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(refuses_unsafe_files, setup, fixture_teardown),
		cmocka_unit_test(names_and_step_gpus),
		cmocka_unit_test(allowed_devices),
		cmocka_unit_test_setup_teardown(nvidia_ctk_hooks, setup, fixture_teardown),
		cmocka_unit_test(driver_capabilities),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
