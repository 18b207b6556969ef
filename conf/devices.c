/* berth: the device keys (CdiSpecDirs, AllowedDevices) and the check of a
 * device a job names against AllowedDevices.  libc only: the plugin checks
 * --container-devices at submission with it, before anything runs. */
#include <ctype.h>
#include <fnmatch.h>
#include <string.h>

#include "conf/config_int.h"

/* "KIND=NAME" as CDI spells it; with `pattern`, '*' and '?' too. */
static bool device_name_ok(const char *name, bool pattern)
{
	const char *eq = strchr(name, '='), *slash = strchr(name, '/');

	if (!eq || !slash || slash > eq || slash == name || slash + 1 == eq || !eq[1] ||
	    strchr(eq + 1, '=') || strchr(slash + 1, '/'))
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-:=/", *p) &&
		    !(pattern && strchr("*?", *p)))
			return false;
	return true;
}

/* Each item of a comma list, checked by `ok`; `what` says what to write. */
static int parse_list(struct berth_config *cfg, const struct conf_key *key, char *value,
		      bool (*ok)(const char *item), const char *what, struct berth_err *err)
{
	char *field = path_field(cfg, key);
	size_t cap = sizeof(cfg->cdi_spec_dirs);
	char item[PATH_MAX];

	_Static_assert(sizeof(cfg->cdi_spec_dirs) == sizeof(cfg->allowed_devices),
		       "device list fields differ in size");
	if (strlen(value) >= cap)
		return FAIL(err, 0, "%s is longer than %zu characters", key->name, cap - 1);
	for (const char *p = value; *p;) {
		size_t len = strcspn(p, ",");
		snprintf(item, sizeof(item), "%.*s", (int)len, p);
		if (!len || !ok(item))
			return FAIL(err, 0, "bad %s item '%.*s%s'; write %s, separated by commas",
				    key->name, QUOTED(item), what);
		p += len + (p[len] == ',');
	}
	snprintf(field, cap, "%s", value);
	return 0;
}

static bool dir_ok(const char *item)
{
	return item[0] == '/' && !strstr(item, "..") && !strchr(item, ' ');
}

static bool pattern_ok(const char *item)
{
	return device_name_ok(item, true);
}

int conf_parse_cdi_dirs(struct berth_config *cfg, const struct conf_key *key, char *value,
			struct berth_err *err)
{
	return parse_list(cfg, key, value, dir_ok, "absolute folders", err);
}

int conf_parse_allowed_devices(struct berth_config *cfg, const struct conf_key *key,
			       char *value, struct berth_err *err)
{
	return parse_list(cfg, key, value, pattern_ok,
			  "CDI names KIND=NAME, '*' allowed (nvidia.com/gpu=*)", err);
}

int berth_device_check(const struct berth_config *cfg, const char *name, struct berth_err *err)
{
	char item[256];

	if (!device_name_ok(name, false))
		return berth_fail(err, 0, "--container-devices: '%.*s%s' is not a CDI device "
				  "name; write KIND=NAME, for example nvidia.com/gpu=0", QUOTED(name));
	for (const char *p = cfg->allowed_devices; *p;) {
		size_t len = strcspn(p, ",");
		snprintf(item, sizeof(item), "%.*s", (int)len, p);
		if (fnmatch(item, name, 0) == 0)
			return 0;
		p += len + (p[len] == ',');
	}
	return berth_fail(err, 0, "--container-devices: %s is not among the devices this "
			  "site allows (AllowedDevices=%s); name an allowed one, or leave the "
			  "option out to get the GPUs Slurm gave the step", name,
			  cfg->allowed_devices[0] ? cfg->allowed_devices : "");
}
