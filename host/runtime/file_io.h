/* Whole-file reads of regular files, and whole-file writes that readers never see half done. */
#ifndef KD_FILE_IO_H
#define KD_FILE_IO_H

#include <stddef.h>

#include "runtime/error.h"

/* Reads the regular file `path` whole into a new buffer (*data, free() it) with a '\0' after
 * its *len bytes. A directory, FIFO, device or socket is refused before it is opened (reading
 * a FIFO would block), as is a file larger than max_len bytes or (unless allow_empty) an empty
 * one. Errors name `what` (the flag or role, e.g. "--model x.json") and the reason. */
int kd_read_file(const char *what, const char *path, size_t max_len, int allow_empty,
                 char **data, size_t *len, kd_error *err);

/* Writes len bytes of data to path through PATH.tmp.PID, fsync and rename, so a crash leaves
 * either the old file or the new one. Returns 0, or -1 with errno set (the temporary file is
 * removed). */
int kd_write_file_atomic(const char *path, const void *data, size_t len);

#endif
