/* berth: /.singularity.d and the SIF metadata objects, as Apptainer 1.4.5's
 * `apptainer build X.sif docker-archive:...` writes them (see sing_meta.h).
 *
 * The sources followed: internal/pkg/build/sources/conveyorPacker_oci.go
 * (runscript template, Env quoting, labels.json), base_environment.go
 * (folders, symlinks, files), internal/pkg/build/metadata.go (build labels,
 * definition, inspect metadata), internal/pkg/util/shell/escape.go, and the
 * files of a real 1.4.5 build, compared byte for byte. */
#define _GNU_SOURCE
#include "executor/convert/sing_meta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include "executor/base/jsonval.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/base/fs.h"

#define JSON_DEPTH 64
#define ENV_DIR ".singularity.d/env"

/* ---- Apptainer 1.4.5's fixed files (3-clause BSD; see their headers) ---- */

/* Every fixed file starts with Apptainer's header, then one of its two
 * license notices, some followed by the older copyrights. */
#define APPTAINER_HEADER \
	"#!/bin/sh\n" \
	"# Copyright (c) Contributors to the Apptainer project, established as\n" \
	"#   Apptainer a Series of LF Projects LLC.\n" \
	"#   For website terms of use, trademark policy, privacy policy and other\n" \
	"#   project policies see https://lfprojects.org/policies\n" \
	"# Copyright (c) 2018-2021, Sylabs Inc. All rights reserved.\n"

#define LICENSE_SHORT \
	"# This software is licensed under a 3-clause BSD license. Please consult the\n" \
	"# LICENSE.md file distributed with the sources of this project regarding your\n" \
	"# rights to use or distribute this software.\n"

#define LICENSE_URL \
	"# This software is licensed under a 3-clause BSD license. Please consult\n" \
	"# https://github.com/apptainer/apptainer/blob/main/LICENSE.md regarding your\n" \
	"# rights to use or distribute this software.\n"

#define OLD_COPYRIGHTS \
	"#\n" \
	"# Copyright (c) 2017, SingularityWare, LLC. All rights reserved.\n" \
	"# Copyright (c) 2015-2017, Gregory M. Kurtzer. All rights reserved.\n" \
	"#\n" \
	"# Copyright (c) 2016-2017, The Regents of the University of California,\n" \
	"# through Lawrence Berkeley National Laboratory (subject to receipt of any\n" \
	"# required approvals from the U.S. Dept. of Energy).  All rights reserved.\n" \
	"#\n" \
	"# NOTICE.  This Software was developed under funding from the U.S. Department of\n" \
	"# Energy and the U.S. Government consequently retains certain rights. As such,\n" \
	"# the U.S. Government has been granted for itself and others acting on its\n" \
	"# behalf a paid-up, nonexclusive, irrevocable, worldwide license in the Software\n" \
	"# to reproduce, distribute copies to the public, prepare derivative works, and\n" \
	"# perform publicly and display publicly, and to permit other to do so.\n" \
	"#\n"

static const char actions_exec[] =
	APPTAINER_HEADER LICENSE_SHORT
	"\n"
	"for script in /.singularity.d/env/*.sh; do\n"
	"    if [ -f \"$script\" ]; then\n"
	"        . \"$script\"\n"
	"    fi\n"
	"done\n"
	"\n"
	"exec \"$@\"\n";

static const char actions_run[] =
	APPTAINER_HEADER LICENSE_SHORT
	"\n"
	"for script in /.singularity.d/env/*.sh; do\n"
	"    if [ -f \"$script\" ]; then\n"
	"        . \"$script\"\n"
	"    fi\n"
	"done\n"
	"\n"
	"if test -n \"${SINGULARITY_APPNAME:-}\"; then\n"
	"\n"
	"    if test -x \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript\"; then\n"
	"        exec \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript\" \"$@\"\n"
	"    elif test -x \"/scif/apps/singularity/scif/runscript\"; then\n"
	"        exec \"/scif/apps/singularity/scif/runscript\" \"$@\"\n"
	"    else\n"
	"        echo \"No Apptainer runscript for contained app: ${SINGULARITY_APPNAME:-}\"\n"
	"        exit 1\n"
	"    fi\n"
	"\n"
	"elif test -x \"/.singularity.d/runscript\"; then\n"
	"    exec \"/.singularity.d/runscript\" \"$@\"\n"
	"else\n"
	"    echo \"No Apptainer runscript found, executing /bin/sh\"\n"
	"    exec /bin/sh \"$@\"\n"
	"fi\n";

