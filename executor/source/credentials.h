/* berth: the user's registry credentials file and `berth login`'s writing
 * of it.  The registry client reads it (registry.h says which files, in
 * which format); registry.h includes this header. */
#ifndef BERTH_CREDENTIALS_H
#define BERTH_CREDENTIALS_H

#include "conf/error.h"

#define BERTH_CREDENTIALS_FILE ".config/berth/credentials"

/* Store credentials for `registry` in the user's credentials file (created
 * 0600, replaced with rename(); other machines' lines kept).  `home` NULL:
 * $HOME, else the password database, as for reading them. */
int berth_registry_save_login(const char *home, const char *registry, const char *user,
			      const char *password, struct berth_err *err);

#endif
