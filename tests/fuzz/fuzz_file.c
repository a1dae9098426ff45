/* The scratch file the HDF5 fuzz targets hand to the readers: one per process, rewritten for
 * every input and removed at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"

static char scratch[4096];

static void remove_scratch(void) {
  if (scratch[0]) unlink(scratch);
}

const char *kd_fuzz_write_file(const uint8_t *data, size_t size) {
  if (!scratch[0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/kdcl-fuzz-%ld.h5", dir && *dir ? dir : "/tmp",
             (long)getpid());
    atexit(remove_scratch);
  }
  FILE *f = fopen(scratch, "wb");
  if (!f) return NULL;
  int ok = fwrite(data, 1, size, f) == size;
  ok &= fclose(f) == 0;
  return ok ? scratch : NULL;
}