static const char actions_shell[] =
	APPTAINER_HEADER LICENSE_SHORT
	"\n"
	"for script in /.singularity.d/env/*.sh; do\n"
	"    if [ -f \"$script\" ]; then\n"
	"        . \"$script\"\n"
	"    fi\n"
	"done\n"
	"\n"
	"if test -n \"$SINGULARITY_SHELL\" -a -x \"$SINGULARITY_SHELL\"; then\n"
	"    exec $SINGULARITY_SHELL \"$@\"\n"
	"\n"
	"    echo \"ERROR: Failed running shell as defined by '\\$SINGULARITY_SHELL'\" 1>&2\n"
	"    exit 1\n"
	"\n"
	"elif test -x /bin/bash; then\n"
	"    SHELL=/bin/bash\n"
	"    PS1=\"Apptainer $APPTAINER_NAME:\\\\w> \"\n"
	"    export SHELL PS1\n"
	"    exec /bin/bash --norc \"$@\"\n"
	"elif test -x /bin/sh; then\n"
	"    SHELL=/bin/sh\n"
	"    export SHELL\n"
	"    exec /bin/sh \"$@\"\n"
	"else\n"
	"    echo \"ERROR: /bin/sh does not exist in container\" 1>&2\n"
	"fi\n"
	"exit 1\n";

static const char actions_start[] =
	APPTAINER_HEADER LICENSE_SHORT
	"\n"
	"# if we are here start notify PID 1 to continue\n"
	"# DON'T REMOVE\n"
	"kill -CONT 1\n"
	"\n"
	"for script in /.singularity.d/env/*.sh; do\n"
	"    if [ -f \"$script\" ]; then\n"
	"        . \"$script\"\n"
	"    fi\n"
	"done\n"
	"\n"
	"if test -x \"/.singularity.d/startscript\"; then\n"
	"    exec \"/.singularity.d/startscript\"\n"
	"fi\n";

static const char actions_test[] =
	APPTAINER_HEADER LICENSE_SHORT
	"\n"
	"for script in /.singularity.d/env/*.sh; do\n"
	"    if [ -f \"$script\" ]; then\n"
	"        . \"$script\"\n"
	"    fi\n"
	"done\n"
	"\n"
	"\n"
	"if test -n \"${SINGULARITY_APPNAME:-}\"; then\n"
	"\n"
	"    if test -x \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/test\"; then\n"
	"        exec \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/test\" \"$@\"\n"
	"    elif test -x \"/scif/apps/singularity/scif/test\"; then\n"
	"        exec \"/scif/apps/singularity/scif/test\" \"$@\"\n"
	"    else\n"
	"        echo \"No tests for contained app: ${SINGULARITY_APPNAME:-}\"\n"
	"        exit 1\n"
	"    fi\n"
	"elif test -x \"/.singularity.d/test\"; then\n"
	"    exec \"/.singularity.d/test\" \"$@\"\n"
	"else\n"
	"    echo \"No test found in container, executing /bin/sh -c true\"\n"
	"    exec /bin/sh -c true\n"
	"fi\n";

static const char env_01_base_sh[] =
	APPTAINER_HEADER LICENSE_URL OLD_COPYRIGHTS;

static const char env_90_environment_sh[] =
	APPTAINER_HEADER LICENSE_URL
	"\n"
	"# Custom environment shell code should follow\n";

static const char env_95_apps_sh[] =
	APPTAINER_HEADER LICENSE_URL
	"#\n"
	"# Copyright (c) 2017, SingularityWare, LLC. All rights reserved.\n"
	"#\n"
	"# See the COPYRIGHT.md file at the top-level directory of this distribution and at\n"
	"# https://github.com/apptainer/apptainer/blob/main/COPYRIGHT.md.\n"
	"#\n"
	"# This file is part of the Apptainer Linux container project. It is subject to the license\n"
	"# terms in the LICENSE.md file found in the top-level directory of this distribution and\n"
	"# at https://github.com/apptainer/apptainer/blob/main/LICENSE.md. No part\n"
	"# of Apptainer, including this file, may be copied, modified, propagated, or distributed\n"
	"# except according to the terms contained in the LICENSE.md file.\n"
	"\n"
	"if test -n \"${SINGULARITY_APPNAME:-}\"; then\n"
	"\n"
	"    # The active app should be exported\n"
	"    export SINGULARITY_APPNAME\n"
	"\n"
	"    if test -d \"/scif/apps/${SINGULARITY_APPNAME:-}/\"; then\n"
	"        SCIF_APPS=\"/scif/apps\"\n"
	"        SCIF_APPROOT=\"/scif/apps/${SINGULARITY_APPNAME:-}\"\n"
	"        export SCIF_APPROOT SCIF_APPS\n"
	"        PATH=\"/scif/apps/${SINGULARITY_APPNAME:-}:/scif/apps/singularity:$PATH\"\n"
	"\n"
	"        # Automatically add application bin to path\n"
	"        if test -d \"/scif/apps/${SINGULARITY_APPNAME:-}/bin\"; then\n"
	"            PATH=\"/scif/apps/${SINGULARITY_APPNAME:-}/bin:$PATH\"\n"
	"        elif test -d \"/scif/apps/singularity/bin\"; then\n"
	"            PATH=\"/scif/apps/singularity/bin:$PATH\"\n"
	"        fi\n"
	"\n"
	"        # Automatically add application lib to LD_LIBRARY_PATH\n"
	"        if test -d \"/scif/apps/${SINGULARITY_APPNAME:-}/lib\"; then\n"
	"            LD_LIBRARY_PATH=\"/scif/apps/${SINGULARITY_APPNAME:-}/lib:$LD_LIBRARY_PATH\"\n"
	"            export LD_LIBRARY_PATH\n"
	"        elif test -d \"/scif/apps/singularity/lib\"; then\n"
	"            LD_LIBRARY_PATH=\"/scif/apps/singularity/lib:$LD_LIBRARY_PATH\"\n"
	"            export LD_LIBRARY_PATH\n"
	"        fi\n"
	"\n"
	"        # Automatically source environment\n"
	"        if [ -f \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh\" ]; then\n"
	"            . \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh\"\n"
	"\t\telif [ -f \"/scif/apps/singularity/scif/env/01-base.sh\" ]; then\n"
	"            . \"/scif/apps/singularity/scif/env/01-base.sh\" \"$@\"\n"
	"        fi\n"
	"        if [ -f \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh\" ]; then\n"
	"            . \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh\"\n"
	"\t\telif [ -f \"/scif/apps/singularity/scif/env/90-environment.sh\" ]; then\n"
	"            . \"/scif/apps/singularity/scif/env/90-environment.sh\" \"$@\"\n"
	"        fi\n"
	"\n"
	"        export PATH\n"
	"    else\n"
	"        echo \"Could not locate the container application: ${SINGULARITY_APPNAME}\"\n"
	"        exit 1\n"
	"    fi\n"
	"fi\n";

