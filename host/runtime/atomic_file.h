/* Whole-file writes that readers never see half done. */
#ifndef KD_ATOMIC_FILE_H
#define KD_ATOMIC_FILE_H

#include <stddef.h>

/* Writes len bytes of data to path through PATH.tmp.PID, fsync and rename, so a crash leaves
 * either the old file or the new one. Returns 0, or -1 with errno set (the temporary file is
 * removed). */
int kd_write_file_atomic(const char *path, const void *data, size_t len);

#endif
