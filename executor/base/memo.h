/* berth: small answers remembered in a file of the user's cache folder
 * (what an installed program can do, asked once), so that a warm start
 * costs a read instead of a spawn.  The file holds one key line and one
 * answer line; the key says what the answer depends on (a program's path,
 * device, inode, size and mtime, the kernel release...).  Written by
 * rename(), read best effort: a missing, foreign or damaged file only
 * costs asking again. */
#ifndef BERTH_MEMO_H
#define BERTH_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* "PATH DEV INO SIZE MTIME.NSEC" of `path` into key (no newline); -1 with
 * errno when it cannot be stat'ed. */
int berth_memo_file_key(const char *path, char *key, size_t len);

/* The answer remembered in dir_fd/name under `key` (copied into answer,
 * without its newline), and when it was written (*written, may be NULL).
 * false when dir_fd is -1, the file is missing or holds another key. */
bool berth_memo_get(int dir_fd, const char *name, const char *key, char *answer,
		    size_t len, time_t *written);

/* Remember `answer` (one line) under `key`.  Best effort: a race or a full
 * disk only costs asking again next time. */
void berth_memo_put(int dir_fd, const char *name, const char *key, const char *answer);

#endif