static const char env_99_base_sh[] =
	APPTAINER_HEADER LICENSE_URL OLD_COPYRIGHTS
	"\n"
	"if [ -z \"${LD_LIBRARY_PATH:-}\" ]; then\n"
	"    LD_LIBRARY_PATH=\"/.singularity.d/libs\"\n"
	"else\n"
	"    LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:/.singularity.d/libs\"\n"
	"fi\n"
	"\n"
	"if [ -z \"${PS1:-}\" ]; then\n"
	"    PS1=\"Apptainer> \"\n"
	"fi\n"
	"export LD_LIBRARY_PATH PS1\n";

static const char env_99_runtimevars_sh[] =
	APPTAINER_HEADER LICENSE_URL
	"#\n"
	"\n"
	"if [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then\n"
	"\tPATH=\"${SING_USER_DEFINED_PREPEND_PATH}:${PATH}\"\n"
	"fi\n"
	"\n"
	"if [ -n \"${SING_USER_DEFINED_APPEND_PATH:-}\" ]; then\n"
	"\tPATH=\"${PATH}:${SING_USER_DEFINED_APPEND_PATH}\"\n"
	"fi\n"
	"\n"
	"if [ -n \"${SING_USER_DEFINED_PATH:-}\" ]; then\n"
	"\tPATH=\"${SING_USER_DEFINED_PATH}\"\n"
	"fi\n"
	"\n"
	"unset SING_USER_DEFINED_PREPEND_PATH \\\n"
	"\t  SING_USER_DEFINED_APPEND_PATH \\\n"
	"\t  SING_USER_DEFINED_PATH\n"
	"\n"
	"export PATH\n";

static const char startscript[] =
	APPTAINER_HEADER LICENSE_SHORT;

/* The OCI runscript template's static end (conveyorPacker_oci.go). */
static const char runscript_tail[] =
	"\n"
	"# Standard Apptainer behavior evaluates CMD / ENTRYPOINT / ARGS\n"
	"# combination through shell before exec, and requires special quoting\n"
	"# due to concatenation of CMDLINE_ARGS.\n"
	"CMDLINE_ARGS=\"\"\n"
	"# prepare command line arguments for evaluation\n"
	"for arg in \"$@\"; do\n"
	"        CMDLINE_ARGS=\"${CMDLINE_ARGS} \\\"$arg\\\"\"\n"
	"done\n"
	"\n"
	"# ENTRYPOINT only - run entrypoint plus args\n"
	"if [ -z \"$OCI_CMD\" ] && [ -n \"$OCI_ENTRYPOINT\" ]; then\n"
	"    if [ $# -gt 0 ]; then\n"
	"        SINGULARITY_OCI_RUN=\"${OCI_ENTRYPOINT} ${CMDLINE_ARGS}\"\n"
	"    else\n"
	"        SINGULARITY_OCI_RUN=\"${OCI_ENTRYPOINT}\"\n"
	"    fi\n"
	"fi\n"
	"\n"
	"# CMD only - run CMD or override with args\n"
	"if [ -n \"$OCI_CMD\" ] && [ -z \"$OCI_ENTRYPOINT\" ]; then\n"
	"    if [ $# -gt 0 ]; then\n"
	"        SINGULARITY_OCI_RUN=\"${CMDLINE_ARGS}\"\n"
	"    else\n"
	"        SINGULARITY_OCI_RUN=\"${OCI_CMD}\"\n"
	"    fi\n"
	"fi\n"
	"\n"
	"# ENTRYPOINT and CMD - run ENTRYPOINT with CMD as default args\n"
	"# override with user provided args\n"
	"if [ $# -gt 0 ]; then\n"
	"    SINGULARITY_OCI_RUN=\"${OCI_ENTRYPOINT} ${CMDLINE_ARGS}\"\n"
	"else\n"
	"    SINGULARITY_OCI_RUN=\"${OCI_ENTRYPOINT} ${OCI_CMD}\"\n"
	"fi\n"
	"\n"
	"# Evaluate shell expressions first and set arguments accordingly,\n"
	"# then execute final command as first container process\n"
	"eval \"set ${SINGULARITY_OCI_RUN}\"\n"
	"exec \"$@\"\n";

