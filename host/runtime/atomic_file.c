/* Whole-file writes through a temporary file and rename. */
#include "runtime/atomic_file.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int kd_write_file_atomic(const char *path, const void *data, size_t len) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) return -1;
  int ok = fwrite(data, 1, len, f) == len;
  ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
  int saved = errno;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) {
    if (ok) saved = errno;
    unlink(tmp);
    errno = saved ? saved : EIO;
    return -1;
  }
  return 0;
}
