#include "conf/names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const mode_names[] = {"auto", "create", "exec", "no_create", "no_exec"};

const char *berth_name_mode_str(enum berth_name_mode mode)
{
	return mode_names[mode];
}

int berth_name_parse(const char *text, char name[BERTH_NAME_MAX], enum berth_name_mode *mode,
		     struct berth_err *err)
{
	const char *colon = strchr(text, ':');
	size_t len = colon ? (size_t)(colon - text) : strlen(text);

	*mode = BERTH_NAME_AUTO;
	if (len == 0 || len >= BERTH_NAME_MAX)
		return berth_fail(err, 0, "--container-name=%s: give a name of 1 to %d "
				  "characters", text, BERTH_NAME_MAX - 1);
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '_' || c == '.' || c == '-'));
		if (!ok)
			return berth_fail(err, 0, "--container-name=%s: a name is letters, digits "
					  "and _ . - (not first), no '/'", text);
	}
	snprintf(name, BERTH_NAME_MAX, "%.*s", (int)len, text);
	if (!colon || !colon[1])
		return colon ? berth_fail(err, 0, "--container-name=%s: an empty mode after "
					  "':'", text) : 0;
	for (size_t m = 0; m < sizeof(mode_names) / sizeof(*mode_names); m++)
		if (!strcmp(colon + 1, mode_names[m])) {
			*mode = (enum berth_name_mode)m;
			return 0;
		}
	return berth_fail(err, 0, "--container-name=%s: the mode must be auto, create, exec, "
			  "no_create or no_exec", text);
}

bool berth_name_is_step(const char *name)
{
	size_t job = strspn(name, "0123456789");

	return job > 0 && name[job] == '.' && name[job + 1] &&
	       strspn(name + job + 1, "0123456789") == strlen(name + job + 1);
}
