/* berth: Apptainer 1.4.5's fixed files, verbatim (3-clause BSD; the text is
 * in sing_fixed.c), that sing_meta.c writes into /.singularity.d and into
 * the inspect metadata. */
#ifndef BERTH_SING_FIXED_H
#define BERTH_SING_FIXED_H

/* /.singularity.d/actions/ */
extern const char berth_sing_actions_exec[];
extern const char berth_sing_actions_run[];
extern const char berth_sing_actions_shell[];
extern const char berth_sing_actions_start[];
extern const char berth_sing_actions_test[];

/* /.singularity.d/env/ */
extern const char berth_sing_env_01_base_sh[];
extern const char berth_sing_env_90_environment_sh[];
extern const char berth_sing_env_95_apps_sh[];
extern const char berth_sing_env_99_base_sh[];
extern const char berth_sing_env_99_runtimevars_sh[];

/* /.singularity.d/startscript */
extern const char berth_sing_startscript[];

/* The OCI runscript template's static end (conveyorPacker_oci.go). */
extern const char berth_sing_runscript_tail[];

#endif
