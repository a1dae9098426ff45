/* Whole-file reads and writes. */
#include "runtime/file_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t mode) {
  return S_ISDIR(mode)    ? "a directory"
         : S_ISFIFO(mode) ? "a FIFO"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISSOCK(mode) ? "a socket"
                          : "not a regular file";
}

int kd_read_file(const char *what, const char *path, size_t max_len, int allow_empty,
                 char **data, size_t *len, kd_error *err) {
  struct stat st;
  *data = NULL;
  *len = 0;
  if (!*path) return kd_fail(err, "%s: the path is empty", what);
  if (stat(path, &st) != 0) return kd_fail(err, "%s: cannot open (%s)", what, strerror(errno));
  if (!S_ISREG(st.st_mode)) return kd_fail(err, "%s: is %s, not a file", what, file_kind(st.st_mode));
  if ((size_t)st.st_size > max_len)
    return kd_fail(err, "%s: too large (%lld bytes, at most %zu)", what, (long long)st.st_size,
                   max_len);
  if (st.st_size == 0 && !allow_empty) return kd_fail(err, "%s: the file is empty", what);
  FILE *f = fopen(path, "rb");
  if (!f) return kd_fail(err, "%s: cannot open (%s)", what, strerror(errno));
  size_t size = (size_t)st.st_size;
  char *buf = malloc(size + 1);
  if (!buf) {
    fclose(f);
    return kd_fail(err, "%s: out of host memory for %zu bytes", what, size);
  }
  size_t got = fread(buf, 1, size, f);
  int read_error = ferror(f);
  fclose(f);
  if (got != size || read_error) {
    free(buf);
    return kd_fail(err, "%s: read %zu of %zu bytes (%s)", what, got, size,
                   read_error ? strerror(errno) : "the file shrank while being read");
  }
  buf[size] = '\0';
  *data = buf;
  *len = size;
  return 0;
}

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