/* ---- a growing string ------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_addc(struct sbuf *b, char c)
{
	sb_addn(b, &c, 1);
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char buf[64];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		b->oom = true;
	else
		sb_addn(b, buf, (size_t)n);
}

/* The string, or NULL (and freed) when memory ran out. */
static char *sb_take(struct sbuf *b)
{
	if (b->oom || (!b->p && (sb_addn(b, "", 0), b->oom))) {
		free(b->p);
		*b = (struct sbuf){0};
		return NULL;
	}
	char *p = b->p;
	*b = (struct sbuf){0};
	return p;
}

static void sb_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){0};
}

/* ---- Go's view of strings ---------------------------------------------------- */

/* utf8.DecodeRune: the rune at s and its width; -1 and width 1 when the
 * bytes are not valid UTF-8 (Go's RuneError). */
static size_t utf8_rune(const unsigned char *s, size_t n, int32_t *r)
{
	unsigned c = s[0];
	unsigned lo = 0x80, hi = 0xBF;
	size_t width;

	*r = -1;
	if (c < 0x80) {
		*r = (int32_t)c;
		return 1;
	}
	if (c < 0xC2 || c > 0xF4)
		return 1;
	if (c < 0xE0) {
		width = 2;
		*r = (int32_t)(c & 0x1F);
	} else if (c < 0xF0) {
		width = 3;
		*r = (int32_t)(c & 0x0F);
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else {
		width = 4;
		*r = (int32_t)(c & 0x07);
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	if (n < width) {
		*r = -1;
		return 1;
	}
	for (size_t i = 1; i < width; i++) {
		unsigned cc = s[i];
		if (cc < (i == 1 ? lo : 0x80) || cc > (i == 1 ? hi : 0xBF)) {
			*r = -1;
			return 1;
		}
		*r = (*r << 6) | (int32_t)(cc & 0x3F);
	}
	return width;
}

/* strconv.IsPrint for the code points that matter: ASCII exactly; above
 * it, the separators, format and control characters and private use
 * areas are not printable (Go's tables also exclude unassigned points). */
static bool go_isprint(int32_t r)
{
	if (r < 0x80)
		return r >= 0x20 && r < 0x7F;
	if (r < 0xA1 || r == 0xAD)
		return false;
	if ((r >= 0x600 && r <= 0x605) || r == 0x61C || r == 0x6DD || r == 0x70F ||
	    r == 0x8E2 || r == 0x1680 || r == 0x180E || (r >= 0x2000 && r <= 0x200F) ||
	    (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F) ||
	    r == 0x3000 || (r >= 0xD800 && r <= 0xF8FF) || r == 0xFEFF ||
	    (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE || r == 0xFFFF ||
	    r == 0x110BD || r == 0x110CD || (r >= 0x13430 && r <= 0x1343F) ||
	    (r >= 0x1BCA0 && r <= 0x1BCA3) || (r >= 0x1D173 && r <= 0x1D17A) ||
	    r == 0xE0001 || (r >= 0xE0020 && r <= 0xE007F) || r >= 0xF0000)
		return false;
	return true;
}

static const char hexdig[] = "0123456789abcdef";

/* strconv.Quote */
static void go_quote(struct sbuf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		int32_t r;
		size_t w = utf8_rune(s + i, n - i, &r);
		if (r < 0) {
			sb_printf(b, "\\x%c%c", hexdig[s[i] >> 4], hexdig[s[i] & 15]);
		} else if (r == '"' || r == '\\') {
			sb_addc(b, '\\');
			sb_addc(b, (char)r);
		} else if (go_isprint(r)) {
			sb_addn(b, (const char *)s + i, w);
		} else {
			switch (r) {
			case '\a': sb_add(b, "\\a"); break;
			case '\b': sb_add(b, "\\b"); break;
			case '\f': sb_add(b, "\\f"); break;
			case '\n': sb_add(b, "\\n"); break;
			case '\r': sb_add(b, "\\r"); break;
			case '\t': sb_add(b, "\\t"); break;
			case '\v': sb_add(b, "\\v"); break;
			default:
				if (r < ' ' || r == 0x7F)
					sb_printf(b, "\\x%c%c", hexdig[r >> 4], hexdig[r & 15]);
				else if (r < 0x10000)
					sb_printf(b, "\\u%04x", (unsigned)r);
				else
					sb_printf(b, "\\U%08x", (unsigned)r);
			}
		}
		i += w;
	}
	sb_addc(b, '"');
}

/* encoding/json's string encoding (HTML-safe, as json.Marshal does). */
static void json_str(struct sbuf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c < 0x80) {
			switch (c) {
			case '"': sb_add(b, "\\\""); break;
			case '\\': sb_add(b, "\\\\"); break;
			case '\b': sb_add(b, "\\b"); break;
			case '\f': sb_add(b, "\\f"); break;
			case '\n': sb_add(b, "\\n"); break;
			case '\r': sb_add(b, "\\r"); break;
			case '\t': sb_add(b, "\\t"); break;
			default:
				if (c < 0x20 || c == '<' || c == '>' || c == '&')
					sb_printf(b, "\\u00%c%c", hexdig[c >> 4], hexdig[c & 15]);
				else
					sb_addc(b, (char)c);
			}
			i++;
			continue;
		}
		int32_t r;
		size_t w = utf8_rune(s + i, n - i, &r);
		if (r < 0)
			sb_add(b, "\\ufffd");
		else if (r == 0x2028 || r == 0x2029)
			sb_printf(b, "\\u%04x", (unsigned)r);
		else
			sb_addn(b, (const char *)s + i, w);
		i += w;
	}
	sb_addc(b, '"');
}

