/* berth: Apptainer 1.4.5's fixed files, verbatim: the /.singularity.d
 * actions, env scripts and startscript, and the static end of the OCI
 * runscript template (internal/pkg/build/sources/base_environment.go and
 * conveyorPacker_oci.go).  3-clause BSD, Copyright Contributors to the
 * Apptainer project, Sylabs Inc. and others: see the headers they carry. */
#include "executor/convert/sing_fixed.h"

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

const char berth_sing_actions_exec[] =
	APPTAINER_HEADER LICENSE_SHORT
	"\n"
	"for script in /.singularity.d/env/*.sh; do\n"
	"    if [ -f \"$script\" ]; then\n"
	"        . \"$script\"\n"
	"    fi\n"
	"done\n"
	"\n"
	"exec \"$@\"\n";

const char berth_sing_actions_run[] =
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

const char berth_sing_actions_shell[] =
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

const char berth_sing_actions_start[] =
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

const char berth_sing_actions_test[] =
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

const char berth_sing_env_01_base_sh[] =
	APPTAINER_HEADER LICENSE_URL OLD_COPYRIGHTS;

const char berth_sing_env_90_environment_sh[] =
	APPTAINER_HEADER LICENSE_URL
	"\n"
	"# Custom environment shell code should follow\n";

const char berth_sing_env_95_apps_sh[] =
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

const char berth_sing_env_99_base_sh[] =
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

const char berth_sing_env_99_runtimevars_sh[] =
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

const char berth_sing_startscript[] =
	APPTAINER_HEADER LICENSE_SHORT;

/* The OCI runscript template's static end (conveyorPacker_oci.go). */
const char berth_sing_runscript_tail[] =
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