/* shell.Escape: \ " ` $ get a backslash. */
static void sh_escape(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"' || *s == '`' || *s == '$')
			sb_addc(b, '\\');
		sb_addc(b, *s);
	}
}

/* shell.EscapeSingleQuotes: ' -> '"'"' */
static void sh_escape_sq(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'')
			sb_add(b, "'\"'\"'");
		else
			sb_addc(b, *s);
	}
}

char *berth_sing_go_quote(const char *s)
{
	struct sbuf b = {0};

	go_quote(&b, s);
	return sb_take(&b);
}

char *berth_sing_json_string(const char *s)
{
	struct sbuf b = {0};

	json_str(&b, s);
	return sb_take(&b);
}

/* ---- env/10-docker2singularity.sh ----------------------------------------- */

static void env_line(struct sbuf *b, const char *entry)
{
	const char *eq = strchr(entry, '=');
	struct sbuf esc = {0};

	if (!eq) {
		sb_add(b, "export ");
		sb_add(b, entry);
		sb_add(b, "=\"${");
		sb_add(b, entry);
		sb_add(b, ":-}\"\n");
		return;
	}
	sh_escape(&esc, eq + 1);
	if (esc.oom) {
		b->oom = true;
		sb_free(&esc);
		return;
	}
	sb_add(b, "export ");
	sb_addn(b, entry, (size_t)(eq - entry));
	if (eq - entry == 4 && !strncmp(entry, "PATH", 4)) {
		sb_addc(b, '=');
		go_quote(b, esc.p ? esc.p : "");
	} else {
		sb_add(b, "=\"${");
		sb_addn(b, entry, (size_t)(eq - entry));
		sb_add(b, ":-");
		go_quote(b, esc.p ? esc.p : "");
		sb_add(b, "}\"");
	}
	sb_addc(b, '\n');
	sb_free(&esc);
}

char *berth_sing_env_line(const char *entry)
{
	struct sbuf b = {0};

	env_line(&b, entry);
	return sb_take(&b);
}

static char *make_env_script(const struct berth_image *img)
{
	struct sbuf b = {0};

	sb_add(&b, "#!/bin/sh\n");
	for (size_t i = 0; i < img->n_env; i++)
		env_line(&b, img->env[i]);
	return sb_take(&b);
}

/* ---- runscript --------------------------------------------------------------- */

/* shell.ArgsQuoted: "a" "b" (each shell.Escape'd), single-quote escaped. */
static void oci_var(struct sbuf *b, const char *name, char *const *v, size_t n)
{
	struct sbuf q = {0};

	for (size_t i = 0; i < n; i++) {
		sb_addc(&q, '"');
		sh_escape(&q, v[i]);
		sb_add(&q, i + 1 < n ? "\" " : "\"");
	}
	sb_add(b, name);
	sb_add(b, "='");
	if (q.oom)
		b->oom = true;
	else if (q.p)
		sh_escape_sq(b, q.p);
	sb_add(b, "'\n");
	sb_free(&q);
}

/* set -- 'vN' "$@" ... set -- 'v1' "$@", one per line. */
static void prepend(struct sbuf *b, char *const *v, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		sb_add(b, "set -- '");
		sh_escape_sq(b, v[i]);
		sb_add(b, "' \"$@\"\n");
	}
}

static char *make_runscript(const struct berth_image *img)
{
	struct sbuf b = {0}, pc = {0}, pe = {0};

	prepend(&pc, img->cmd, img->n_cmd);
	prepend(&pe, img->entrypoint, img->n_entrypoint);
	if (pc.oom || pe.oom)
		b.oom = true;
	const char *cmd = pc.p ? pc.p : "", *ep = pe.p ? pe.p : "";
	sb_add(&b, "#!/bin/sh\n");
	oci_var(&b, "OCI_ENTRYPOINT", img->entrypoint, img->n_entrypoint);
	oci_var(&b, "OCI_CMD", img->cmd, img->n_cmd);
	/* The template, with Go's {{- trimming applied by hand. */
	sb_add(&b, "\n"
		   "# When SINGULARITY_NO_EVAL set, use OCI compatible behavior that does\n"
		   "# not evaluate resolved CMD / ENTRYPOINT / ARGS through the shell, and\n"
		   "# does not modify expected quoting behavior of args.\n"
		   "if [ -n \"$SINGULARITY_NO_EVAL\" ]; then\n"
		   "    # ENTRYPOINT only - run entrypoint plus args\n"
		   "    if [ -z \"$OCI_CMD\" ] && [ -n \"$OCI_ENTRYPOINT\" ]; then\n"
		   "        ");
	sb_add(&b, ep);
	sb_add(&b, "\n"
		   "        exec \"$@\"\n"
		   "    fi\n"
		   "\n"
		   "    # CMD only - run CMD or override with args\n"
		   "    if [ -n \"$OCI_CMD\" ] && [ -z \"$OCI_ENTRYPOINT\" ]; then");
	if (*cmd) {
		sb_add(&b, "\n        if [ $# -eq 0 ]; then\n            ");
		sb_add(&b, cmd);
		sb_add(&b, "\n        fi");
	}
	sb_add(&b, "\n"
		   "        exec \"$@\"\n"
		   "    fi\n"
		   "\n"
		   "    # ENTRYPOINT and CMD - run ENTRYPOINT with CMD as default args\n"
		   "    # override with user provided args");
	if (*ep) {
		sb_add(&b, "\n    if [ $# -gt 0 ]; then\n        ");
		sb_add(&b, ep);
		sb_add(&b, "\n\telse\n        ");
		sb_add(&b, cmd);
		sb_add(&b, "\n        ");
		sb_add(&b, ep);
		sb_add(&b, "\n    fi");
	} else if (*cmd) {
		sb_add(&b, "\n    if [ $# -eq 0 ]; then\n        ");
		sb_add(&b, cmd);
		sb_add(&b, "\n    fi");
	}
	sb_add(&b, "\n    exec \"$@\"\nfi\n");
	sb_add(&b, runscript_tail);
	sb_free(&pc);
	sb_free(&pe);
	return sb_take(&b);
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
static void json_map(struct sbuf *b, const struct kvs *m, bool indent)
{
	if (!m->n) {
		sb_add(b, "{}");
		return;
	}
	sb_addc(b, '{');
	for (size_t i = 0; i < m->n; i++) {
		if (i)
			sb_addc(b, ',');
		if (indent)
			sb_add(b, "\n\t");
		json_str(b, m->v[i].key);
		sb_add(b, indent ? ": " : ":");
		json_str(b, m->v[i].value);
	}
	if (indent)
		sb_addc(b, '\n');
	sb_addc(b, '}');
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

static void oci_sep(struct sbuf *b, bool *first, const char *name)
{
	if (!*first)
		sb_addc(b, ',');
	*first = false;
	json_str(b, name);
	sb_addc(b, ':');
}

static void oci_bool(struct sbuf *b, bool *first, struct json_object *cfg,
		     const char *name)
{
	struct json_object *v = field(cfg, name);

	if (json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)) {
		oci_sep(b, first, name);
		sb_add(b, "true");
	}
}

static void oci_string(struct sbuf *b, bool *first, struct json_object *cfg,
		       const char *name)
{
	const char *s = bj_string(field(cfg, name));

	if (s && *s) {
		oci_sep(b, first, name);
		json_str(b, s);
	}
}

static void oci_strv(struct sbuf *b, bool *first, struct json_object *cfg,
		     const char *name)
{
	struct json_object *v = field(cfg, name);

	if (!json_object_is_type(v, json_type_array) || !json_object_array_length(v))
		return;
	oci_sep(b, first, name);
	sb_addc(b, '[');
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		const char *s = bj_string(json_object_array_get_idx(v, i));
		if (i)
			sb_addc(b, ',');
		json_str(b, s ? s : "");
	}
	sb_addc(b, ']');
}

static void oci_map(struct sbuf *b, bool *first, struct json_object *cfg,
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
		sb_addc(b, '{');
		for (size_t i = 0; i < m.n; i++) {
			if (i)
				sb_addc(b, ',');
			json_str(b, m.v[i].key);
			sb_add(b, ":{}");
		}
		sb_addc(b, '}');
	}
	free(m.v);
}

static void oci_int(struct sbuf *b, bool *first, struct json_object *obj,
		    const char *name)
{
	struct json_object *v = field(obj, name);

	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v)) {
		oci_sep(b, first, name);
		sb_printf(b, "%lld", (long long)json_object_get_int64(v));
	}
}

static void oci_config(struct sbuf *b, struct json_object *cfg)
{
	bool first = true;

	sb_addc(b, '{');
	oci_bool(b, &first, cfg, "AttachStderr");
	oci_bool(b, &first, cfg, "AttachStdin");
	oci_bool(b, &first, cfg, "AttachStdout");
	oci_strv(b, &first, cfg, "Cmd");
	struct json_object *hc = field(cfg, "Healthcheck");
	if (json_object_is_type(hc, json_type_object)) {
		bool hfirst = true;
		oci_sep(b, &first, "Healthcheck");
		sb_addc(b, '{');
		oci_strv(b, &hfirst, hc, "Test");
		oci_int(b, &hfirst, hc, "Interval");
		oci_int(b, &hfirst, hc, "Timeout");
		oci_int(b, &hfirst, hc, "StartPeriod");
		oci_int(b, &hfirst, hc, "Retries");
		sb_addc(b, '}');
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
	sb_addc(b, '}');
}

/* ---- building it all ----------------------------------------------------------- */

/* Apptainer's inspect values: the file's text without its trailing
 * newlines (only those: spaces, tabs and leading blank lines stay, as
 * `apptainer inspect --all --json` of a folder shows). */
static void json_trimmed(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '\n')
		n--;
	_cleanup_free_ char *t = strndup(s, n);
	if (!t)
		b->oom = true;
	else
		json_str(b, t);
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
	__attribute__((cleanup(sb_free))) struct sbuf sb = {0};
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
	if (!(m->labels_json = sb_take(&sb)))
		return -1;

	sb_add(&sb, "bootstrap: ");
	sb_add(&sb, bootstrap);
	sb_add(&sb, "\nfrom: ");
	sb_add(&sb, from);
	sb_add(&sb, "\n\n");
	if (!(m->deffile = sb_take(&sb)))
		return -1;

	/* inspect-metadata.json: `apptainer inspect --all --json`, compact. */
	sb_add(&sb, "{\"data\":{\"attributes\":{\"environment\":{");
	json_str(&sb, "/" ENV_DIR "/10-docker2singularity.sh");
	sb_addc(&sb, ':');
	json_trimmed(&sb, m->env_docker);
	sb_addc(&sb, ',');
	json_str(&sb, "/" ENV_DIR "/90-environment.sh");
	sb_addc(&sb, ':');
	json_trimmed(&sb, env_90_environment_sh);
	sb_add(&sb, "},\"labels\":");
	json_map(&sb, &labels, false);
	sb_add(&sb, ",\"runscript\":");
	json_trimmed(&sb, m->runscript);
	sb_add(&sb, ",\"deffile\":");
	json_trimmed(&sb, m->deffile);
	sb_add(&sb, ",\"startscript\":");
	json_trimmed(&sb, startscript);
	sb_add(&sb, "}},\"type\":\"container\"}");
	if (!(m->inspect_json = sb_take(&sb)))
		return -1;

	oci_config(&sb, cfg);
	if (!(m->oci_config = sb_take(&sb)))
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

/* openat2() beneath dir_fd, or where the kernel (or valgrind) lacks it,
 * openat() with O_NOFOLLOW: every name given here is one component. */
static int open_child(int dir_fd, const char *name, int flags)
{
	int fd = berth_open_beneath(dir_fd, name, flags, 0);

	if (fd < 0 && errno == ENOSYS)
		fd = openat(dir_fd, *name ? name : ".", flags | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* Make folder `path` below root_fd, each missing component exactly 0755
 * (whatever the umask).  Returns an fd of it; -1 with errno ELOOP, ENOTDIR
 * or EXDEV where the image has a symlink or a non-folder on the way (the
 * caller decides), or another errno. */
static int ensure_dir(int root_fd, const char *path)
{
	char name[NAME_MAX + 1];
	int fd = open_child(root_fd, "", O_RDONLY | O_DIRECTORY);

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
		int next = open_child(fd, name, O_RDONLY | O_DIRECTORY);
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

/* Replace dir/name by a new file holding `data`, mode exactly `mode`. */
static int put_file(int dir_fd, const char *dir, const char *name,
		    const char *data, mode_t mode, struct berth_err *err)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return berth_fail(err, EISDIR, "cannot write /%s/%s: the image "
					  "has a folder there", dir, name);
		if (unlinkat(dir_fd, name, 0) < 0)
			return berth_fail(err, errno, "cannot replace /%s/%s", dir, name);
	} else if (errno != ENOENT) {
		return berth_fail(err, errno, "cannot write /%s/%s", dir, name);
	}
	_cleanup_close_ int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL |
					O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || berth_write_all(fd, data, strlen(data)) < 0 || fchmod(fd, mode) < 0)
		return berth_fail(err, errno, "cannot write /%s/%s", dir, name);
	if (close(berth_steal_fd(fd)) < 0)
		return berth_fail(err, errno, "cannot write /%s/%s", dir, name);
	return 0;
}

/* /etc/hosts and /etc/resolv.conf: made empty (0644) as Apptainer does;
 * where the image has a symlink or something else, it stays. */
static int empty_etc_file(int etc_fd, const char *name, struct berth_err *err)
{
	struct stat st;
	int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC;

	if (fstatat(etc_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(st.st_mode))
			return 0;
		flags |= O_TRUNC;
	} else if (errno == ENOENT) {
		flags |= O_CREAT | O_EXCL;
	} else {
		return berth_fail(err, errno, "cannot write /etc/%s", name);
	}
	_cleanup_close_ int fd = openat(etc_fd, name, flags, 0644);
	if (fd < 0 || fchmod(fd, 0644) < 0)
		return berth_fail(err, errno, "cannot write /etc/%s", name);
	return 0;
}

/* An existing definition moves to bootstrap_history/Apptainer<N>. */
static int keep_old_definition(int sd_fd, struct berth_err *err)
{
	struct stat st;

	if (fstatat(sd_fd, "Singularity", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : berth_fail(err, errno, "/.singularity.d/Singularity");
	_cleanup_close_ int hist = ensure_dir(sd_fd, "bootstrap_history");
	if (hist < 0)
		return berth_fail(err, errno, "cannot make /.singularity.d/bootstrap_history");
	int dup_fd = openat(hist, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		int saved = errno;
		if (dup_fd >= 0)
			close(dup_fd);
		return berth_fail(err, saved, "cannot list /.singularity.d/bootstrap_history");
	}
	size_t count = 0;
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			count++;
	closedir(d);
	char name[64];
	snprintf(name, sizeof(name), "Apptainer%zu", count);
	if (renameat(sd_fd, "Singularity", hist, name) < 0)
		return berth_fail(err, errno, "cannot move /.singularity.d/Singularity to "
				  "bootstrap_history/%s", name);
	return 0;
}

int berth_singularity_meta_write(int root_dir_fd, const struct berth_sing_meta *m,
				 struct berth_err *err)
{
	static const char *const dirs[] = {
		".singularity.d/libs", ".singularity.d/actions", ".singularity.d/env",
		"dev", "proc", "root", "var/tmp", "tmp", "etc", "sys", "home",
	};
	static const char *const links[][2] = {
		{"singularity", ".singularity.d/runscript"},
		{".run", ".singularity.d/actions/run"},
		{".exec", ".singularity.d/actions/exec"},
		{".test", ".singularity.d/actions/test"},
		{".shell", ".singularity.d/actions/shell"},
		{"environment", ".singularity.d/env/90-environment.sh"},
	};
	static const struct {
		const char *name, *text;
	} actions[] = {
		{"exec", actions_exec}, {"run", actions_run}, {"shell", actions_shell},
		{"start", actions_start}, {"test", actions_test},
	};
	_cleanup_close_ int root = open_child(root_dir_fd, "", O_RDONLY | O_DIRECTORY);
	struct stat st;

	if (root < 0)
		return berth_fail(err, errno, "cannot open the rootfs folder");
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		int fd = ensure_dir(root, dirs[i]);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		if (!image_choice(errno) || dirs[i][0] == '.')
			return berth_fail(err, errno, "cannot make /%s%s", dirs[i],
					  image_choice(errno) ? " (the image has a "
					  "symlink or a file on the way)" : "");
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(*links); i++) {
		if (fstatat(root, links[i][0], &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue; /* the image's own */
		if (errno != ENOENT || symlinkat(links[i][1], root, links[i][0]) < 0)
			return berth_fail(err, errno, "cannot make the symlink /%s",
					  links[i][0]);
	}
	_cleanup_close_ int etc = ensure_dir(root, "etc");
	if (etc >= 0 && (empty_etc_file(etc, "hosts", err) < 0 ||
			 empty_etc_file(etc, "resolv.conf", err) < 0))
		return -1;

	_cleanup_close_ int sd = ensure_dir(root, ".singularity.d");
	_cleanup_close_ int act = ensure_dir(root, ".singularity.d/actions");
	_cleanup_close_ int env = ensure_dir(root, ENV_DIR);
	if (sd < 0 || act < 0 || env < 0)
		return berth_fail(err, errno, "cannot open /.singularity.d");
	for (size_t i = 0; i < sizeof(actions) / sizeof(*actions); i++)
		if (put_file(act, ".singularity.d/actions", actions[i].name,
			     actions[i].text, 0755, err) < 0)
			return -1;
	if (put_file(env, ENV_DIR, "01-base.sh", env_01_base_sh, 0755, err) < 0 ||
	    put_file(env, ENV_DIR, "10-docker2singularity.sh", m->env_docker, 0755, err) < 0 ||
	    put_file(env, ENV_DIR, "90-environment.sh", env_90_environment_sh, 0755, err) < 0 ||
	    put_file(env, ENV_DIR, "94-appsbase.sh", "", 0755, err) < 0 ||
	    put_file(env, ENV_DIR, "95-apps.sh", env_95_apps_sh, 0755, err) < 0 ||
	    put_file(env, ENV_DIR, "99-base.sh", env_99_base_sh, 0755, err) < 0 ||
	    put_file(env, ENV_DIR, "99-runtimevars.sh", env_99_runtimevars_sh, 0755, err) < 0 ||
	    put_file(sd, ".singularity.d", "runscript", m->runscript, 0755, err) < 0 ||
	    put_file(sd, ".singularity.d", "startscript", startscript, 0755, err) < 0 ||
	    put_file(sd, ".singularity.d", "labels.json", m->labels_json, 0644, err) < 0 ||
	    keep_old_definition(sd, err) < 0 ||
	    put_file(sd, ".singularity.d", "Singularity", m->deffile, 0644, err) < 0)
		return -1;
	return 0;
}
